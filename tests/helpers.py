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
    """The contract every family must keep (keras-hub's run_backbone_test idea): shapes, attention keys and row
    sums, training mode, get_config round trip, tf.function, XLA, `return_attention`, `head_mask`, bfloat16 and a
    mixed policy, `.keras` and SavedModel reloads (both signatures, recipe kept) giving identical outputs.

    Returns the eager outputs so callers can assert more.
    """
    c = model.config
    b, h, w = images.shape[:3]
    tokens = c.num_prefix_tokens + (h // c.patch_size) * (w // c.patch_size)
    keys = [f"transformer_block_{i}_att" for i in range(c.depth)]
    outputs, attention = model(images)
    out_dim = c.num_classes or c.embed_dim
    assert tuple(outputs.shape) == (b, out_dim) and outputs.dtype == tf.float32
    assert sorted(attention) == sorted(keys)
    for value in attention.values():
        assert tuple(value.shape) == (b, c.num_heads, tokens, tokens) and value.dtype == tf.float32
        np.testing.assert_allclose(np.sum(value, axis=-1), 1.0, atol=1e-5)
        assert np.all(np.asarray(value) >= 0)

    # The return contract holds in training mode too (dropout off here, so values agree).
    train_out, train_att = model(images, training=True)
    np.testing.assert_allclose(train_out, outputs, atol=atol)
    assert sorted(train_att) == sorted(attention)

    # Attention on request: none, some (negative indices count from the end), all; the fused path agrees.
    fused_out, none = model(images, return_attention=False)
    assert none == {}
    np.testing.assert_allclose(fused_out, outputs, atol=1e-5)
    _, some = model(images, return_attention=[0, -1])
    assert sorted(some) == sorted({keys[0], keys[-1]})
    np.testing.assert_allclose(some[keys[-1]], attention[keys[-1]], atol=1e-6)

    # Head mask: ones change nothing; a zeroed head returns a zero map and changes the outputs.
    ones = np.ones((c.depth, c.num_heads), np.float32)
    np.testing.assert_allclose(model(images, head_mask=ones)[0], outputs, atol=atol)
    mask = ones.copy()
    mask[0, 0] = 0.0
    masked_out, masked_att = model(images, head_mask=mask)
    assert np.all(np.asarray(masked_att[keys[0]])[:, 0] == 0)
    np.testing.assert_allclose(masked_att[keys[0]][:, 1:], attention[keys[0]][:, 1:], atol=atol)
    assert np.max(np.abs(np.asarray(masked_out) - np.asarray(outputs))) > 1e-6
    np.testing.assert_allclose(model(images, head_mask=mask, return_attention=False)[0], masked_out, atol=1e-5)

    # get_config round trip gives the same architecture, and with the same weights the same numbers.
    config = model.get_config()
    clone = vit_tf.VisionTransformer.from_config(config)
    assert clone.get_config() == config and clone.recipe == model.recipe
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(images)[0], outputs, atol=atol)

    # A traced graph fuses MatMul + BiasAdd + GELU into one oneDNN kernel (eager runs them apart), so it rounds
    # differently: equal to float32 rounding through a few blocks, 1e-5 as for XLA.
    traced = tf.function(lambda x: model(x))
    t_out, t_att = traced(tf.constant(images))
    np.testing.assert_allclose(t_out, outputs, atol=1e-5)
    np.testing.assert_allclose(t_att[keys[0]], attention[keys[0]], atol=1e-5)
    xla = tf.function(lambda x: model(x, return_attention=[-1]), jit_compile=True)
    x_out, x_att = xla(tf.constant(images))
    np.testing.assert_allclose(x_out, outputs, atol=1e-5)
    np.testing.assert_allclose(x_att[keys[-1]], attention[keys[-1]], atol=1e-5)

    # Reduced precision: same weights, outputs and maps stay float32, rows sum to 1 within 1e-6.
    for policy in ("bfloat16", "mixed_float16"):
        low = vit_tf.VisionTransformer.from_config({**config, "dtype": policy})
        low.set_weights(model.get_weights())
        l_out, l_att = low(images)
        assert l_out.dtype == tf.float32 and all(v.dtype == tf.float32 for v in l_att.values())
        for value in l_att.values():
            np.testing.assert_allclose(np.sum(value, axis=-1), 1.0, atol=1e-6)
        scale = 1.0 + float(np.max(np.abs(outputs)))
        assert float(np.max(np.abs(np.asarray(l_out) - np.asarray(outputs)))) < 0.1 * scale, policy
        assert float(np.max(np.abs(np.asarray(l_att[keys[-1]]) - np.asarray(attention[keys[-1]])))) < 0.05, policy

    keras_path = os.path.join(tmp_path, "model.keras")
    model.save(keras_path)
    reloaded = keras.saving.load_model(keras_path)  # no custom_objects: the classes are registered
    assert reloaded.recipe == model.recipe and reloaded.weight_name == model.weight_name
    r_out, r_att = reloaded(images)
    np.testing.assert_allclose(r_out, outputs, atol=atol)
    for key in attention:
        np.testing.assert_allclose(r_att[key], attention[key], atol=atol)

    sm_path = vit_tf.export_saved_model(model, os.path.join(tmp_path, "saved_model"))
    loaded = tf.saved_model.load(sm_path)
    plain = loaded.signatures["serving_default"](images=tf.constant(images))
    assert not any(k.endswith("_att") for k in plain)  # the default signature computes no map
    np.testing.assert_allclose(plain[model.output_key], outputs, atol=1e-5)
    # The SavedModel signatures are traced graphs: fused kernels, so the traced-graph tolerance (1e-5) above.
    graph_atol = max(atol, 1e-5)
    served = loaded.signatures["serving_attention"](images=tf.constant(images))
    np.testing.assert_allclose(served[model.output_key], outputs, atol=graph_atol)
    layer_out = keras.layers.TFSMLayer(sm_path, call_endpoint="serving_attention")(tf.constant(images))
    for key in attention:
        np.testing.assert_allclose(served[key], attention[key], atol=graph_atol)
        np.testing.assert_allclose(layer_out[key], attention[key], atol=graph_atol)
    np.testing.assert_allclose(layer_out[model.output_key], outputs, atol=graph_atol)
    wrapped = vit_tf.load(sm_path)  # the one SavedModel wrapper: same contract, recipe and geometry kept
    assert wrapped.recipe == model.recipe and wrapped.patch_size == c.patch_size
    assert wrapped.num_prefix_tokens == c.num_prefix_tokens
    w_out, w_att = wrapped(images)
    np.testing.assert_allclose(w_out, outputs, atol=graph_atol)
    assert sorted(w_att) == sorted(keys) and wrapped(images, return_attention=False)[1] == {}
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


def official_interpolate(pos_embed, h0, w0, offset, antialias):
    """facebookresearch/dinov2 `interpolate_pos_encoding` (and DINO's, with offset 0.1 and no antialias) for a
    (1, 1 + M*M, D) table and an h0 x w0 patch grid, in torch: scale factors (n + offset) / M when offset is given,
    else the output size; the table unchanged when the grid is square and has the table's M*M patches."""
    import math

    import torch

    pos_embed = torch.as_tensor(pos_embed)
    n = pos_embed.shape[1] - 1
    m = int(math.sqrt(n))
    if h0 * w0 == n and h0 == w0:
        return pos_embed
    kwargs = dict(scale_factor=((h0 + offset) / m, (w0 + offset) / m)) if offset else dict(size=(h0, w0))
    grid = pos_embed[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, mode="bicubic", antialias=antialias, **kwargs)
    assert tuple(grid.shape[-2:]) == (h0, w0)
    return torch.cat([pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)], dim=1)


def run_cli(capsys, *argv):
    """`vit-tf ARGV` in-process, through the command line's own parser, checks and handler (`vit_tf.cli.main`).

    With pytest's `capsys`: as a user runs it (every error one line and an exit status); returns (exit status,
    stdout, stderr). With None: the parser, the command's `check` and its handler called directly, so that an error
    raises its exception (argparse's SystemExit, the check's or the handler's; for `pytest.raises`) and what the
    command prints stays for the test to read; returns the handler's exit status.
    """
    from vit_tf import cli

    argv = [str(a) for a in argv]
    if capsys is None:
        args = cli.build_parser().parse_args(argv)
        if getattr(args, "check", None) is not None:
            args.check(args)
        return args.func(args)
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err
