"""Compiled functions kept on a model: every repeated pass of the explanation, faithfulness and head analyses runs
as one traced `tf.function` per (model, purpose), so batches of any size reuse it and pay no Python per-layer cost.

`compiled(model, name, build)` is the cache; `logits_function(model)` the most used entry (float32 logits of a
batch, no attention maps).
"""

from __future__ import annotations

_CACHE = "_vit_tf_compiled_functions"  # attribute holding a model's traced functions


def compiled(model, name: str, build, jit_compile: bool = False, input_signature=None):
    """`tf.function(build(model))` made once per model and name (batch sizes vary without retracing). Kept on the
    model itself (set past Keras's attribute tracking), so the functions go with it when it is freed.

    Args:
        model: any object (a `VisionTransformer` in this package).
        name: the purpose; one function per name.
        build: `build(model) -> python function` to trace.
        jit_compile, input_signature: passed to `tf.function` (with a signature, no retracing at all).
    """
    import tensorflow as tf

    fns = model.__dict__.get(_CACHE)
    if fns is None:
        fns = {}
        object.__setattr__(model, _CACHE, fns)
    if name not in fns:
        fns[name] = tf.function(build(model), reduce_retracing=input_signature is None, jit_compile=jit_compile,
                                input_signature=input_signature)
    return fns[name]


def _build_logits(model):
    import tensorflow as tf

    def logits(images):
        return tf.cast(model(images, training=False, return_attention=False)[0], tf.float32)
    return logits


def logits_function(model):
    """The compiled `images (B, H, W, 3) -> float32 outputs (B, classes)` of a model (no attention maps)."""
    return compiled(model, "logits", _build_logits)
