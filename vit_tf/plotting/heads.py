"""Figures of attention heads (`vit_tf.analysis.heads`): block x head heatmaps of Michel et al. 2019's importance,
of the change when one head is removed, and of the attention entropy.

Every function builds a `matplotlib.figure.Figure` directly (no pyplot state, so any backend, Agg included) and
returns it; write it with `vit_tf.plotting.save_figure`. Colour always has a colorbar.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from matplotlib.figure import Figure

from . import common as C

_SEQUENTIAL = "viridis"
_DIVERGING = "RdBu"


def head_heatmap(ax, values: np.ndarray, label: str, title: str, diverging: bool = False,
                 annotate: Optional[bool] = None, fmt: str = "{:.2f}", vmin=None, vmax=None):
    """Draw one block x head matrix (depth, heads) on `ax` with a colorbar: block 0 at the top, one cell per head.

    diverging: a red-blue scale symmetric about 0 (changes); else sequential. annotate: write each value in its
    cell (default: when there are at most 12 x 12 cells).
    """
    values = np.asarray(values, np.float64)
    depth, heads = values.shape
    fig = ax.figure
    if diverging:
        bound = float(np.nanmax(np.abs(values))) if values.size else 1.0
        bound = bound if bound > 0 else 1.0
        vmin, vmax, cmap = -bound, bound, _DIVERGING
    else:
        cmap = _SEQUENTIAL
    im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest", aspect="auto")
    ax.set_xticks(C.ticks(heads), [str(h) for h in C.ticks(heads)], fontsize=7)
    ax.set_yticks(C.ticks(depth), [str(b) for b in C.ticks(depth)], fontsize=7)
    ax.set_xlabel("head", fontsize=9)
    ax.set_ylabel("block", fontsize=9)
    bar = fig.colorbar(im, ax=ax, fraction=0.05)
    bar.set_label(label, fontsize=8)
    if annotate is None:
        annotate = depth * heads <= 144
    if annotate:
        lo, hi = im.get_clim()
        size = 7 if depth * heads <= 48 else 5
        for b in range(depth):
            for h in range(heads):
                v = values[b, h]
                # Dark text on light cells and the other way round, so every number stays readable.
                level = 0.5 if hi == lo else (v - lo) / (hi - lo)
                light = abs(level - 0.5) < 0.3 if diverging else level > 0.6
                ax.text(h, b, fmt.format(v), ha="center", va="center", fontsize=size,
                        color="black" if light else "white")
    C.title(ax, title, 9, share=0.3)
    return im


def head_heatmap_figure(values: np.ndarray, label: str, title: str = "", diverging: bool = False,
                        figsize: Optional[Tuple[float, float]] = None, **kwargs) -> Figure:
    """One block x head heatmap (see `head_heatmap`) as a figure."""
    depth, heads = np.shape(values)
    if figsize is None:
        figsize = (min(max(3.2, 0.45 * heads + 2.0), 10.0), min(max(2.6, 0.35 * depth + 1.2), 9.0))
    fig = C.figure(figsize)
    head_heatmap(fig.add_subplot(), values, label, title or label, diverging=diverging, **kwargs)
    return fig


def heads_figure(importance: Optional[np.ndarray] = None, ablation: Optional[np.ndarray] = None,
                 entropy: Optional[np.ndarray] = None, *, metric: str = "accuracy",
                 uniform_entropy: Optional[float] = None, title: str = "",
                 panel_size: Optional[Tuple[float, float]] = None) -> Figure:
    """Side by side, block x head: Michel et al.'s importance (L2-normalised per block), the change of `metric` when
    the head alone is removed (red: worse), and the mean attention entropy in nats (with ln T of uniform attention
    in the colorbar label). Panels that are None are left out."""
    panels = [(v, k) for v, k in ((importance, "importance"), (ablation, "ablation"), (entropy, "entropy"))
              if v is not None]
    if not panels:
        raise ValueError("nothing to draw: give importance, ablation or entropy")
    depth, heads = np.shape(panels[0][0])
    if panel_size is None:
        panel_size = (min(max(2.8, 0.42 * heads + 1.8), 8.0), min(max(2.6, 0.33 * depth + 1.3), 8.0))
    fig = C.figure((panel_size[0] * len(panels), panel_size[1] + 0.4))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (values, kind) in zip(axes, panels):
        if kind == "importance":
            head_heatmap(ax, values, "importance (unit L2 norm per block)",
                         "Importance (Michel et al. 2019)", vmin=0.0, vmax=1.0)
        elif kind == "ablation":
            head_heatmap(ax, 100.0 * np.asarray(values), f"{metric} change (points)",
                         f"{metric.capitalize()} change, head removed alone", diverging=True, fmt="{:+.1f}")
        else:
            label = "entropy (nats)" + (f"; uniform = ln T = {uniform_entropy:.2f}" if uniform_entropy else "")
            head_heatmap(ax, values, label, "Mean attention entropy", vmin=0.0,
                         vmax=uniform_entropy if uniform_entropy else None)
    if title:
        C.suptitle(fig, title)
    return fig


__all__ = ["head_heatmap", "head_heatmap_figure", "heads_figure"]
