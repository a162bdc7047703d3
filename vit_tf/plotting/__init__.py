"""Matplotlib figures of the `vit_tf.analysis` arrays, a module per subject:

- `attention`: mean attention distance, rollout, per-head heatmaps and masks, the block x head grid;
- `embeddings`: patch-projection filters and position-embedding similarity;
- `probe`: every figure of one `vit_tf.analysis.probe` result;
- `explanations`: explanation maps (`vit_tf.explain`) and faithfulness curves;
- `representations`: layer x layer CKA;
- `heads`: block x head importance, ablation and entropy;
- `sanity`: the cascading randomisation of explanation maps (Adebayo et al. 2018, Fig. 2);
- `benchmark`: the explanation benchmark's bar charts and example maps with their ground-truth boxes;
- `common`: `save_figure`, `token_name` and the layout helpers they share.

Every function builds a `matplotlib.figure.Figure` directly (no pyplot state), so it works under any backend,
including Agg on headless machines, and returns it; `save_figure` writes a PNG of exactly figsize x dpi pixels,
under a temporary name renamed into place when complete. Every public function is importable from here:
`from vit_tf import plotting; plotting.heatmaps_figure(...)`.
"""

from .attention import (attention_grid_figure, distance_comparison_figure, heatmaps_figure, masks_figure,
                        mean_distance_figure, rollout_figure)
from .benchmark import benchmark_bars_figure, benchmark_examples_figure, benchmark_figures
from .common import DEFAULT_DPI, save_figure, token_name
from .embeddings import filter_pca_figure, filters_figure, position_cosine_figure, position_similarity_figure
from .explanations import METHOD_LABELS, explain_figure, faithfulness_figure, method_label
from .heads import head_heatmap, head_heatmap_figure, heads_figure
from .probe import probe_figures, render_probe_figures
from .representations import cka_figure
from .sanity import sanity_cascade_figure

__all__ = [
    "DEFAULT_DPI", "METHOD_LABELS", "attention_grid_figure", "cka_figure", "distance_comparison_figure",
    "explain_figure", "faithfulness_figure", "filter_pca_figure", "filters_figure", "head_heatmap",
    "head_heatmap_figure", "heads_figure", "heatmaps_figure", "masks_figure", "mean_distance_figure", "method_label",
    "position_cosine_figure", "position_similarity_figure", "probe_figures", "render_probe_figures",
    "rollout_figure", "save_figure", "token_name",
    "benchmark_bars_figure", "benchmark_examples_figure", "benchmark_figures", "sanity_cascade_figure",
]
