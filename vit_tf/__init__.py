"""vit_tf: Vision Transformers (ViT, DeiT, DINO) in Keras 3 that return their attention maps.

Every model call returns `(outputs, attention_scores)`; `attention_scores["transformer_block_{i}_att"]` is block
i's softmax attention, shape (batch, heads, tokens, tokens).
"""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
from . import compat as _compat; _compat.install_import_guards()  # noqa: E402,E702  triton after TF: see compat

import keras as _keras  # noqa: E402

if _keras.backend.backend() != "tensorflow":
    raise ImportError(f"vit_tf needs the TensorFlow backend of Keras 3; KERAS_BACKEND is "
                      f"{_keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow before importing keras.")

from .checkpoints import load_checkpoint  # noqa: E402
from .configs import SIZES, ViTConfig, parse_arch  # noqa: E402
from .export import export_saved_model  # noqa: E402
from .factory import create_model  # noqa: E402
from .model import VisionTransformer, attention_key  # noqa: E402
from .preprocessing import preprocess  # noqa: E402
from .registry import ALIASES, ModelEntry, Recipe, get_entry, list_models  # noqa: E402
from .saved import SavedModel, load  # noqa: E402
from .weights import CheckpointError, LoadReport, load_timm_state_dict, read_state_dict, timm_state_dict  # noqa: E402

# Analysis toolkit (vit_tf.analysis; figures in vit_tf.plotting).
from .analysis import (attention_grid, attention_mass_mask, attention_rollout, attention_source,  # noqa: E402
                       mean_attention_distance, patch_filter_pca, patch_filters, position_embedding_cosine,
                       position_embedding_similarity, probe, token_attention)

__version__ = "0.1.0"

__all__ = [
    # models, registry, weights
    "ALIASES", "CheckpointError", "LoadReport", "ModelEntry", "Recipe", "SIZES", "SavedModel", "ViTConfig",
    "VisionTransformer", "attention_key", "create_model", "export_saved_model", "get_entry", "list_models", "load",
    "load_checkpoint", "load_timm_state_dict", "parse_arch", "preprocess", "read_state_dict", "timm_state_dict",
    # analysis
    "attention_grid", "attention_mass_mask", "attention_rollout", "attention_source", "mean_attention_distance",
    "patch_filter_pca", "patch_filters", "position_embedding_cosine", "position_embedding_similarity", "probe",
    "token_attention",
]
