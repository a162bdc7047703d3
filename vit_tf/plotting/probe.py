"""Every figure of one `vit_tf.analysis.probe` result (what `vit-tf probe` and the app's "Save figures" write)."""

from __future__ import annotations

import os
from typing import Dict, Optional

from matplotlib.figure import Figure

from .attention import (attention_grid_figure, heatmaps_figure, masks_figure, mean_distance_figure,
                        rollout_figure)
from .common import DEFAULT_DPI, save_figure, token_name
from .embeddings import filter_pca_figure, filters_figure, position_cosine_figure, position_similarity_figure


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


__all__ = ["probe_figures", "render_probe_figures"]
