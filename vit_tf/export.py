"""TensorFlow SavedModel export with a `serving_default` signature.

Signature: `images` float32 (batch, H, W, 3), already preprocessed, any H and W that are multiples of the patch
size -> {"logits" | "features": ..., "transformer_block_{i}_att": (batch, heads, T, T), ...}. A distilled DeiT also
returns "cls_logits" and "dist_logits"; every model returns "features" (final-norm class token).
"""

from __future__ import annotations

import os
import shutil
import tempfile

import tensorflow as tf


def serving_function(model):
    """The `tf.function` behind `serving_default`."""
    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="images")])
    def serve(images):
        outputs, attention = model.forward_all(images, training=False)
        return {**outputs, **attention}
    return serve


class _Exportable(tf.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.serve = serving_function(model)


def export_saved_model(model, path: str) -> str:
    """Write `model` as a SavedModel at `path` (written under a temporary name, renamed when complete)."""
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-savedmodel-", dir=parent)
    try:
        module = _Exportable(model)
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
