"""The tests' oracle for transformer attribution: the model's eval forward pass recomputed in float64 from its
weights with plain TensorFlow ops (independent of `VisionTransformer`'s code), recording what LRP reads. The library
computes the attribution with the model's own blocks run in float64 (`forward_intermediates(dtype="float64")`);
tests check that the two agree within 1e-4 (relative) and that the replica equals the model's float32 logits."""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np


def float64_forward(model, images) -> Tuple[object, Dict[str, object]]:
    """The model's eval forward pass recomputed in float64 from its weights (patch convolution, position
    embeddings, LayerNorm, Dense, exact GELU, softmax, LayerScale, head), with the same record as
    `traced_forward`. LRP divides by pre-activations that cross zero, which amplifies float32 rounding about a
    thousandfold; the float64 replica keeps the relevance reproducible (tested against `model(images)`).
    Position embeddings resampled to another grid are resampled in float32 first, as the model does."""
    import tensorflow as tf

    from vit_tf.layers import resample_grid

    c = model.config
    f64 = lambda t: tf.cast(t, tf.float64)  # noqa: E731
    p = c.patch_size
    x = tf.convert_to_tensor(images)
    proj = model.patch_embed.proj
    t = tf.nn.conv2d(f64(x), f64(proj.kernel), strides=p, padding="VALID") + f64(proj.bias)
    b, gh, gw = t.shape[0], t.shape[1], t.shape[2]
    t = tf.reshape(t, (b, gh * gw, c.embed_dim))
    n_pos = c.num_pos_prefix_tokens
    pos = tf.cast(model.pos_embed, tf.float32)
    grid = tf.reshape(pos[:, n_pos:], (1, *c.grid_size, c.embed_dim))
    if (gh, gw) != tuple(c.grid_size):
        grid = resample_grid(grid, (gh, gw), c.pos_embed_interpolation)
    t = t + f64(tf.reshape(grid, (1, -1, c.embed_dim)))
    prefix = tf.concat([f64(v) for v in (model.cls_token, model.dist_token, model.reg_token) if v is not None], 1)
    if n_pos:
        prefix = prefix + f64(model.pos_embed)[:, :n_pos]
    h = tf.concat([tf.tile(prefix, (b, 1, 1)), t], axis=1)

    def norm(layer, v):
        mean, var = tf.nn.moments(v, axes=[-1], keepdims=True)
        return (v - mean) * tf.math.rsqrt(var + layer.epsilon) * f64(layer.gamma) + f64(layer.beta)

    def dense(layer, v):
        out = tf.tensordot(v, f64(layer.kernel), 1)
        return out + f64(layer.bias) if layer.use_bias else out

    blocks = []
    for block in model.blocks:
        if block.mlp_type != "gelu":
            raise ValueError(f"LRP supports the GELU MLP only, not {block.mlp_type!r}")
        attn, n = block.attn, h.shape[1]
        n1 = norm(block.norm1, h)
        qkv = tf.reshape(dense(attn.qkv, n1), (b, n, 3, attn.num_heads, attn.head_dim))
        q, k, v = tf.unstack(tf.transpose(qkv, (2, 0, 3, 1, 4)), axis=0)
        a = tf.nn.softmax(tf.matmul(q * attn.scale, k, transpose_b=True), axis=-1)
        ctx = tf.reshape(tf.transpose(tf.matmul(a, v), (0, 2, 1, 3)), (b, n, attn.dim))
        y = dense(attn.proj, ctx)
        if block.ls1 is not None:
            y = y * f64(block.ls1.gamma)
        mid = h + y
        n2 = norm(block.norm2, mid)
        h1 = dense(block.mlp.fc1, n2)
        # erf written out: TensorFlow's float64 gelu kernel is only accurate to ~5e-9, which LRP amplifies.
        g = 0.5 * h1 * (1.0 + tf.math.erf(h1 * 0.7071067811865476))
        m = dense(block.mlp.fc2, g)
        if block.ls2 is not None:
            m = m * f64(block.ls2.gamma)
        blocks.append(dict(x=h, n1=n1, q=q, k=k, v=v, a=a, ctx=ctx, y=y, mid=mid, n2=n2, g=g, m=m))
        h = mid + m
    tokens = norm(model.norm, h)
    if c.head_type not in ("token", "distilled"):
        raise ValueError(f"head type {c.head_type!r} is not supported here (only 'token' and 'distilled')")
    head_in = tokens[:, 0]
    if model.pre_logits is not None:
        head_in = tf.tanh(dense(model.pre_logits, head_in))
    logits = dense(model.head, head_in)
    if model.head_dist is not None:
        logits = (logits + dense(model.head_dist, tokens[:, 1])) / 2
    return logits, {"blocks": blocks, "tokens": tokens, "out": h, "head_in": head_in}



def oracle_attribution(model, images, targets, start_block: int = 0, token: int = 0) -> np.ndarray:
    """Transformer attribution from the replica: float64 gradients of the target logits with respect to every
    block's attention, the library's LRP rules and aggregation on the replica's record. (B, gh, gw) float64."""
    import tensorflow as tf

    from vit_tf.analysis.explanations import lrp, rules

    x = tf.constant(np.asarray(images, np.float32))
    t = tf.constant(np.asarray(targets, np.int64))
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        logits, trace = float64_forward(model, x)
        y = tf.reduce_sum(tf.gather(logits, t, axis=1, batch_dims=1))
    maps = [r["a"] for r in trace["blocks"]]
    grads = tape.gradient(y, maps[start_block:])
    relevance = lrp.attention_relevance(model, trace["blocks"], trace["tokens"], t, start_block)
    joint = rules.attribution_rollout(relevance[start_block:], grads).numpy()
    p = model.config.patch_size
    grid = (x.shape[1] // p, x.shape[2] // p)
    return joint[:, token, model.config.num_prefix_tokens:].reshape(-1, *grid)
