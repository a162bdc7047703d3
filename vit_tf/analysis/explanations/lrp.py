"""Layer-wise relevance propagation for transformer attribution (Chefer, Gur & Wolf, CVPR 2021, "Transformer
Interpretability Beyond Attention Visualization"; hila-chefer/Transformer-Explainability, layers_ours.py with
alpha = 1, beta = 0), as TensorFlow ops on the tensors a model's forward pass records
(`VisionTransformer.forward_intermediates`).

The relevance divides by pre-activations that cross zero (residual sums, Q K^T, A V), which amplifies rounding: a
5e-9 error in one GELU output moved the maps by 5e-4. So `transformer_attribution` runs the model's own blocks in
float64 (`forward_intermediates(dtype="float64")`) and these rules in float64, inside one compiled pass.
"""

from __future__ import annotations

from typing import Dict, List, Optional

EPS = 1e-9  # the stabiliser of Chefer et al.'s safe_divide
LRP_HEADS = ("token", "distilled")  # heads whose relevance rule is written here


def _tf():
    import tensorflow as tf

    return tf


def safe_divide(a, b):
    """a / b with b -> b + 1e-9 and 0 where b == 0: `safe_divide` of Transformer-Explainability."""
    tf = _tf()
    den = b + EPS
    den = den + tf.cast(tf.equal(den, 0.0), den.dtype) * EPS
    return a / den * tf.cast(tf.not_equal(b, 0.0), b.dtype)


def lrp_linear(x, kernel, r):
    """LRP-alpha1beta0 through a Dense layer (bias ignored): x (..., in), kernel (in, out), r (..., out) -> relevance
    of x. Positive inputs meet positive weights and negative inputs negative weights (both give positive
    contributions z); r is shared in proportion to them."""
    tf = _tf()
    pw, nw = tf.maximum(kernel, 0.0), tf.minimum(kernel, 0.0)
    px, nx = tf.maximum(x, 0.0), tf.minimum(x, 0.0)
    z = tf.tensordot(px, pw, 1) + tf.tensordot(nx, nw, 1)
    s = safe_divide(r, z)
    return px * tf.tensordot(s, tf.transpose(pw), 1) + nx * tf.tensordot(s, tf.transpose(nw), 1)


def lrp_add(x0, x1, r):
    """Chefer et al.'s residual rule on (B, ...) tensors: split r by x_i * r / (x0 + x1), then rescale each part so
    that the two shares sum to sum(r) in proportion to |sum(part)| (sums per image here; the original sums over the
    batch)."""
    tf = _tf()
    s = safe_divide(r, x0 + x1)
    a, b = x0 * s, x1 * s
    axes = list(range(1, len(r.shape)))
    a_sum = tf.reduce_sum(a, axes, keepdims=True)
    b_sum = tf.reduce_sum(b, axes, keepdims=True)
    r_sum = tf.reduce_sum(r, axes, keepdims=True)
    total = tf.abs(a_sum) + tf.abs(b_sum)
    a_fact = safe_divide(tf.abs(a_sum), total) * r_sum
    b_fact = safe_divide(tf.abs(b_sum), total) * r_sum
    return a * safe_divide(a_fact, a_sum), b * safe_divide(b_fact, b_sum)


def lrp_clone(x, r0, r1):
    """Relevance of a tensor used twice (residual and branch): x * (r0 / x + r1 / x)."""
    return x * (safe_divide(r0, x) + safe_divide(r1, x))


def lrp_matmul(x0, x1, r, transpose_b=False):
    """The `einsum` rule (RelPropSimple) for z = x0 @ x1 (or x0 @ x1^T): both factors receive x_i * dz/dx_i . r/z,
    so relevance is not conserved (each factor gets all of it before Chefer et al. halve it)."""
    tf = _tf()
    z = tf.matmul(x0, x1, transpose_b=transpose_b)
    s = safe_divide(r, z)
    if transpose_b:  # z = x0 x1^T
        return x0 * tf.matmul(s, x1), x1 * tf.matmul(s, x0, transpose_a=True)
    return x0 * tf.matmul(s, x1, transpose_b=True), x1 * tf.matmul(x0, s, transpose_a=True)


def check_lrp_model(model) -> None:
    """ValueError unless the relevance rules here cover the model (GELU MLPs; a class-token or distilled head)."""
    c = model.config
    if c.mlp_type != "gelu":
        raise ValueError(f"transformer_attribution's LRP supports the GELU MLP only, not {c.mlp_type!r}")
    if c.head_type not in LRP_HEADS:
        raise ValueError(f"transformer_attribution supports head types {LRP_HEADS}, not {c.head_type!r}")


def attention_relevance(model, records: List[Dict[str, object]], tokens, targets,
                        start_block: int = 0) -> List[Optional[object]]:
    """LRP relevance of every block's attention probabilities (the `relprop` chain of Transformer-Explainability's
    ViT_LRP.py): the one-hot target enters the head, then flows through the class (and distillation) token
    selection, the final norm (identity), and each block from the last down to `start_block`: residual adds
    (`lrp_add`), MLP linears (alpha1beta0; GELU, LayerNorm and LayerScale pass relevance unchanged), the attention
    output projection, A @ V and Q @ K^T (`lrp_matmul`, each half), the qkv linear. A distilled head (mean of two
    linear heads) is one linear layer over [class token, distillation token] with weights [W, W_dist] / 2.

    Args:
        model: a `VisionTransformer` that `check_lrp_model` accepts.
        records: `forward_intermediates`' per-block records (2-D (B*N, D) token matrices, (B, heads, N, .) heads).
        tokens: (B, T, D) final-norm tokens of the same pass. targets: (B,) int class indices.
        start_block: the lowest block whose relevance is computed (non-negative).
    Returns:
        [(B, heads, T, T) relevance of A_l] per block, in the records' dtype; None below `start_block`.
    """
    tf = _tf()
    c = model.config
    dtype = tokens.dtype
    cast = lambda t: tf.cast(t, dtype)  # noqa: E731
    b, n = tf.shape(tokens)[0], tf.shape(tokens)[1]
    r = tf.one_hot(targets, c.num_classes, dtype=dtype)
    if model.head_dist is not None:
        picked = tokens[:, :2]  # (B, 2, D)
        kernel = tf.concat([cast(model.head.kernel), cast(model.head_dist.kernel)], axis=0) / 2.0
        r_in = tf.reshape(lrp_linear(tf.reshape(picked, (b, 2 * c.embed_dim)), kernel, r), tf.shape(picked))
    else:
        picked = tokens[:, :1]  # (B, 1, D): the class token
        if model.pre_logits is not None:  # Dense + tanh; tanh passes relevance unchanged
            from ...layers import linear

            pre = linear(model.pre_logits, tokens[:, 0], "tanh")
            r_head = lrp_linear(tokens[:, 0], cast(model.pre_logits.kernel),
                                lrp_linear(pre, cast(model.head.kernel), r))
        else:
            r_head = lrp_linear(tokens[:, 0], cast(model.head.kernel), r)
        r_in = r_head[:, None]
    # IndexSelect rule: relevance lands on the selected tokens only (x * r / x keeps the safe_divide zeros).
    selected = picked * safe_divide(r_in, picked)
    r = tf.concat([selected, tf.zeros_like(tokens[:, picked.shape[1]:])], axis=1)
    heads, hd = c.num_heads, c.embed_dim // c.num_heads
    depth = c.depth
    relevance: List[Optional[object]] = [None] * depth
    as3 = lambda t: tf.reshape(t, (b, n, -1))  # noqa: E731  (B*N, F) -> (B, N, F): the add rule sums per image
    for i in range(depth - 1, start_block - 1, -1):
        block, t = model.blocks[i], records[i]
        r_mid, r_mlp = lrp_add(as3(t["mid"]), as3(t["m"]), r)
        r_g = lrp_linear(as3(t["g"]), cast(block.mlp.fc2.kernel), r_mlp)
        r_n2 = lrp_linear(as3(t["n2"]), cast(block.mlp.fc1.kernel), r_g)
        r = lrp_clone(as3(t["mid"]), r_mid, r_n2)
        r_x, r_y = lrp_add(as3(t["x"]), as3(t["y"]), r)
        r_ctx = lrp_linear(as3(t["ctx"]), cast(block.attn.proj.kernel), r_y)
        r_ctx = tf.transpose(tf.reshape(r_ctx, (b, n, heads, hd)), (0, 2, 1, 3))
        r_a, r_v = lrp_matmul(t["a"], t["v"], r_ctx)
        r_a, r_v = r_a / 2.0, r_v / 2.0
        relevance[i] = r_a
        if i == start_block:
            break
        r_q, r_k = lrp_matmul(t["q"], t["k"], r_a, transpose_b=True)  # softmax passes relevance unchanged
        r_qkv = tf.stack([r_q / 2.0, r_k / 2.0, r_v], axis=0)  # (3, B, heads, N, hd)
        r_qkv = tf.reshape(tf.transpose(r_qkv, (1, 3, 0, 2, 4)), (b, n, 3 * c.embed_dim))
        r_n1 = lrp_linear(as3(t["n1"]), cast(block.attn.qkv.kernel), r_qkv)
        r = lrp_clone(as3(t["x"]), r_x, r_n1)
    return relevance
