"""Figures of the embeddings: the patch-projection filters and their principal components (ViT Fig. 7 left), and
the similarity of position embeddings (ViT Fig. 7 centre; keras.io's dot-product matrix).

Every function builds a `matplotlib.figure.Figure` in constrained layout and returns it; colour has a colorbar.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from matplotlib.figure import Figure

from . import common as C

_CMAP = "inferno"


def filters_figure(filters: np.ndarray, ncols: int = 16, title: str = "", tile: float = 0.6) -> Figure:
    """The first patch-projection filters (n, p, p, 3) in [0, 1] as a mosaic (example Method IV)."""
    n = filters.shape[0]
    ncols = min(ncols, n)
    rows = -(-n // ncols)
    fig = C.figure((tile * ncols + 0.4, tile * rows + 0.7))
    ax = fig.add_subplot()
    ax.imshow(np.nan_to_num(C.mosaic(filters, ncols, fill=1.0), nan=1.0), interpolation="nearest")
    ax.set_axis_off()
    C.title(ax, title or f"First {n} patch-embedding filters (RGB)", share=1.0)
    return fig


def filter_pca_figure(components: np.ndarray, ratios: np.ndarray, ncols: int = 7, title: str = "",
                      tile: float = 1.1) -> Figure:
    """Principal components of the filters (n, p, p, 3) with their explained variance (ViT Fig. 7 left)."""
    n = components.shape[0]
    ncols = min(ncols, n)
    rows = -(-n // ncols)
    fig = C.figure((tile * ncols, tile * rows + 0.6))
    axes = C.grid_axes(fig, rows, ncols)
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(components[i], interpolation="nearest")
        ax.set_title(f"{i}: {ratios[i]:.1%}", fontsize=7)
    C.suptitle(fig, title or "Principal components of the patch filters (explained variance)")
    return fig


def position_similarity_figure(similarity: np.ndarray, title: str = "",
                               figsize: Tuple[float, float] = (5.4, 4.6)) -> Figure:
    """The example's dot-product matrix of position embeddings (N, N) (Method V)."""
    fig = C.figure(figsize)
    ax = fig.add_subplot()
    im = ax.imshow(similarity, cmap=_CMAP)
    fig.colorbar(im, ax=ax, fraction=0.046, label="dot product")
    ax.set_xlabel("patch position")
    ax.set_ylabel("patch position")
    C.title(ax, title or "Position embedding dot products", share=0.75)
    return fig


def position_cosine_figure(cosine: np.ndarray, title: str = "", max_size: float = 7.0) -> Figure:
    """Per-position cosine-similarity maps (gh, gw, gh, gw) laid out on the grid (ViT Fig. 7 centre)."""
    gh, gw = cosine.shape[:2]
    tiles = cosine.reshape(gh * gw, gh, gw)
    tiled = C.mosaic(tiles, gw, pad=1)
    scale = max_size / max(tiled.shape)
    fig = C.figure((tiled.shape[1] * scale + 1.4, tiled.shape[0] * scale + 0.7))
    ax = fig.add_subplot()
    cmap = C.colormap("viridis").with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(tiled), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, label="cosine similarity")
    ax.set_axis_off()
    C.title(ax, title or "Position embedding similarity (one tile per position)", share=0.8)
    return fig


__all__ = ["filter_pca_figure", "filters_figure", "position_cosine_figure", "position_similarity_figure"]
