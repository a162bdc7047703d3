"""The cascading randomisation figure of Adebayo et al. 2018 ("Sanity Checks for Saliency Maps", Fig. 2) for
`vit_tf.analysis.sanity_checks` results: one row per method, the map of the trained model and then the map after each
randomisation step, over the image; below, the rank correlation with the original map per step, one line per method.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..analysis.heatmaps import normalize_map, resize_maps
from . import common as C
from .explanations import method_label

_CMAP = "jet"
BASELINE_LABELS = {"random": "Random map (baseline)", "sobel": "Sobel edges (baseline)"}
_MORE_LABELS = {"attnlrp": "AttnLRP (Achtibat et al. 2024)"}  # where `METHOD_LABELS` has no entry yet


def source_label(name: str) -> str:
    """A method's display name, or a baseline's."""
    if name in BASELINE_LABELS:
        return BASELINE_LABELS[name]
    label = method_label(name)
    return _MORE_LABELS.get(name, label) if label == name else label


def _step_label(step: str) -> str:
    return step.replace("block_", "block ").replace("shuffled_labels", "shuffled labels")


def sanity_cascade_figure(image: np.ndarray, original: Mapping[str, np.ndarray], randomised: Mapping[str, np.ndarray],
                          steps: Sequence[str], curves: Mapping[str, Mapping[str, Sequence[float]]],
                          title: str = "", tile: float = 1.05, alpha: float = 0.55,
                          measures: Sequence[str] = ("spearman", "spearman_abs", "ssim"),
                          absolute: bool = True, box: Optional[Sequence[int]] = None,
                          baselines: Sequence[str] = ("random", "sobel")) -> Figure:
    """Rows = methods, columns = the trained model's map then each cumulative randomisation step (maps min-max
    scaled one by one, of |map| when `absolute`, as the paper shows them), and under them one panel per measure:
    its mean over the images per step, one line per method.

    Args:
        image: uint8 (H, W, 3), the input shown under every map.
        original: method -> (gh, gw) map of the trained model, in row order.
        randomised: method -> (S, gh, gw) maps after each step.
        steps: the S step names (`SanityResult.steps`).
        curves: method -> {measure: (S,) mean over images} (`SanityResult.means()`).
        box: (top, left, bottom, right) of the evidence, drawn on the trained column, or None.
        baselines: rows drawn as grey dashed lines in the curves (model-free maps).
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3), got {img.shape}")
    methods = list(original)
    if not methods:
        raise ValueError("no maps to draw")
    for m in methods:
        if np.shape(randomised[m])[0] != len(steps):
            raise ValueError(f"{m}: {np.shape(randomised[m])[0]} randomised maps for {len(steps)} steps")
    cols = len(steps) + 1
    rows = len(methods)
    fig = C.figure((tile * cols + 1.9, tile * rows + 3.4))
    top, bottom = fig.subfigures(2, 1, height_ratios=[tile * rows + 0.5, 2.9])
    axes = C.grid_axes(top, rows, cols)
    labels = ["trained"] + [_step_label(s) for s in steps]
    for r, m in enumerate(methods):
        stack = [np.asarray(original[m], np.float64)] + list(np.asarray(randomised[m], np.float64))
        for c, heat in enumerate(stack):
            ax = axes[r, c]
            ax.imshow(img)
            heat = np.abs(heat) if absolute else heat
            if np.ptp(heat) > 0:
                ax.imshow(normalize_map(resize_maps(heat, img.shape[:2])), cmap=_CMAP, alpha=alpha, vmin=0, vmax=1)
            else:
                ax.text(0.5, 0.5, "constant", transform=ax.transAxes, ha="center", va="center", fontsize=6,
                        color="white", bbox={"facecolor": "black", "alpha": 0.6, "pad": 1})
            if r == 0:
                ax.set_title(C.wrap(labels[c], tile, 7), fontsize=7)
            if c == 0:
                ax.text(-0.08, 0.5, C.wrap(source_label(m), 1.6, 7), transform=ax.transAxes, ha="right",
                        va="center", fontsize=7)
                if box is not None:
                    t, left, b, right = box
                    from matplotlib.patches import Rectangle
                    ax.add_patch(Rectangle((left - 0.5, t - 0.5), right - left, b - t, fill=False, ec="white",
                                           lw=1.0))
    C.scaled_colorbar(top, axes.ravel().tolist(), "|relevance| (per map)" if absolute else "relevance (per map)",
                      _CMAP, shrink=0.6)
    panels = np.atleast_1d(bottom.subplots(1, len(measures), sharey=True))
    colors = C.colormap("tab10")
    x = np.arange(len(steps))
    names = {"spearman": "Spearman ρ", "spearman_abs": "Spearman ρ of |map|", "ssim": "SSIM"}
    lowest = -0.25
    for ax, measure in zip(panels, measures):
        for i, m in enumerate(methods):
            y = np.asarray(curves[m][measure], np.float64)
            if np.isfinite(y).any():
                lowest = min(lowest, float(np.nanmin(y)) - 0.05)
            baseline = m in baselines
            ax.plot(x, y, marker="s" if baseline else "o", ms=2.5, lw=1.0 if baseline else 1.2,
                    ls="--" if baseline else "-", color="0.45" if baseline and m == "sobel" else
                    "0.75" if baseline else colors(i % 10), label=source_label(m))
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_xticks(x, [_step_label(s) for s in steps], rotation=60, ha="right", fontsize=6)
        ax.set_title(names.get(measure, measure) + " vs. the trained map", fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_xlabel("randomised down to", fontsize=7)
    for ax in panels:
        ax.set_ylim(lowest, 1.05)
    panels[0].set_ylabel("mean over images", fontsize=7)
    handles, names_ = panels[0].get_legend_handles_labels()
    bottom.legend(handles, names_, loc="outside right center", fontsize=6)
    if title:
        C.suptitle(fig, title)
    return fig


__all__ = ["BASELINE_LABELS", "sanity_cascade_figure", "source_label"]
