"""Matplotlib figures of the `vit_tf.analysis` arrays.

Every function builds a `matplotlib.figure.Figure` directly (no pyplot state), so it works under any backend,
including Agg on headless machines, and returns it; `save_figure` writes a PNG of exactly figsize x dpi pixels,
under a temporary name renamed into place when complete.

Layouts are matplotlib's constrained layout (titles, colorbars and panels never overlap, up to ViT-B/8's 28 x 28
grid and 12 heads); wherever colour encodes a value there is a colorbar, and attention maps name their query token.
"""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np
from matplotlib.figure import Figure

from .analysis.heatmaps import apply_mask, normalize_map, overlay

_CMAP = "inferno"
DEFAULT_DPI = 150
_SCALED = "attention (per map)"


def _figure(figsize) -> Figure:
    return Figure(figsize=figsize, layout="constrained")


def _wrap(fig: Figure, text: str, fontsize: float, share: float = 1.0) -> str:
    """`text` broken into lines that fit `share` of the figure's width (titles never run off the canvas)."""
    import textwrap

    chars = max(int(fig.get_figwidth() * share * 72 / (0.6 * fontsize)), 12)
    return "\n".join(textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False)) or text


def _suptitle(fig: Figure, text: str, fontsize: float = 10):
    fig.suptitle(_wrap(fig, text, fontsize), fontsize=fontsize)


def _title(ax, text: str, fontsize: float = 10, share: float = 0.85):
    ax.set_title(_wrap(ax.figure, text, fontsize, share), fontsize=fontsize)


def save_figure(fig: Figure, path, dpi: int = DEFAULT_DPI) -> str:
    """Write `fig` as PNG (figsize x dpi pixels, no tight cropping, so sizes are predictable); returns the path.

    The PNG is written under a temporary name beside `path` and renamed when complete.
    """
    from .files import atomic_file

    path = os.fspath(path)
    if dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", facecolor="white")
    return path


def token_name(token: Union[str, int, None]) -> str:
    """"cls" -> "class token", "dist" -> "distillation token", 3 -> "token 3"."""
    if token is None or token == "cls":
        return "class token"
    if token == "dist":
        return "distillation token"
    return f"token {token}"


def _grid_axes(fig: Figure, rows: int, cols: int):
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.ravel():
        ax.set_axis_off()
    return axes


def _colorbar(fig: Figure, axes, label: str, cmap: str = _CMAP, **kwargs):
    """A colorbar for maps that are min-max scaled one by one (images blended by hand included): the colours run
    from each map's minimum to its maximum."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(norm=Normalize(0.0, 1.0), cmap=_colormap(cmap)), ax=axes, **kwargs)
    bar.set_ticks([0.0, 1.0], labels=["min", "max"])
    bar.set_label(label, fontsize=9)
    return bar


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
    fig = _figure(figsize)
    ax = fig.add_subplot()
    _distance_axes(ax, mean, std, uniform)
    _title(ax, title or "Mean attention distance")
    return fig


def _distance_axes(ax, mean, std=None, uniform=None):
    # Colour repeats the block (the x axis), so that heads of neighbouring blocks stay apart; it encodes nothing
    # else, hence no colorbar.
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
        ax.legend(loc="best", fontsize=8)
    ax.set_xticks(range(blocks))
    ax.set_xlabel("Block (one point per head)")
    ax.set_ylabel("Mean attention distance (pixels)")
    ax.grid(alpha=0.3)


def _colormap(name):
    import matplotlib

    return matplotlib.colormaps[name]


def distance_comparison_figure(results: Mapping[str, Tuple[np.ndarray, Optional[np.ndarray]]],
                               panel_size: Tuple[float, float] = (4.8, 4.0), title: str = "") -> Figure:
    """Side-by-side mean-distance scatters with a shared y axis (the example's i21k vs i1k, distilled vs not).

    Args:
        results: model name -> (mean (blocks, heads), std or None).
    """
    n = len(results)
    if n == 0:
        raise ValueError("no results to compare")
    fig = _figure((panel_size[0] * n, panel_size[1]))
    axes = np.atleast_1d(fig.subplots(1, n, sharey=True))
    for ax, (name, (mean, std)) in zip(axes, results.items()):
        _distance_axes(ax, np.asarray(mean, np.float64), std)
        _title(ax, name, 9, share=1.0 / n)
    for ax in axes[1:]:
        ax.set_ylabel("")
    if title:
        _suptitle(fig, title)
    return fig


def rollout_figure(image: np.ndarray, rollout_map: np.ndarray, title: str = "",
                   figsize: Tuple[float, float] = (9.6, 3.4), token: Union[str, int, None] = "cls") -> Figure:
    """Input | input x rollout mask (the example) | rollout heatmap overlay with its colorbar."""
    fig = _figure(figsize)
    axes = _grid_axes(fig, 1, 3)[0]
    axes[0].imshow(image)
    axes[0].set_title("Input", fontsize=9)
    axes[1].imshow(apply_mask(image, rollout_map))
    axes[1].set_title("Input x rollout / max", fontsize=9)
    axes[2].imshow(overlay(image, rollout_map, alpha=0.6))
    axes[2].set_title("Rollout heatmap", fontsize=9)
    _colorbar(fig, axes[2], "rollout", shrink=0.8)
    _suptitle(fig, title or f"Attention rollout from the {token_name(token)}")
    return fig


def _head_panels(heads: int, ncols: Optional[int], tile: float, extra_width: float = 0.0):
    """A figure with one square panel per head (at most 6 per row by default) and room for a title."""
    cols = ncols or min(heads, 6)
    rows = -(-heads // cols)
    fig = _figure((tile * cols + extra_width, tile * rows + 0.6))
    return fig, _grid_axes(fig, rows, cols)


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
    _colorbar(fig, axes, _SCALED, shrink=0.9)
    _suptitle(fig, title or f"Attention of the {token_name(token)} per head")
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
    _suptitle(fig, title or f"Masks keeping {keep:.0%} of the attention mass")
    return fig


def attention_grid_figure(image: np.ndarray, grid: np.ndarray, title: str = "", tile: float = 1.3,
                          token: Union[str, int, None] = "cls") -> Figure:
    """timm's recipe: one row per block, the input in the first column, then every head's map, with one colorbar
    (each map min-max scaled)."""
    blocks, heads = grid.shape[:2]
    fig = _figure((tile * (heads + 1) + 0.9, tile * blocks + 0.6))
    axes = _grid_axes(fig, blocks, heads + 1)
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
    _colorbar(fig, axes, _SCALED, shrink=min(1.0, 6.0 / max(blocks, 1)) if blocks > 6 else 0.9)
    _suptitle(fig, title or f"Attention of the {token_name(token)}, block x head")
    return fig


def filters_figure(filters: np.ndarray, ncols: int = 16, title: str = "", tile: float = 0.6) -> Figure:
    """The first patch-projection filters (n, p, p, 3) in [0, 1] as a mosaic (example Method IV)."""
    n = filters.shape[0]
    ncols = min(ncols, n)
    rows = -(-n // ncols)
    fig = _figure((tile * ncols + 0.4, tile * rows + 0.7))
    ax = fig.add_subplot()
    ax.imshow(np.nan_to_num(_mosaic(filters, ncols, fill=1.0), nan=1.0), interpolation="nearest")
    ax.set_axis_off()
    _title(ax, title or f"First {n} patch-embedding filters (RGB)", share=1.0)
    return fig


def filter_pca_figure(components: np.ndarray, ratios: np.ndarray, ncols: int = 7, title: str = "",
                      tile: float = 1.1) -> Figure:
    """Principal components of the filters (n, p, p, 3) with their explained variance (ViT Fig. 7 left)."""
    n = components.shape[0]
    ncols = min(ncols, n)
    rows = -(-n // ncols)
    fig = _figure((tile * ncols, tile * rows + 0.6))
    axes = _grid_axes(fig, rows, ncols)
    for i in range(n):
        ax = axes.ravel()[i]
        ax.imshow(components[i], interpolation="nearest")
        ax.set_title(f"{i}: {ratios[i]:.1%}", fontsize=7)
    _suptitle(fig, title or "Principal components of the patch filters (explained variance)")
    return fig


def position_similarity_figure(similarity: np.ndarray, title: str = "",
                               figsize: Tuple[float, float] = (5.4, 4.6)) -> Figure:
    """The example's dot-product matrix of position embeddings (N, N) (Method V)."""
    fig = _figure(figsize)
    ax = fig.add_subplot()
    im = ax.imshow(similarity, cmap=_CMAP)
    fig.colorbar(im, ax=ax, fraction=0.046, label="dot product")
    ax.set_xlabel("patch position")
    ax.set_ylabel("patch position")
    _title(ax, title or "Position embedding dot products", share=0.75)
    return fig


def position_cosine_figure(cosine: np.ndarray, title: str = "", max_size: float = 7.0) -> Figure:
    """Per-position cosine-similarity maps (gh, gw, gh, gw) laid out on the grid (ViT Fig. 7 centre)."""
    gh, gw = cosine.shape[:2]
    tiles = cosine.reshape(gh * gw, gh, gw)
    mosaic = _mosaic(tiles, gw, pad=1)
    scale = max_size / max(mosaic.shape)
    fig = _figure((mosaic.shape[1] * scale + 1.4, mosaic.shape[0] * scale + 0.7))
    ax = fig.add_subplot()
    cmap = _colormap("viridis").with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(mosaic), cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, label="cosine similarity")
    ax.set_axis_off()
    _title(ax, title or "Position embedding similarity (one tile per position)", share=0.8)
    return fig


def render_probe_figures(result, label: Optional[str] = None) -> Dict[str, Figure]:
    """Every figure of a `vit_tf.analysis.ProbeResult`, titled with `label` (default: the model's name; pass e.g.
    "name [RANDOM WEIGHTS]" to say how the weights were made)."""
    r = result
    name = label or r.name
    token = r.rollout_settings.get("token", "cls")
    who = token_name(token)
    settings = f"{r.rollout_settings['head_fusion']} fusion, discard {r.rollout_settings['discard_ratio']:g}"
    figs = {
        "mean_distance": mean_distance_figure(r.mean_distance, title=f"{name}: mean attention distance",
                                              uniform=r.uniform_distance),
        "rollout": rollout_figure(r.image, r.rollout, token=token,
                                  title=f"{name}: attention rollout from the {who} ({settings})"),
        "heatmaps": heatmaps_figure(r.image, r.heatmaps, token=token,
                                    title=f"{name}: block {r.heatmap_block}, attention of the {who} per head"),
        "masks": masks_figure(r.image, r.masks, r.mask_keep,
                              title=f"{name}: block {r.heatmap_block}, masks keeping {r.mask_keep:.0%} of the "
                                    f"{who}'s attention"),
        "attention_grid": attention_grid_figure(r.image, r.grid, token=token,
                                                title=f"{name}: attention of the {who}, block x head"),
    }
    if r.filters is not None:
        figs["filters"] = filters_figure(r.filters, title=f"{name}: first {len(r.filters)} patch-embedding "
                                                          f"filters (RGB)")
        figs["filter_pca"] = filter_pca_figure(*r.filter_pca, title=f"{name}: principal components of the patch "
                                                                    f"filters")
    if r.pos_similarity is not None:
        figs["position_similarity"] = position_similarity_figure(
            r.pos_similarity, title=f"{name}: position embedding dot products")
    if r.pos_cosine is not None:
        figs["position_cosine"] = position_cosine_figure(r.pos_cosine,
                                                         title=f"{name}: position embedding similarity")
    return figs


def probe_figures(result, out_dir, dpi: int = DEFAULT_DPI, label: Optional[str] = None) -> Dict[str, str]:
    """Write every figure of a `vit_tf.analysis.ProbeResult` as PNG into `out_dir`; returns name -> path."""
    figs = render_probe_figures(result, label)
    return {name: save_figure(fig, os.path.join(out_dir, f"{name}.png"), dpi) for name, fig in figs.items()}


__all__ = [
    "DEFAULT_DPI", "attention_grid_figure", "distance_comparison_figure", "filter_pca_figure", "filters_figure",
    "heatmaps_figure", "masks_figure", "mean_distance_figure", "position_cosine_figure",
    "position_similarity_figure", "probe_figures", "render_probe_figures", "rollout_figure", "save_figure",
    "token_name",
]
