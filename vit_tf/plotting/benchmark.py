"""Figures of the explanation benchmark (`vit_tf.benchmark`): one bar chart per metric family (mean and 95 %
interval per method) and example maps over test images with the ground-truth boxes drawn."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..analysis.heatmaps import normalize_map, resize_maps
from . import common as C
from .sanity import sanity_cascade_figure, source_label

_CMAP = "jet"
METRIC_LABELS = {
    "pointing_game": "pointing game (hit rate)", "relevance_mass": "relevance mass accuracy",
    "relevance_rank": "relevance rank accuracy", "mask_auroc": "mask AUROC",
    "deletion_auc": "deletion AUC", "insertion_auc": "insertion AUC",
    "positive_perturbation_auc": "positive perturbation AUC", "negative_perturbation_auc": "negative perturbation AUC",
    "road_morf_auc": "ROAD MoRF AUC", "road_lerf_auc": "ROAD LeRF AUC", "saco": "SaCo",
    "cascade_spearman": "Spearman, full cascade", "cascade_spearman_abs": "Spearman |.|, full cascade",
    "cascade_ssim": "SSIM, full cascade", "data_spearman": "Spearman, shuffled labels",
    "data_spearman_abs": "Spearman |.|, shuffled labels", "data_ssim": "SSIM, shuffled labels",
}


def metric_label(metric: str, higher_is_better: Optional[bool] = None) -> str:
    arrow = "" if higher_is_better is None else (" ↑" if higher_is_better else " ↓")
    return METRIC_LABELS.get(metric, metric) + arrow


def benchmark_bars_figure(summary: Mapping[str, Mapping[str, Mapping[str, float]]], metrics: Sequence[str],
                          higher_is_better: Optional[Mapping[str, bool]] = None, title: str = "",
                          baselines: Sequence[str] = ("random", "sobel"), panel: float = 2.7) -> Figure:
    """One panel per metric, one horizontal bar per method: the mean with its 95 % interval (`ci_low`, `ci_high`);
    baselines in grey. A metric undefined for a method (NaN) leaves its bar out and says "n/a".

    Args:
        summary: method -> metric -> {"mean", "ci_low", "ci_high", ...} (`vit_tf.benchmark.summarise`).
        metrics: the panels, in order.
        higher_is_better: metric -> bool, shown as an arrow in the panel title.
    """
    methods = list(summary)
    if not methods or not metrics:
        raise ValueError("no methods or no metrics to draw")
    cols = 3 if len(metrics) % 3 == 0 else min(len(metrics), 4)
    rows = -(-len(metrics) // cols)
    fig = C.figure((panel * cols + 2.2, 0.22 * len(methods) * rows + 0.9 * rows + 0.6))
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False, sharey=True))
    y = np.arange(len(methods))[::-1]
    colors = C.colormap("tab10")
    for k, ax in enumerate(axes.ravel()):
        if k >= len(metrics):
            ax.set_axis_off()
            continue
        metric = metrics[k]
        for i, m in enumerate(methods):
            s = summary[m][metric]
            mean = s["mean"]
            if mean is None or not np.isfinite(mean):
                ax.text(0.0, y[i], " n/a", va="center", fontsize=6, color="0.4")
                continue
            low, high = s.get("ci_low"), s.get("ci_high")
            err = None
            if low is not None and high is not None and np.isfinite(low) and np.isfinite(high):
                err = [[mean - low], [high - mean]]
            color = "0.6" if m in baselines else colors(i % 10)
            ax.barh(y[i], mean, xerr=err, color=color, height=0.7, error_kw={"lw": 0.8, "capsize": 1.5})
        ax.axvline(0.0, color="0.3", lw=0.6)
        better = None if higher_is_better is None else higher_is_better.get(metric)
        ax.set_title(C.wrap(metric_label(metric, better), panel, 8), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_yticks(y, [source_label(m) for m in methods], fontsize=7)
    if title:
        C.suptitle(fig, title)
    return fig


def benchmark_examples_figure(images: np.ndarray, maps: Mapping[str, np.ndarray], boxes: Optional[np.ndarray] = None,
                              row_labels: Optional[Sequence[str]] = None, title: str = "", tile: float = 1.35,
                              alpha: float = 0.5) -> Figure:
    """Rows = images, columns = the input then each method's map (min-max scaled per map, bilinear to the image,
    over it); the ground-truth box (top, left, bottom, right) drawn on every panel.

    Args:
        images: uint8 (E, H, W, 3).
        maps: method -> (E, gh, gw), in column order.
        boxes: (E, 4) int boxes, or None.
        row_labels: one label per image (e.g. the class), shown left of the row.
    """
    from matplotlib.patches import Rectangle

    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3:
        raise ValueError(f"images must be (E, H, W, 3), got {imgs.shape}")
    if not maps:
        raise ValueError("no maps to draw")
    methods = list(maps)
    rows, cols = len(imgs), len(methods) + 1
    fig = C.figure((tile * cols + 1.0, tile * rows + 1.0))
    axes = C.grid_axes(fig, rows, cols)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(imgs[r])
            if c:
                heat = np.asarray(maps[methods[c - 1]][r], np.float64)
                if np.ptp(heat) > 0:
                    ax.imshow(normalize_map(resize_maps(heat, imgs.shape[1:3])), cmap=_CMAP, alpha=alpha, vmin=0,
                              vmax=1)
                else:
                    ax.text(0.5, 0.5, "constant", transform=ax.transAxes, ha="center", va="center", fontsize=6,
                            color="white", bbox={"facecolor": "black", "alpha": 0.6, "pad": 1})
            if boxes is not None:
                t, left, b, right = (int(v) for v in boxes[r])
                ax.add_patch(Rectangle((left - 0.5, t - 0.5), right - left, b - t, fill=False, ec="white", lw=1.0,
                                       ls="--"))
            if r == 0:
                ax.set_title(C.wrap("Input" if c == 0 else source_label(methods[c - 1]), tile, 7), fontsize=7)
        if row_labels is not None:
            axes[r, 0].text(-0.06, 0.5, row_labels[r], transform=axes[r, 0].transAxes, ha="right", va="center",
                            fontsize=7, rotation=90)
    C.scaled_colorbar(fig, axes.ravel().tolist(), "relevance (per map)", _CMAP, shrink=0.6)
    if title:
        C.suptitle(fig, title)
    return fig


def benchmark_figures(record: Mapping, images: np.ndarray, boxes: Optional[np.ndarray] = None,
                      class_names: Optional[Sequence[str]] = None, examples: int = 4, network: str = "") -> dict:
    """Every figure of a benchmark record (the JSON `vit_tf.benchmark.to_json` writes), by file name:
    "localisation.png", "faithfulness.png", "sanity.png" (bar charts), "sanity_cascade.png" (the cascade of the
    first image with sanity checks) and "examples.png" (the first `examples` images).

    Args:
        record: the benchmark record.
        images: uint8 (N, H, W, 3), the displayed test images, at least as many as `examples` (and 1 for the cascade).
        boxes: (N, 4) ground-truth boxes (top, left, bottom, right), or None.
        class_names: names of the classes, for the row labels.
        network: what the network is, for the titles.
    """
    summary, better = record["summary"], record.get("higher_is_better")
    n = record["images"]
    figures = {}
    for family, metrics in record["metrics"].items():
        defined = [m for m in metrics if any(summary[s][m]["mean"] is not None for s in summary)]
        if defined:
            counted = max((summary[s][m]["n"] for s in summary for m in defined), default=n)
            figures[f"{family}.png"] = benchmark_bars_figure(
                summary, defined, better, title=f"{network}: {family} (mean and 95 % interval over {counted} test "
                                                f"images)")
    labels = [record["labels"][i] for i in range(min(examples, n))]
    names = [class_names[k] if class_names is not None else str(k) for k in labels]
    if examples and n:
        e = min(examples, n, len(images))
        figures["examples.png"] = benchmark_examples_figure(
            images[:e], {m: np.asarray(v, np.float64)[:e] for m, v in record["maps"].items()},
            None if boxes is None else np.asarray(boxes)[:e], names[:e],
            title=f"{network}: every method's map of the true class (dashed: the pasted object, the evidence)")
    cascade = record.get("sanity", {}).get("cascading")
    if cascade:
        first = next(iter(cascade.values()))
        curves = record["sanity_curves"]["cascading"]
        figures["sanity_cascade.png"] = sanity_cascade_figure(
            images[0], {m: np.asarray(r["original_maps"], np.float64)[0] for m, r in cascade.items()},
            {m: np.asarray(r["randomised_maps"], np.float64)[:, 0] for m, r in cascade.items()}, first["steps"],
            {m: {k: np.asarray([np.nan if v is None else v for v in c[k]], np.float64)
                 for k in ("spearman", "spearman_abs", "ssim")} for m, c in curves.items()},
            title=f"{network}: cascading randomisation (Adebayo et al. 2018); maps of test image 0, curves over "
                  f"{len(first['targets'])} images",
            box=None if boxes is None else [int(v) for v in np.asarray(boxes)[0]])
    return figures


__all__ = ["METRIC_LABELS", "benchmark_bars_figure", "benchmark_examples_figure", "benchmark_figures",
           "metric_label"]
