"""TensorFlow SavedModel export.

Signatures (both take `images`: float32 (batch, H, W, 3), already preprocessed, any H and W that are multiples of the
patch size):
  - `serving_default` -> the outputs only: {"logits" (when the model has a classifier), "features", and for a
    distilled DeiT "cls_logits" and "dist_logits"}, all float32. No attention map is computed.
  - `serving_attention` -> the same plus every "transformer_block_{i}_att" (batch, heads, T, T).
The model's config, eval recipe and weight name are stored as JSON in the string variable `vit_tf_metadata`, which
`vit_tf.load` / `vit_tf.SavedModel` read back.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from .files import atomic_directory
from .saved import METADATA


def serving_functions(model):
    """(serve, serve_attention): the `tf.function`s behind `serving_default` and `serving_attention`."""
    spec = [tf.TensorSpec((None, None, None, 3), tf.float32, name="images")]

    @tf.function(input_signature=spec)
    def serve(images):
        outputs, _ = model.forward_all(images, training=False, return_attention=False)
        return outputs

    @tf.function(input_signature=spec)
    def serve_attention(images):
        outputs, attention = model.forward_all(images, training=False, return_attention=True)
        return {**outputs, **attention}

    return serve, serve_attention


def metadata(model) -> dict:
    """What a SavedModel needs to be used without the Python object: config, recipe, names."""
    return {"name": model.weight_name or model.name, "config": model.config.to_dict(),
            "preprocessing": model.recipe.to_dict(), "output_key": model.output_key,
            "dtype": model.dtype_policy.name}


class _Exportable(tf.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.serve, self.serve_attention = serving_functions(model)
        setattr(self, METADATA, tf.Variable(json.dumps(metadata(model)), trainable=False, dtype=tf.string))


def export_saved_model(model, path: str) -> str:
    """Write `model` as a SavedModel at `path` (written under a temporary name, renamed when complete)."""
    path = os.fspath(path)
    with atomic_directory(path, replace=True) as tmp:
        module = _Exportable(model)
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve,
                                                     "serving_attention": module.serve_attention})
    return path
