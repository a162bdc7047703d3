"""vit_tf: Vision Transformers (ViT, DeiT, DINO, DINOv2) in Keras 3 that return their attention maps.

Every model call returns `(outputs, attention_scores)`; `attention_scores["transformer_block_{i}_att"]` is block
i's softmax attention, shape (batch, heads, tokens, tokens).

`import vit_tf` is cheap: the names below are loaded on first use, so that `vit-tf --help` and argument errors
answer without importing TensorFlow. The Keras classes register themselves as soon as Keras is imported (by vit_tf
or by the user), so `.keras` files load without `custom_objects` after `import vit_tf`.
"""

import importlib as _importlib
import os as _os
import sys as _sys

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
from . import compat as _compat; _compat.install_import_guards()  # noqa: E402,E702  triton after TF: see compat

__version__ = "0.1.0"

# name -> submodule that defines it
_EXPORTS = {
    # models, registry, weights
    "SIZES": "configs", "ViTConfig": "configs", "parse_arch": "configs",
    "ALIASES": "registry", "ModelEntry": "registry", "Recipe": "registry", "get_entry": "registry",
    "list_models": "registry",
    "create_model": "factory", "VisionTransformer": "model", "attention_key": "model",
    "export_saved_model": "export", "SavedModel": "saved", "load": "saved", "load_checkpoint": "checkpoints",
    "preprocess": "preprocessing",
    "CheckpointError": "weights", "LoadReport": "weights", "load_timm_state_dict": "weights",
    "read_state_dict": "weights", "timm_state_dict": "weights",
    # analysis (vit_tf.analysis; figures in vit_tf.plotting)
    **{name: "analysis" for name in (
        "attention_grid", "attention_mass_mask", "attention_rollout", "attention_source", "mean_attention_distance",
        "patch_filter_pca", "patch_filters", "position_embedding_cosine", "position_embedding_similarity", "probe",
        "token_attention")},
    "explain": "analysis.explanations", "token_norms": "analysis.norms", "high_norm_tokens": "analysis.norms",
    "linear_cka": "analysis.cka", "layer_cka": "analysis.cka", "head_importance": "analysis.heads",
    # ground truth for explanations: composites with known evidence, their classifier, localisation metrics
    "composite_classifier": "composites", "make_composites": "composites",
    **{name: "analysis.localisation" for name in (
        "mask_auroc", "pointing_game", "relevance_mass_accuracy", "relevance_rank_accuracy")},
}
# Modules that import neither TensorFlow nor Keras.
_LIGHT = {"configs", "registry"}

__all__ = sorted(_EXPORTS)


def _check_backend():
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ImportError(f"vit_tf needs the TensorFlow backend of Keras 3; KERAS_BACKEND is "
                          f"{keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow before importing keras.")


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vit_tf' has no attribute {name!r}")
    if module not in _LIGHT:
        _check_backend()
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


def _register_keras_classes():
    """Import the modules whose Keras classes are registered for deserialization.

    When Keras was imported by one of our own modules while it is still initialising (e.g. `import vit_tf.layers`
    first), importing the model here would re-enter that module half-built; the import under way registers what it
    defines, and `vit_tf.VisionTransformer` imports the rest on first use."""
    _check_backend()
    if any(getattr(getattr(m, "__spec__", None), "_initializing", False)
           for name, m in list(_sys.modules.items()) if name.startswith(__name__ + ".")):
        return
    _importlib.import_module(".model", __name__)


class _AfterKerasImport:
    """A `sys.meta_path` finder that, once `keras` has been imported by anyone, registers vit_tf's Keras classes
    (so `keras.saving.load_model("m.keras")` finds them); it removes itself after firing."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        _sys.meta_path.remove(self)
        spec = _importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return None
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_keras_classes()

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in _sys.modules:  # Keras is loaded already: registering now costs nothing more
    _register_keras_classes()
else:
    import importlib.util  # noqa: E402,F401  (used by the finder)

    _sys.meta_path.insert(0, _AfterKerasImport())
