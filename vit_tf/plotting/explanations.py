"""Figures of the explanation maps (`vit_tf.explain`) and of the faithfulness curves
(`vit_tf.analysis.faithfulness`).

Every function builds a `matplotlib.figure.Figure` directly (no pyplot state, any backend, headless Agg included) in
constrained layout and returns it; `vit_tf.plotting.save_figure` writes it.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

from ..analysis.heatmaps import normalize_map, resize_maps
from . import common as C

# Display names, with the paper each method comes from.
METHOD_LABELS = {
    "attention": "Raw attention (last block)",
    "rollout": "Rollout (Abnar & Zuidema 2020)",
    "grad_rollout": "Grad rollout (vit-explain)",
    "gae": "GAE (Chefer et al. ICCV 2021)",
    "transformer_attribution": "Transformer attribution (Chefer et al. CVPR 2021)",
    "gradcam_attention": "Attention Grad-CAM",
    "gradcam_tokens": "Token Grad-CAM",
    "integrated_gradients": "Integrated gradients",
    "smoothgrad": "SmoothGrad",
}
_CMAP = "jet"  # the colour map of Chefer et al.'s and vit-explain's figures


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def explain_figure(image: np.ndarray, maps: Mapping[str, np.ndarray], title: str = "", ncols: Optional[int] = None,
                   tile: float = 2.6, alpha: float = 0.5) -> Figure:
    """The input and one panel per method: its map (gh, gw), upsampled bilinearly to the image and min-max scaled
    per map, over the image; one colorbar for all (each map from its own minimum to its maximum). A constant map
    (e.g. Grad-CAM's ReLU zeroing every patch) is not painted; its panel title says so.

    Args:
        image: uint8 (H, W, 3), the cropped model input for display.
        maps: method -> (gh, gw) map, in panel order.
        title: figure title (e.g. the model, class name and whether the weights are random).
        ncols: panels per row (default: all in one row up to 5).
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3), got {img.shape}")
    if not maps:
        raise ValueError("no maps to draw")
    n = len(maps) + 1
    cols = ncols or min(n, 5)
    rows = -(-n // cols)
    aspect = img.shape[0] / img.shape[1]
    fig = C.figure((tile * cols + 0.8, tile * aspect * rows + 0.9 + 0.25 * rows))
    axes = C.grid_axes(fig, rows, cols).ravel()
    axes[0].imshow(img)
    axes[0].set_title("Input", fontsize=9)
    for ax, (method, m) in zip(axes[1:], maps.items()):
        m = np.asarray(m, np.float64)
        ax.imshow(img)
        name = method_label(method)
        if np.ptp(m) > 0:
            ax.imshow(normalize_map(resize_maps(m, img.shape[:2])), cmap=_CMAP, alpha=alpha, vmin=0.0, vmax=1.0)
        else:  # e.g. Grad-CAM's ReLU zeroing every patch: say so rather than paint a flat colour
            name += f" (constant {m.flat[0]:.3g})"
        ax.set_title(C.wrap(name, tile, 8), fontsize=8)
    C.scaled_colorbar(fig, axes.tolist(), "relevance (per map)", _CMAP, shrink=0.8)
    if title:
        C.suptitle(fig, title)
    return fig


def faithfulness_figure(curves: Mapping[str, Mapping[str, Tuple[Sequence[float], Sequence[float]]]],
                        title: str = "", ylabel: str = "top-1 accuracy (%)",
                        panel_size: Tuple[float, float] = (4.2, 3.4)) -> Figure:
    """Perturbation curves side by side: one panel per curve kind (e.g. "positive, pixels"), one line per method.

    Args:
        curves: method -> {panel name: (removed fractions, values)}.
    """
    panels = list(dict.fromkeys(name for per in curves.values() for name in per))
    if not panels:
        raise ValueError("no curves to draw")
    fig = C.figure((panel_size[0] * len(panels), panel_size[1] + 0.9))
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    colors = C.colormap("tab10")
    for i, method in enumerate(curves):
        for ax, panel in zip(axes, panels):
            if panel in curves[method]:
                x, y = curves[method][panel]
                ax.plot(100.0 * np.asarray(x), y, marker="o", ms=3, color=colors(i % 10), label=method_label(method))
    for ax, panel in zip(axes, panels):
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("removed (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3), fontsize=8)
    if title:
        C.suptitle(fig, title)
    return fig


__all__ = ["METHOD_LABELS", "explain_figure", "faithfulness_figure", "method_label"]
