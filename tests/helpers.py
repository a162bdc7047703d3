"""Shared test helpers: one backbone check for every family, and timm reference builders."""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

import vit_tf


def random_images(batch, height, width, seed=0):
    return np.random.RandomState(seed).randn(batch, height, width, 3).astype("float32")


def check_backbone(model, images, tmp_path, atol=1e-6):
    """Shapes, attention keys and row sums, get_config round trip, tf.function, .keras and SavedModel reloads.

    Returns the eager outputs so callers can assert more.
    """
    c = model.config
    b, h, w = images.shape[:3]
    tokens = c.num_prefix_tokens + (h // c.patch_size) * (w // c.patch_size)
    outputs, attention = model(images)
    out_dim = c.num_classes or c.embed_dim
    assert tuple(outputs.shape) == (b, out_dim)
    assert sorted(attention) == sorted(f"transformer_block_{i}_att" for i in range(c.depth))
    for value in attention.values():
        assert tuple(value.shape) == (b, c.num_heads, tokens, tokens)
        np.testing.assert_allclose(np.sum(value, axis=-1), 1.0, atol=1e-5)
        assert np.all(np.asarray(value) >= 0)

    # The return contract holds in training mode too (dropout off here, so values agree).
    train_out, train_att = model(images, training=True)
    np.testing.assert_allclose(train_out, outputs, atol=atol)
    assert sorted(train_att) == sorted(attention)

    # get_config round trip gives the same architecture, and with the same weights the same numbers.
    clone = vit_tf.VisionTransformer.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(images)[0], outputs, atol=atol)

    traced = tf.function(lambda x: model(x))
    t_out, t_att = traced(tf.constant(images))
    np.testing.assert_allclose(t_out, outputs, atol=atol)
    np.testing.assert_allclose(t_att["transformer_block_0_att"], attention["transformer_block_0_att"], atol=atol)

    keras_path = os.path.join(tmp_path, "model.keras")
    model.save(keras_path)
    reloaded = keras.saving.load_model(keras_path)  # no custom_objects: the classes are registered
    r_out, r_att = reloaded(images)
    np.testing.assert_allclose(r_out, outputs, atol=atol)
    for key in attention:
        np.testing.assert_allclose(r_att[key], attention[key], atol=atol)

    sm_path = vit_tf.export_saved_model(model, os.path.join(tmp_path, "saved_model"))
    served = tf.saved_model.load(sm_path).signatures["serving_attention"](images=tf.constant(images))
    np.testing.assert_allclose(served[model.output_key], outputs, atol=atol)
    layer_out = keras.layers.TFSMLayer(sm_path, call_endpoint="serving_attention")(tf.constant(images))
    for key in attention:
        np.testing.assert_allclose(served[key], attention[key], atol=atol)
        np.testing.assert_allclose(layer_out[key], attention[key], atol=atol)
    np.testing.assert_allclose(layer_out[model.output_key], outputs, atol=atol)
    return outputs, attention


def timm_reference(timm_name, seed=0, **kwargs):
    """A timm model in eval mode with random weights (std 0.2 so every layer matters), unfused attention and
    dynamic image size, plus its state dict as NumPy arrays."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(timm_name, pretrained=False, dynamic_img_size=True, **kwargs).eval()
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False  # so the softmax probabilities exist to be extracted
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    return model, {k: v.detach().numpy() for k, v in model.state_dict().items()}


def timm_forward(model, images):
    """(logits as NumPy, [attention of each block as NumPy]) from a timm model on NHWC images."""
    import torch
    from timm.utils import AttentionExtract

    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    extractor = AttentionExtract(model, method="hook")  # hooks on every block's attn_drop (eval: identity)
    with torch.no_grad():
        attention = extractor(x)
        logits = model(x)
    return logits.numpy(), [v.numpy() for v in attention.values()]


def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
