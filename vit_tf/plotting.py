"""Matplotlib figures of the `vit_tf.analysis` arrays.

Every function builds a `matplotlib.figure.Figure` directly (no pyplot state), so it works under any backend,
including Agg on headless machines, and returns it; `save_figure` writes a PNG of exactly figsize x dpi pixels.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
from matplotlib.figure import Figure

from .analysis.heatmaps import apply_mask, normalize_map, overlay, resize_maps

_CMAP = "inferno"


def save_figure(fig: Figure, path, dpi: int = 100) -> str:
    """Write `fig` as PNG (figsize x dpi pixels, no tight cropping, so sizes are predictable); returns the path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png", facecolor="white")
    return path


def _grid_axes(fig: Figure, rows: int, cols: int):
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.ravel():
        ax.set_axis_off()
    return axes


def _mosaic(tiles: np.ndarray, ncols: int, pad: int = 1, fill=np.nan) -> np.ndarray:
    """(n, h, w[, c]) -> one (rows*(h+pad)-pad, ncols*(w+pad)-pad[, c]) image with `fill` between tiles."""
    n, h, w = tiles.shape[:3]
    rows = -(-n // ncols)
    out = np.full((rows * (h + pad) - pad, ncols * (w + pad) - pad) + tiles.shape[3:], fill, dtype=np.float64)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = tile
    return out


def mean_distance_figure(mean: np.ndarray, std: Optional[np.ndarray] = None, title: str = "",
                         uniform: Optional[float] = None, figsize: Tuple[float, float] = (6.4, 4.8)) -> Figure:
    """The keras.io example's scatter: one point per head at its block, mean attention distance in pixels.

    Args:
        mean: (blocks, heads) distances; std: same shape, drawn as error bars (dataset-level runs).
        uniform: distance of uniform attention over the grid, drawn as a dashed reference line.
    """
    mean = np.asarray(mean, np.float64)
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot()
    _distance_axes(ax, mean, std, uniform)
    ax.set_title(title or "Mean attention distance")
    fig.tight_layout()
    return fig


def _distance_axes(ax, mean, std=None, uniform=None):
    blocks, heads = mean.shape
    offsets = (np.arange(heads) - (heads - 1) / 2) * (0.5 / max(heads, 1))  # spread heads within a block
    colors = [_colormap("viridis")(b / max(blocks - 1, 1)) for b in range(blocks)]
    for b in range(blocks):
        x = b + offsets
        if std is not None:
            ax.errorbar(x, mean[b], yerr=np.asarray(std)[b], fmt="none", ecolor=colors[b], alpha=0.5, lw=1)
        ax.scatter(x, mean[b], color=colors[b], s=18, zorder=3)
    if uniform is not None:
        ax.axhline(uniform, ls="--", color="0.4", lw=1, label="uniform attention")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(range(blocks))
    ax.set_xlabel("Block")
    ax.set_ylabel("Mean attention distance (pixels)")
    ax.grid(alpha=0.3)


def _colormap(name):
    import matplotlib

    return matplotlib.colormaps[name]


def distance_comparison_figure(results: Mapping[str, Tuple[np.ndarray, Optional[np.ndarray]]],
                               panel_size: Tuple[float, float] = (4.8, 4.0)) -> Figure:
    """Side-by-side mean-distance scatters with a shared y axis (the example's i21k vs i1k, distilled vs not).

    Args:
        results: model name -> (mean (blocks, heads), std or None).
    """
    n = len(results)
    if n == 0:
        raise ValueError("no results to compare")
    fig = Figure(figsize=(panel_size[0] * n, panel_size[1]))
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
    for ax, (name, (mean, std)) in zip(axes, results.items()):
        _distance_axes(ax, np.asarray(mean, np.float64), std)
        ax.set_title(name, fontsize=10)
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def rollout_figure(image: np.ndarray, rollout_map: np.ndarray, title: str = "",
                   figsize: Tuple[float, float] = (9.0, 3.4)) -> Figure:
    """Input | input x rollout mask (the example) | rollout heatmap overlay."""
    fig = Figure(figsize=figsize)
    axes = _grid_axes(fig, 1, 3)[0]
    axes[0].imshow(image)
    axes[0].set_title("Input")
    axes[1].imshow(apply_mask(image, rollout_map))
    axes[1].set_title("Rollout mask")
    axes[2].imshow(overlay(image, rollout_map, alpha=0.6))
    axes[2].set_title("Rollout heatmap")
    fig.suptitle(title or "Attention rollout")
    fig.tight_layout()
    return fig


def _head_panels(heads: int, ncols: Optional[int], tile: float):
    """A figure with one square panel per head (at most 6 per row by default) and room for a title."""
    cols = ncols or min(heads, 6)
    rows = -(-heads // cols)
    fig = Figure(figsize=(tile * cols, tile * rows + 0.5))
    return fig, _grid_axes(fig, rows, cols).ravel()


def heatmaps_figure(image: np.ndarray, maps: np.ndarray, title: str = "", ncols: Optional[int] = None,
                    tile: float = 2.2) -> Figure:
    """Per-head attention maps (heads, gh, gw) upsampled and overlaid on the image (example Method III)."""
    fig, axes = _head_panels(maps.shape[0], ncols, tile)
    size = np.asarray(image).shape[:2]
    for h in range(maps.shape[0]):
        ax = axes[h]
        ax.imshow(image)
        ax.imshow(normalize_map(resize_maps(maps[h], size)), cmap=_CMAP, alpha=0.6)
        ax.set_title(f"head {h}", fontsize=9)
    fig.suptitle(title or "Attention heatmaps")
    fig.tight_layout()
    return fig


def masks_figure(image: np.ndarray, masks: np.ndarray, keep: float, title: str = "",
                 ncols: Optional[int] = None, tile: float = 2.2) -> Figure:
    """DINO-style masks (heads, gh, gw) bool: the image inside the mask, darkened outside."""
    fig, axes = _head_panels(masks.shape[0], ncols, tile)
    img = np.asarray(image, np.float64)
    for h in range(masks.shape[0]):
        inside = resize_maps(masks[h].astype(np.float64), img.shape[:2], method="nearest")[..., None]
        ax = axes[h]
        ax.imshow((img * (0.25 + 0.75 * inside)).astype(np.uint8))
        ax.contour(inside[..., 0], levels=[0.5], colors="cyan", linewidths=0.8)
        ax.set_title(f"head {h}", fontsize=9)
    fig.suptitle(title or f"Masks keeping {keep:.0%} of the attention mass")
    fig.tight_layout()
    return fig


def attention_grid_figure(image: np.ndarray, grid: np.ndarray, title: str = "", tile: float = 1.3) -> Figure:
    """timm's recipe: one row per block, the input in the first column, then every head's map overlaid."""
    blocks, heads = grid.shape[:2]
    fig = Figure(figsize=(tile * (heads + 1), tile * blocks + 0.5))
    axes = _grid_axes(fig, blocks, heads + 1)
    size = np.asarray(image).shape[:2]
    up = normalize_map(resize_maps(grid, size))
    for b in range(blocks):
        axes[b, 0].imshow(image)
        axes[b, 0].text(-0.08, 0.5, f"block {b}", transform=axes[b, 0].transAxes, rotation=90,
                        va="center", ha="right", fontsize=8)
        for h in range(heads):
            axes[b, h + 1].imshow(up[b, h], cmap=_CMAP, vmin=0, vmax=1)
            if b == 0:
                axes[b, h + 1].set_title(f"head {h}", fontsize=8)
    axes[0, 0].set_title("input", fontsize=8)
    fig.suptitle(title or "Class-token attention, block x head", fontsize=10)
    fig.tight_layout()
    return fig


def filters_figure(filters: np.ndarray, ncols: int = 16, title: str = "", tile: float = 0.6) -> Figure:
    """The first patch-projection filters (n, p, p, 3) in [0, 1] as a mosaic (example Method IV)."""
    n = filters.shape[0]
    ncols = min(ncols, n)
    rows = -(-n // ncols)
    fig = Figure(figsize=(tile * ncols + 0.4, tile * rows + 0.7))
    ax = fig.add_subplot()
    ax.imshow(np.nan_to_num(_mosaic(filters, ncols, fill=1.0), nan=1.0), interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title or f"First {n} patch-embedding filters", fontsize=10)
    fig.tight_layout()
    return fig


def filter_pca_figure(components: np.ndarray, ratios: np.ndarray, ncols: int = 7, title: str = "",
                      tile: float = 1.1) -> Figure:
    """Principal components of the filters (n, p, p, 3) with their explained variance (ViT Fig. 7 left)."""
    n = components.shape[0]
    ncols = min(ncols, n)
    rows = -(-n // ncols)
    fig = Figure(figsize=(tile * ncols, tile * rows + 0.5))
    axes = _grid_axes(fig, rows, ncols)
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(components[i], interpolation="nearest")
        ax.set_title(f"{i}: {ratios[i]:.1%}", fontsize=7)
    fig.suptitle(title or "Principal components of the patch filters", fontsize=10)
    fig.tight_layout()
    return fig


def position_similarity_figure(similarity: np.ndarray, title: str = "",
                               figsize: Tuple[float, float] = (5.0, 4.4)) -> Figure:
    """The example's dot-product matrix of position embeddings (N, N) (Method V)."""
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot()
    im = ax.imshow(similarity, cmap=_CMAP)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xlabel("patch position")
    ax.set_ylabel("patch position")
    ax.set_title(title or "Position embedding dot products", fontsize=10)
    fig.tight_layout()
    return fig


def position_cosine_figure(cosine: np.ndarray, title: str = "", max_size: float = 7.0) -> Figure:
    """Per-position cosine-similarity maps (gh, gw, gh, gw) laid out on the grid (ViT Fig. 7 centre)."""
    gh, gw = cosine.shape[:2]
    tiles = cosine.reshape(gh * gw, gh, gw)
    mosaic = _mosaic(tiles, gw, pad=1)
    scale = max_size / max(mosaic.shape)
    fig = Figure(figsize=(mosaic.shape[1] * scale + 1.2, mosaic.shape[0] * scale + 0.6))
    ax = fig.add_subplot()
    cmap = _colormap("viridis").with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, label="cosine similarity")
    ax.set_axis_off()
    ax.set_title(title or "Position embedding similarity", fontsize=10)
    fig.tight_layout()
    return fig


def probe_figures(result, out_dir, dpi: int = 100) -> Dict[str, str]:
    """Write every figure of a `vit_tf.analysis.ProbeResult` as PNG into `out_dir`; returns name -> path."""
    r = result
    figs = {
        "mean_distance": mean_distance_figure(r.mean_distance, title=f"{r.name}: mean attention distance",
                                              uniform=r.uniform_distance),
        "rollout": rollout_figure(r.image, r.rollout, title=f"{r.name}: attention rollout "
                                                            f"({r.rollout_settings['head_fusion']}, discard "
                                                            f"{r.rollout_settings['discard_ratio']:g})"),
        "heatmaps": heatmaps_figure(r.image, r.heatmaps, title=f"{r.name}: block {r.heatmap_block} heads"),
        "masks": masks_figure(r.image, r.masks, r.mask_keep),
        "attention_grid": attention_grid_figure(r.image, r.grid, title=f"{r.name}: attention, block x head"),
    }
    if r.filters is not None:
        figs["filters"] = filters_figure(r.filters)
        figs["filter_pca"] = filter_pca_figure(*r.filter_pca)
    if r.pos_similarity is not None:
        figs["position_similarity"] = position_similarity_figure(r.pos_similarity)
    if r.pos_cosine is not None:
        figs["position_cosine"] = position_cosine_figure(r.pos_cosine)
    return {name: save_figure(fig, os.path.join(out_dir, f"{name}.png"), dpi) for name, fig in figs.items()}


__all__ = [
    "attention_grid_figure", "distance_comparison_figure", "filter_pca_figure", "filters_figure",
    "heatmaps_figure", "masks_figure", "mean_distance_figure", "position_cosine_figure",
    "position_similarity_figure", "probe_figures", "rollout_figure", "save_figure",
]
