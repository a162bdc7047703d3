"""Matplotlib figures of representation similarity (`vit_tf.analysis.cka`) and of attention heads
(`vit_tf.analysis.heads`).

As in `vit_tf.plotting`, every function builds a `matplotlib.figure.Figure` directly (no pyplot state, so any
backend, Agg included) and returns it; write it with `vit_tf.plotting.save_figure`. Colour always has a colorbar.
"""

from __future__ import annotations

import textwrap
from typing import Optional, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

_CKA_CMAP = "magma"  # Raghu et al. 2021, Fig. 1
_SEQUENTIAL = "viridis"
_DIVERGING = "RdBu"


def _figure(figsize) -> Figure:
    return Figure(figsize=figsize, layout="constrained")


def _wrapped(fig: Figure, text: str, fontsize: float, share: float = 1.0) -> str:
    chars = max(int(fig.get_figwidth() * share * 72 / (0.6 * fontsize)), 12)
    return "\n".join(textwrap.wrap(text, chars, break_long_words=False)) or text


def _ticks(n: int, max_ticks: int = 16) -> np.ndarray:
    """Tick positions: every layer when few, else every k-th (the last one always)."""
    step = max(1, -(-n // max_ticks))
    ticks = list(range(0, n, step))
    if ticks[-1] != n - 1:
        ticks.append(n - 1)
    return np.asarray(ticks)


def _layer_labels(names: Sequence[str], constant: Sequence[int]) -> list:
    constant = set(constant)
    return [f"{name} (constant)" if i in constant else name for i, name in enumerate(names)]


def cka_figure(cka: np.ndarray, layers_a: Sequence[str], layers_b: Sequence[str], name_a: str = "model A",
               name_b: Optional[str] = None, title: str = "", constant_a: Sequence[int] = (),
               constant_b: Sequence[int] = (), figsize: Optional[Tuple[float, float]] = None) -> Figure:
    """Raghu et al.'s layer x layer CKA heatmap (Fig. 1): layers of A on the y axis, of B on the x axis, both from
    the input at the origin (bottom left), CKA on a fixed 0..1 colour scale with a colorbar.

    Args:
        cka: (La, Lb) CKA values; negative values (unbiased estimates of unrelated layers) show as 0, the colorbar
            then has a pointed lower end.
        layers_a, layers_b: layer names of the rows and columns.
        name_a, name_b: the models' names for the axis labels (name_b None: the same model).
        constant_a, constant_b: rows / columns whose representation was the same for every image (CKA reported
            as 0); their tick labels say "(constant)".
    """
    cka = np.asarray(cka, np.float64)
    la, lb = cka.shape
    if (la, lb) != (len(layers_a), len(layers_b)):
        raise ValueError(f"cka is {cka.shape} but there are {len(layers_a)} x {len(layers_b)} layer names")
    if figsize is None:
        side = min(max(3.6, 0.28 * max(la, lb) + 2.0), 9.0)
        figsize = (side * max(lb, 1) / max(la, lb) + 1.8, side * max(la, 1) / max(la, lb) + 1.0)
    fig = _figure(figsize)
    ax = fig.add_subplot()
    im = ax.imshow(cka, cmap=_CKA_CMAP, vmin=0.0, vmax=1.0, origin="lower", interpolation="nearest",
                   aspect="equal")
    labels_a, labels_b = _layer_labels(layers_a, constant_a), _layer_labels(layers_b, constant_b)
    rows, cols = _ticks(la), _ticks(lb)
    ax.set_yticks(rows, [labels_a[i] for i in rows], fontsize=7)
    ax.set_xticks(cols, [labels_b[j] for j in cols], fontsize=7, rotation=90)
    ax.set_ylabel(f"Layers of {name_a}", fontsize=9)
    ax.set_xlabel(f"Layers of {name_b if name_b is not None else name_a}", fontsize=9)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, extend="min" if np.nanmin(cka) < 0 else "neither")
    bar.set_label("linear CKA", fontsize=9)
    ax.set_title(_wrapped(fig, title or "Representation similarity (CKA)", 10, 0.8), fontsize=10)
    return fig


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
    ax.set_xticks(_ticks(heads), [str(h) for h in _ticks(heads)], fontsize=7)
    ax.set_yticks(_ticks(depth), [str(b) for b in _ticks(depth)], fontsize=7)
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
    ax.set_title(_wrapped(fig, title, 9, 0.3), fontsize=9)
    return im


def head_heatmap_figure(values: np.ndarray, label: str, title: str = "", diverging: bool = False,
                        figsize: Optional[Tuple[float, float]] = None, **kwargs) -> Figure:
    """One block x head heatmap (see `head_heatmap`) as a figure."""
    depth, heads = np.shape(values)
    if figsize is None:
        figsize = (min(max(3.2, 0.45 * heads + 2.0), 10.0), min(max(2.6, 0.35 * depth + 1.2), 9.0))
    fig = _figure(figsize)
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
    fig = _figure((panel_size[0] * len(panels), panel_size[1] + 0.4))
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
        fig.suptitle(_wrapped(fig, title, 10), fontsize=10)
    return fig


__all__ = ["cka_figure", "head_heatmap", "head_heatmap_figure", "heads_figure"]
