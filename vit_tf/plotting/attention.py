"""Figures of attention: mean attention distance per head (keras.io's "Investigating ViTs" scatter), rollout, per-head
heatmaps and DINO-style masks, and timm's block x head grid.

Every function builds a `matplotlib.figure.Figure` in constrained layout (titles, colorbars and panels never
overlap, up to ViT-B/8's 28 x 28 grid and 12 heads) and returns it; wherever colour encodes a value there is a
colorbar, and attention maps name their query token. Write figures with `vit_tf.plotting.save_figure`.
"""

from __future__ import annotations

from typing import Mapping, Optional, Tuple, Union

import numpy as np
from matplotlib.figure import Figure

from ..analysis.heatmaps import apply_mask, normalize_map, overlay
from . import common as C
from .common import token_name

_CMAP = "inferno"
_SCALED = "attention (per map)"


def mean_distance_figure(mean: np.ndarray, std: Optional[np.ndarray] = None, title: str = "",
                         uniform: Optional[float] = None, figsize: Tuple[float, float] = (6.4, 4.8)) -> Figure:
    """The keras.io example's scatter: one point per head at its block, mean attention distance in pixels.

    Args:
        mean: (blocks, heads) distances; std: same shape, drawn as error bars (dataset-level runs).
        uniform: distance of uniform attention over the grid, drawn as a dashed reference line.
    """
    mean = np.asarray(mean, np.float64)
    fig = C.figure(figsize)
    ax = fig.add_subplot()
    _distance_axes(ax, mean, std, uniform)
    C.title(ax, title or "Mean attention distance")
    return fig


def _distance_axes(ax, mean, std=None, uniform=None):
    # Colour repeats the block (the x axis), so that heads of neighbouring blocks stay apart; it encodes nothing
    # else, hence no colorbar.
    blocks, heads = mean.shape
    offsets = (np.arange(heads) - (heads - 1) / 2) * (0.5 / max(heads, 1))  # spread heads within a block
    colors = [C.colormap("viridis")(b / max(blocks - 1, 1)) for b in range(blocks)]
    for b in range(blocks):
        x = b + offsets
        if std is not None:
            ax.errorbar(x, mean[b], yerr=np.asarray(std)[b], fmt="none", ecolor=colors[b], alpha=0.5, lw=1)
        ax.scatter(x, mean[b], color=colors[b], s=18, zorder=3)
    if uniform is not None:
        ax.axhline(uniform, ls="--", color="0.4", lw=1, label="uniform attention")
        ax.legend(loc="best", fontsize=8)
    ax.set_xticks(range(blocks))
    ax.set_xlabel("Block (one point per head)")
    ax.set_ylabel("Mean attention distance (pixels)")
    ax.grid(alpha=0.3)


def distance_comparison_figure(results: Mapping[str, Tuple[np.ndarray, Optional[np.ndarray]]],
                               panel_size: Tuple[float, float] = (4.8, 4.0), title: str = "") -> Figure:
    """Side-by-side mean-distance scatters with a shared y axis (the example's i21k vs i1k, distilled vs not).

    Args:
        results: model name -> (mean (blocks, heads), std or None).
    """
    n = len(results)
    if n == 0:
        raise ValueError("no results to compare")
    fig = C.figure((panel_size[0] * n, panel_size[1]))
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
    for ax, (name, (mean, std)) in zip(axes, results.items()):
        _distance_axes(ax, np.asarray(mean, np.float64), std)
        C.title(ax, name, 9, share=1.0 / n)
    for ax in axes[1:]:
        ax.set_ylabel("")
    if title:
        C.suptitle(fig, title)
    return fig


def rollout_figure(image: np.ndarray, rollout_map: np.ndarray, title: str = "",
                   figsize: Tuple[float, float] = (9.6, 3.4), token: Union[str, int, None] = "cls") -> Figure:
    """Input | input x rollout mask (the example) | rollout heatmap overlay with its colorbar."""
    fig = C.figure(figsize)
    axes = C.grid_axes(fig, 1, 3)[0]
    axes[0].imshow(image)
    axes[0].set_title("Input", fontsize=9)
    axes[1].imshow(apply_mask(image, rollout_map))
    axes[1].set_title("Input x rollout / max", fontsize=9)
    axes[2].imshow(overlay(image, rollout_map, alpha=0.6))
    axes[2].set_title("Rollout heatmap", fontsize=9)
    C.scaled_colorbar(fig, axes[2], "rollout", _CMAP, shrink=0.8)
    C.suptitle(fig, title or f"Attention rollout from the {token_name(token)}")
    return fig


def _head_panels(heads: int, ncols: Optional[int], tile: float, extra_width: float = 0.0):
    """A figure with one square panel per head (at most 6 per row by default) and room for a title."""
    cols = ncols or min(heads, 6)
    rows = -(-heads // cols)
    fig = C.figure((tile * cols + extra_width, tile * rows + 0.6))
    return fig, C.grid_axes(fig, rows, cols)


def heatmaps_figure(image: np.ndarray, maps: np.ndarray, title: str = "", ncols: Optional[int] = None,
                    tile: float = 2.2, token: Union[str, int, None] = "cls") -> Figure:
    """Per-head attention maps (heads, gh, gw) upsampled and overlaid on the image (example Method III), with a
    colorbar of the (per-head min-max scaled) attention."""
    fig, axes = _head_panels(maps.shape[0], ncols, tile, extra_width=0.9)
    flat = axes.ravel()
    height, width = np.asarray(image).shape[:2]
    on_image = (-0.5, width - 0.5, height - 0.5, -0.5)  # the patch grid stretched over the image's pixels
    for h in range(maps.shape[0]):
        ax = flat[h]
        ax.imshow(image)
        # bilinear between patch centres, as `resize_maps` does, but drawn by matplotlib at display resolution
        ax.imshow(normalize_map(maps[h]), cmap=_CMAP, alpha=0.6, vmin=0, vmax=1, extent=on_image,
                  interpolation="bilinear")
        ax.set_title(f"head {h}", fontsize=9)
    C.scaled_colorbar(fig, axes, _SCALED, _CMAP, shrink=0.9)
    C.suptitle(fig, title or f"Attention of the {token_name(token)} per head")
    return fig


def masks_figure(image: np.ndarray, masks: np.ndarray, keep: float, title: str = "",
                 ncols: Optional[int] = None, tile: float = 2.2) -> Figure:
    """DINO-style masks (heads, gh, gw) bool: the image inside the mask, darkened outside (cyan outline)."""
    fig, axes = _head_panels(masks.shape[0], ncols, tile)
    flat = axes.ravel()
    img = np.asarray(image, np.float64)
    gh, gw = masks.shape[-2:]
    rows = np.minimum(np.arange(img.shape[0]) * gh // img.shape[0], gh - 1)  # nearest patch of each pixel
    cols = np.minimum(np.arange(img.shape[1]) * gw // img.shape[1], gw - 1)
    for h in range(masks.shape[0]):
        inside = np.asarray(masks[h], np.float64)[rows][:, cols][..., None]
        ax = flat[h]
        ax.imshow((img * (0.25 + 0.75 * inside)).astype(np.uint8))
        if inside.min() < 0.5 < inside.max():
            ax.contour(inside[..., 0], levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(f"head {h}", fontsize=9)
    C.suptitle(fig, title or f"Masks keeping {keep:.0%} of the attention mass")
    return fig


def attention_grid_figure(image: np.ndarray, grid: np.ndarray, title: str = "", tile: float = 1.3,
                          token: Union[str, int, None] = "cls") -> Figure:
    """timm's recipe: one row per block, the input in the first column, then every head's map, with one colorbar
    (each map min-max scaled)."""
    blocks, heads = grid.shape[:2]
    fig = C.figure((tile * (heads + 1) + 0.9, tile * blocks + 0.6))
    axes = C.grid_axes(fig, blocks, heads + 1)
    scaled = normalize_map(grid)
    for b in range(blocks):
        ax = axes[b, 0]
        ax.imshow(image)
        ax.set_axis_on()  # for the row label; ticks and frame stay hidden
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(f"block {b}", fontsize=8)
        for h in range(heads):
            axes[b, h + 1].imshow(scaled[b, h], cmap=_CMAP, vmin=0, vmax=1, interpolation="bilinear")
            if b == 0:
                axes[b, h + 1].set_title(f"head {h}", fontsize=8)
    axes[0, 0].set_title("input", fontsize=8)
    C.scaled_colorbar(fig, axes, _SCALED, _CMAP,
                      shrink=min(1.0, 6.0 / max(blocks, 1)) if blocks > 6 else 0.9)
    C.suptitle(fig, title or f"Attention of the {token_name(token)}, block x head")
    return fig


__all__ = ["attention_grid_figure", "distance_comparison_figure", "heatmaps_figure", "masks_figure",
           "mean_distance_figure", "rollout_figure"]
