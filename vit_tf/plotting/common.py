"""What every figure module of `vit_tf.plotting` shares: writing a PNG, naming the query token, and the layout
helpers (constrained-layout figures, titles wrapped to the canvas, min-max colorbars, tile mosaics).

Figures are built as `matplotlib.figure.Figure` directly (no pyplot state), so they work under any backend,
including Agg on headless machines.
"""

from __future__ import annotations

import os
import textwrap
from typing import Union

import numpy as np
from matplotlib.figure import Figure

DEFAULT_DPI = 150


def save_figure(fig: Figure, path, dpi: int = DEFAULT_DPI) -> str:
    """Write `fig` as PNG (figsize x dpi pixels, no tight cropping, so sizes are predictable); returns the path.

    The PNG is written under a temporary name beside `path` and renamed when complete.
    """
    from ..files import atomic_file

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


# -- layout helpers (not exported by the package) -------------------------------------------------------------------
def figure(figsize) -> Figure:
    return Figure(figsize=figsize, layout="constrained")


def wrap(text: str, width_inches: float, fontsize: float) -> str:
    """`text` broken into lines that fit `width_inches` at `fontsize` (titles never run off the canvas)."""
    chars = max(int(width_inches * 72 / (0.6 * fontsize)), 10)
    return "\n".join(textwrap.wrap(text, chars, break_long_words=False, break_on_hyphens=False)) or text


def suptitle(fig: Figure, text: str, fontsize: float = 10):
    fig.suptitle(wrap(text, fig.get_figwidth(), fontsize), fontsize=fontsize)


def title(ax, text: str, fontsize: float = 10, share: float = 0.85):
    """An axes title wrapped to `share` of the figure's width."""
    ax.set_title(wrap(text, ax.figure.get_figwidth() * share, fontsize), fontsize=fontsize)


def colormap(name):
    import matplotlib

    return matplotlib.colormaps[name]


def grid_axes(fig: Figure, rows: int, cols: int):
    """A (rows, cols) array of axes with their frames hidden (image panels)."""
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    for ax in axes.ravel():
        ax.set_axis_off()
    return axes


def scaled_colorbar(fig: Figure, axes, label: str, cmap: str, **kwargs):
    """A colorbar for maps that are min-max scaled one by one (images blended by hand included): the colours run
    from each map's minimum to its maximum."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(norm=Normalize(0.0, 1.0), cmap=colormap(cmap)), ax=axes, **kwargs)
    bar.set_ticks([0.0, 1.0], labels=["min", "max"])
    bar.set_label(label, fontsize=9)
    return bar


def mosaic(tiles: np.ndarray, ncols: int, pad: int = 1, fill=np.nan) -> np.ndarray:
    """(n, h, w[, c]) -> one (rows*(h+pad)-pad, ncols*(w+pad)-pad[, c]) image with `fill` between tiles."""
    n, h, w = tiles.shape[:3]
    rows = -(-n // ncols)
    out = np.full((rows * (h + pad) - pad, ncols * (w + pad) - pad) + tiles.shape[3:], fill, dtype=np.float64)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = tile
    return out


def ticks(n: int, max_ticks: int = 16) -> np.ndarray:
    """Tick positions: every layer when few, else every k-th (the last one always)."""
    step = max(1, -(-n // max_ticks))
    positions = list(range(0, n, step))
    if positions[-1] != n - 1:
        positions.append(n - 1)
    return np.asarray(positions)


__all__ = ["DEFAULT_DPI", "save_figure", "token_name"]
