"""Analysis of Vision Transformer attention and embeddings: the probes of the keras.io example "Investigating
Vision Transformer representations" (Gosthipaty & Paul, 2022) and of timm's attention-map recipe.

Beyond the example: attention reduced inside the forward pass (`graph`), layer similarity by CKA (`cka`) and head
importance, ablation and entropy (`heads`).

Pure functions: arrays in (NumPy, TF or torch tensors; our models' attention dicts), NumPy arrays out. Any batch
size and grid shape; prefix tokens (class, distillation) are always passed explicitly as `num_prefix_tokens`.
Figures are drawn by `vit_tf.plotting`.
"""

from .baselines import random_map, sobel_map
from .cka import LayerSimilarity, MinibatchCKA, layer_cka, linear_cka, token_features
from .distance import RunningMoments, accumulate_mean_distance, mean_attention_distance, patch_distance_matrix
from .embeddings import patch_filter_pca, patch_filters, position_embedding_cosine, position_embedding_similarity
from .explanations import METHODS as EXPLAIN_METHODS, Explainer, attention_gradients, explain
from .faithfulness import (CurveMeans, forward_token_subset, insertion_deletion, perturbation_auc, perturbation_curves,
                           rise_auc, road, saco)
from .graph import GraphAnalysis, dataset_mean_distance
from .heads import HeadResult, attention_entropy, head_ablation, head_importance, head_statistics
from .heatmaps import (apply_mask, attention_grid, attention_mass_mask, colorize, display_images, normalize_map,
                       overlay, resize_maps, token_attention)
from .images import iter_batches, list_images, load_image, prepare
from .localisation import mask_auroc, pointing_game, relevance_mass_accuracy, relevance_rank_accuracy
from .norms import high_norm_tokens, norm_summary, token_norms
from .probe import ProbeResult, imagenet_class_names, probe, top_k
from .rollout import attention_rollout, discard_lowest, fuse_heads, rollout_matrix, rollout_stats
from .sanity import SanityChecker, SanityResult, sanity_checks
from .sources import KerasSource, SavedModelSource, TimmSource, attention_source, import_timm

__all__ = [
    "CurveMeans", "EXPLAIN_METHODS", "Explainer", "attention_gradients", "explain", "forward_token_subset",
    "insertion_deletion", "perturbation_auc", "perturbation_curves", "rise_auc", "road", "saco",
    "GraphAnalysis", "HeadResult", "LayerSimilarity", "MinibatchCKA", "attention_entropy", "dataset_mean_distance",
    "head_ablation", "head_importance", "head_statistics", "high_norm_tokens", "layer_cka", "linear_cka",
    "norm_summary", "token_features", "token_norms",
    "KerasSource", "ProbeResult", "RunningMoments", "SavedModelSource", "TimmSource", "accumulate_mean_distance",
    "apply_mask", "attention_grid", "attention_mass_mask", "attention_rollout", "attention_source", "colorize",
    "discard_lowest", "display_images", "fuse_heads", "imagenet_class_names", "import_timm", "iter_batches",
    "list_images", "load_image", "mean_attention_distance", "normalize_map", "overlay", "patch_distance_matrix",
    "patch_filter_pca", "patch_filters", "position_embedding_cosine", "position_embedding_similarity", "prepare",
    "probe", "resize_maps", "rollout_matrix", "rollout_stats", "token_attention", "top_k",
    "mask_auroc", "pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy",
    "SanityChecker", "SanityResult", "random_map", "sanity_checks", "sobel_map",
]
