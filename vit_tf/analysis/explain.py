"""Class-specific explanations of a Vision Transformer's prediction, as maps over the patch grid.

One entry point, `explain(model, images, method, target=None, **options) -> (B, gh, gw)`, for every method in
`METHODS`; gradients are taken with `tf.GradientTape` through the model itself (eval mode). Any batch size, any
grid (non-square too), any prefix layout (class, distillation, registers: `model.config.num_prefix_tokens`).

Methods (rule; source):
    attention: last block, the chosen token's attention to the patches, mean over heads (Dosovitskiy et al. 2020).
    rollout: `attention_rollout`, prod_l normalize((E_h A_l + I) / 2) (Abnar & Zuidema 2020).
    grad_rollout: prod_l normalize((discard(E_h[A_l * dA_l]^+) + I) / 2) (jacobgil/vit-explain).
    gae: R <- R + E_h[(dA_l * A_l)^+] R from R = I (Chefer, Gur & Wolf, ICCV 2021, "Generic Attention-model
        Explainability"; hila-chefer/Transformer-MM-Explainability).
    transformer_attribution: prod_l (E_h[(dA_l * R_l)^+] + I) with R_l the LRP relevance of A_l, LRP-alpha1beta0
        through every layer (Chefer, Gur & Wolf, CVPR 2021, "Transformer Interpretability Beyond Attention
        Visualization"; hila-chefer/Transformer-Explainability).
    gradcam_attention: last block, ReLU(E_h[A_h[token, patches] * mean(dA_h[token, patches])]) (the attention
        Grad-CAM baseline of the CVPR 2021 paper).
    gradcam_tokens: ReLU(sum_d mean_patches(dX)[d] * X[patch, d]) on token features X (Selvaraju et al. 2017, as
        jacobgil/pytorch-grad-cam's ViT recipe).
    integrated_gradients: sum over each patch's pixels and channels of (x - x') * mean_k dy/dx(x' + k/m (x - x'))
        (Sundararajan et al. 2017).
    smoothgrad: sum over each patch's pixels and channels of abs(x * mean_n dy/dx(x + noise_n)) (Smilkov et al.
        2017).

`dA_l` is the gradient of the target logit (before the softmax over classes) with respect to block l's attention
probabilities A_l (B, heads, T, T); `E_h` the mean over heads; `^+` clips negatives to 0. Maps are returned as
computed (float64, not min-max scaled, not resized); `vit_tf.analysis.heatmaps.resize_maps` / `normalize_map` do
that for display.

Fixes over the published code, which handles one image and the class token only:
    grad_rollout: jacobgil/vit-explain pairs block l's attention with the gradient of block L-1-l (backward hooks
        fire in reverse), divides by row sums without keepdim (so it divides columns), discards entries of batch
        element 0 only and may discard the class column. Here each block gets its own gradient, rows are
        normalised, every image is treated, and the readout token's column is never discarded.
    transformer_attribution: the residual `Add` rule's sums are taken per image (the original sums over the batch).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._arrays import check_finite, token_index
from .engine import compiled, logits_function
from .rollout import attention_rollout

METHODS = ("attention", "rollout", "grad_rollout", "gae", "transformer_attribution", "gradcam_attention",
           "gradcam_tokens", "integrated_gradients", "smoothgrad")
CLASS_AGNOSTIC = ("attention", "rollout")  # `target` does not change these maps
ROLLOUT_TYPE = ("rollout", "grad_rollout", "gae", "transformer_attribution")  # products over blocks

_EPS = 1e-9  # the stabiliser of Chefer et al.'s safe_divide


# -- inputs and targets ------------------------------------------------------------------------------------------
def _images(model, images):
    import tensorflow as tf

    x = images if isinstance(images, tf.Tensor) else tf.convert_to_tensor(np.asarray(images, np.float32))
    x = tf.cast(x, tf.float32)
    if x.shape.rank != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got shape {tuple(x.shape)}")
    p = model.config.patch_size
    h, w = int(x.shape[1]), int(x.shape[2])
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
    return x, (h // p, w // p)


def resolve_targets(logits, target=None) -> np.ndarray:
    """Class indices (B,) int64: `target` (an int, or one per image) checked against the logits (B, classes), or the
    top-1 class of each image when `target` is None."""
    z = np.asarray(logits)
    b, classes = z.shape
    if target is None:
        return np.argmax(z, axis=-1).astype(np.int64)
    t = np.asarray(target)
    if t.dtype.kind not in "iu" or t.ndim > 1:
        raise ValueError(f"target must be a class index or one index per image, got {target!r}")
    t = np.broadcast_to(t.astype(np.int64), (b,)) if t.ndim == 0 else t.astype(np.int64)
    if t.shape != (b,):
        raise ValueError(f"target has {t.shape[0]} indices for {b} images")
    if t.size and (t.min() < 0 or t.max() >= classes):
        raise ValueError(f"target {t.tolist()} out of range for {classes} classes")
    return t.copy()


def _check_classifier(model):
    if not model.config.num_classes:
        raise ValueError("class-specific explanations need a classifier; this model has num_classes=0 (features "
                         "only); use method 'attention' or 'rollout'")


def _selected_logit(logits, targets):
    """sum_b logits[b, targets[b]]: images do not interact in eval mode, so its gradient is every image's own."""
    import tensorflow as tf

    return tf.reduce_sum(tf.gather(tf.cast(logits, tf.float32), tf.constant(targets), axis=1, batch_dims=1))


def attention_gradients(model, images, target=None) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray],
                                                                 List[np.ndarray]]:
    """Every block's attention and the gradient of the target logit with respect to it, through the model itself.

    Args:
        model: a `VisionTransformer` with a classifier.
        images: (B, H, W, 3) preprocessed.
        target: class index, one per image, or None for each image's top-1 class.
    Returns:
        (logits (B, classes) float32, targets (B,) int64, attention [(B, heads, T, T)] per block,
        gradients [(B, heads, T, T)] per block: d logits[b, targets[b]] / d A_l[b]), NumPy.
    """
    import tensorflow as tf

    _check_classifier(model)
    x, _ = _images(model, images)
    logits = logits_function(model)(x).numpy()
    targets = resolve_targets(logits, target)
    keys = [f"transformer_block_{i}_att" for i in range(model.config.depth)]
    maps, grads = compiled(model, "attention_gradients", _build_attention_gradients)(x, tf.constant(targets))
    return (logits, targets, [check_finite(k, m.numpy()) for k, m in zip(keys, maps)],
            [check_finite(f"gradient of {k}", g.numpy()) for k, g in zip(keys, grads)])


def _build_attention(model):
    def fn(images):
        return model(images, training=False, return_attention=True)[1]
    return fn


def _build_attention_gradients(model):
    import tensorflow as tf

    def fn(images, classes):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(images)
            logits, attention = model(images, training=False, return_attention=True)
            y = tf.reduce_sum(tf.gather(tf.cast(logits, tf.float32), classes, axis=1, batch_dims=1))
        maps = [attention[f"transformer_block_{i}_att"] for i in range(model.config.depth)]
        return maps, tape.gradient(y, maps, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return fn


# -- the attention-gradient methods (pure: arrays in, arrays out) ------------------------------------------------
def _patch_row(matrix: np.ndarray, index: int, num_prefix_tokens: int, grid) -> np.ndarray:
    """(B, T, T) -> the row of token `index` over the patches, (B, gh, gw)."""
    return matrix[:, index, num_prefix_tokens:].reshape(matrix.shape[0], *grid)


def _discard_outside_column(fused: np.ndarray, discard_ratio: float, column: int) -> np.ndarray:
    """Zero the k = int(T * T * discard_ratio) smallest entries of each (T, T) matrix among those outside `column`
    (ties in flattened row-major order), so the readout token's column is kept whole."""
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    b, t, _ = fused.shape
    k = int(t * t * discard_ratio)
    if k == 0:
        return fused
    flat = fused.reshape(b, t * t).copy()
    candidates = np.flatnonzero(np.arange(t * t) % t != column)  # row-major positions outside the column
    k = min(k, candidates.size)
    order = np.argsort(flat[:, candidates], axis=-1, kind="stable")[:, :k]
    np.put_along_axis(flat, candidates[order], 0.0, axis=-1)
    return flat.reshape(b, t, t)


def grad_rollout_matrix(attention: Sequence[np.ndarray], gradients: Sequence[np.ndarray], *, keep_column: int = 0,
                        discard_ratio: float = 0.9) -> np.ndarray:
    """jacobgil/vit-explain's gradient rollout with its bugs fixed (see the module docstring), as a matrix.

    Per block l, with its own gradient: F = max(E_h[A_l * dA_l], 0); the k = int(T^2 * discard_ratio) smallest
    entries outside column `keep_column` (the readout token's) set to 0; J = (F + I) / 2 with each row divided by
    its sum. Returns the product J_{L-1} ... J_0, float64 (B, T, T), rows summing to 1.

    Args:
        attention, gradients: per block (B, heads, T, T).
        discard_ratio: in [0, 1); vit-explain's default 0.9.
    """
    t = attention[0].shape[-1]
    result = None
    for a, g in zip(attention, gradients):
        fused = np.maximum(np.mean(np.asarray(a, np.float64) * np.asarray(g, np.float64), axis=1), 0.0)
        fused = _discard_outside_column(fused, discard_ratio, keep_column)
        joint = (fused + np.eye(t)) / 2.0
        joint = joint / joint.sum(axis=-1, keepdims=True)
        result = joint if result is None else joint @ result
    return result


def grad_rollout_map(attention: Sequence[np.ndarray], gradients: Sequence[np.ndarray], *, num_prefix_tokens: int,
                     grid_size, token: Union[int, str] = "cls", discard_ratio: float = 0.9) -> np.ndarray:
    """The readout token's row of `grad_rollout_matrix` over the patches, (B, gh, gw).

    Args:
        num_prefix_tokens, grid_size: token layout; (gh, gw) with gh * gw = T - num_prefix_tokens.
        token: readout token ("cls", "dist" or an index); its column is never discarded.
    """
    index = token_index(token, num_prefix_tokens, attention[0].shape[-1])
    result = grad_rollout_matrix(attention, gradients, keep_column=index, discard_ratio=discard_ratio)
    return _patch_row(result, index, num_prefix_tokens, grid_size)


def _relevance_heads(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Chefer et al.'s head average: E_h[(g * a)^+], (B, heads, T, T) -> (B, T, T)."""
    return np.mean(np.maximum(np.asarray(g, np.float64) * np.asarray(a, np.float64), 0.0), axis=1)


def gae_map(attention: Sequence[np.ndarray], gradients: Sequence[np.ndarray], *, num_prefix_tokens: int,
            grid_size, token: Union[int, str] = "cls") -> np.ndarray:
    """Generic Attention-model Explainability (Chefer, Gur & Wolf, ICCV 2021), rules 5 and 6 for self-attention:
    R = I; for each block in order, R <- R + E_h[(dA * A)^+] R; the token's row over the patches (B, gh, gw)."""
    t = attention[0].shape[-1]
    index = token_index(token, num_prefix_tokens, t)
    r = np.broadcast_to(np.eye(t), (attention[0].shape[0], t, t)).copy()
    for a, g in zip(attention, gradients):
        r = r + _relevance_heads(a, g) @ r
    return _patch_row(r, index, num_prefix_tokens, grid_size)


def attribution_rollout_map(relevance: Sequence[np.ndarray], gradients: Sequence[np.ndarray], *,
                            num_prefix_tokens: int, grid_size, token: Union[int, str] = "cls",
                            start_block: int = 0) -> np.ndarray:
    """Transformer attribution's aggregation (Chefer, Gur & Wolf, CVPR 2021, eq. 13-14): A_l = E_h[(dA_l * R_l)^+]
    with R_l the LRP relevance of block l's attention; the product (A_{L-1} + I) ... (A_s + I), not normalised,
    read at the token's row over the patches.

    Args:
        relevance, gradients: per block (B, heads, T, T); `relevance` may hold None below `start_block`.
        start_block: first block of the product (negative counts from the end).
    Returns:
        float64 (B, gh, gw).
    """
    depth = len(gradients)
    if not -depth <= start_block < depth:
        raise ValueError(f"start_block {start_block} is out of range for {depth} blocks")
    start = start_block % depth
    t = gradients[0].shape[-1]
    index = token_index(token, num_prefix_tokens, t)
    result = None
    for r, g in zip(relevance[start:], gradients[start:]):
        joint = _relevance_heads(r, g) + np.eye(t)
        result = joint if result is None else joint @ result
    return _patch_row(result, index, num_prefix_tokens, grid_size)


def gradcam_attention_map(attention: np.ndarray, gradient: np.ndarray, *, num_prefix_tokens: int, grid_size,
                          token: Union[int, str] = "cls") -> np.ndarray:
    """The attention Grad-CAM baseline of Chefer et al. (CVPR 2021, `generate_cam_attn`): for one block's attention
    and gradient (B, heads, T, T), the token's row over the patches per head, weighted by that row's mean gradient,
    averaged over heads and clipped at 0 (not min-max scaled). Returns (B, gh, gw)."""
    t = attention.shape[-1]
    index = token_index(token, num_prefix_tokens, t)
    cam = np.asarray(attention, np.float64)[:, :, index, num_prefix_tokens:]  # (B, heads, N)
    weight = np.asarray(gradient, np.float64)[:, :, index, num_prefix_tokens:].mean(axis=-1, keepdims=True)
    out = np.maximum(np.mean(cam * weight, axis=1), 0.0)
    return out.reshape(out.shape[0], *grid_size)


def gradcam_tokens_map(features: np.ndarray, gradient: np.ndarray, *, num_prefix_tokens: int,
                       grid_size) -> np.ndarray:
    """Grad-CAM on token features (pytorch-grad-cam with its ViT `reshape_transform`): the patch tokens X (B, N, D)
    as an (D, gh, gw) activation map, channel weights = the gradient's mean over the patches, ReLU of the weighted
    sum over channels. Prefix tokens are dropped first. Returns (B, gh, gw), not min-max scaled."""
    x = np.asarray(features, np.float64)[:, num_prefix_tokens:]
    g = np.asarray(gradient, np.float64)[:, num_prefix_tokens:]
    weights = g.mean(axis=1, keepdims=True)  # (B, 1, D)
    cam = np.maximum(np.sum(weights * x, axis=-1), 0.0)
    return cam.reshape(cam.shape[0], *grid_size)


def pool_to_patches(values, patch_size: int) -> np.ndarray:
    """Per-pixel values (B, H, W, C) -> their sums over each patch's pixels and channels, (B, H/p, W/p)."""
    v = np.asarray(values, np.float64)
    b, h, w, c = v.shape
    p = patch_size
    return v.reshape(b, h // p, p, w // p, p, c).sum(axis=(2, 4, 5))


# -- a sublayer-by-sublayer forward pass: the tensors LRP and token Grad-CAM need ----------------------------------
def _run_block(block, x) -> Tuple[object, Dict[str, object]]:
    """One `TransformerBlock` in eval mode, sublayer by sublayer, with the arithmetic of its `call` (Attention's
    explicit path: float32 softmax) and every intermediate kept. Returns (output tokens, {name: tensor})."""
    import tensorflow as tf

    if block.mlp_type != "gelu":
        raise ValueError(f"LRP / token Grad-CAM support the GELU MLP only, not {block.mlp_type!r}")
    attn = block.attn
    b, n = tf.shape(x)[0], tf.shape(x)[1]
    n1 = block.norm1(x)
    qkv = tf.reshape(attn.qkv(n1), (b, n, 3, attn.num_heads, attn.head_dim))
    q, k, v = tf.unstack(tf.transpose(qkv, (2, 0, 3, 1, 4)), axis=0)  # each (B, heads, N, hd)
    logits = tf.matmul(q * tf.cast(attn.scale, q.dtype), k, transpose_b=True)
    a = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
    ctx = tf.matmul(tf.cast(a, v.dtype), v)
    ctx = tf.reshape(tf.transpose(ctx, (0, 2, 1, 3)), (b, n, attn.dim))
    y = attn.proj(ctx)
    if block.ls1 is not None:
        y = block.ls1(y)
    mid = x + y
    n2 = block.norm2(mid)
    h = block.mlp.fc1(n2)
    g = tf.nn.gelu(h, approximate=False)
    m = block.mlp.fc2(g)
    if block.ls2 is not None:
        m = block.ls2(m)
    out = mid + m
    return out, dict(x=x, n1=n1, q=q, k=k, v=v, a=a, ctx=ctx, y=y, mid=mid, n2=n2, g=g, m=m)


def _head(model, tokens):
    """Logits from final-norm tokens for the "token" and "distilled" heads (`VisionTransformer.forward_head`)."""
    c = model.config
    if c.head_type not in ("token", "distilled"):
        raise ValueError(f"head type {c.head_type!r} is not supported here (only 'token' and 'distilled')")
    return model.forward_head(tokens)["logits"]


def traced_forward(model, images) -> Tuple[object, Dict[str, object]]:
    """The model's eval forward pass run sublayer by sublayer (embed -> blocks -> norm -> head), keeping every
    tensor that LRP and token Grad-CAM need; tested to equal `model(images)`.

    Returns:
        (logits (B, classes) float32 tensor, {"blocks": [per-block dict of tensors], "tokens": final-norm tokens,
        "out": last block's output}).
    """
    _check_classifier(model)
    x = model._embed(images, False)
    blocks = []
    for block in model.blocks:
        x, record = _run_block(block, x)
        blocks.append(record)
    tokens = model.norm(x)
    return _head(model, tokens), {"blocks": blocks, "tokens": tokens, "out": x}


def float64_forward(model, images) -> Tuple[object, Dict[str, object]]:
    """The model's eval forward pass recomputed in float64 from its weights (patch convolution, position
    embeddings, LayerNorm, Dense, exact GELU, softmax, LayerScale, head), with the same record as
    `traced_forward`. LRP divides by pre-activations that cross zero, which amplifies float32 rounding about a
    thousandfold; the float64 replica keeps the relevance reproducible (tested against `model(images)`).
    Position embeddings resampled to another grid are resampled in float32 first, as the model does."""
    import tensorflow as tf

    from ..layers import resample_grid

    _check_classifier(model)
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


def token_gradients(model, images, target=None, *, block: int = -1, site: str = "input"):
    """Token features at one point of the network and the target logit's gradient there.

    Args:
        block: block index (negative counts from the end).
        site: "input" = the tokens entering `block`'s norm1 (the output of block `block - 1`, the embeddings for
            block 0); "output" = norm1's output (pytorch-grad-cam's `target_layers=[model.blocks[-1].norm1]`).
    Returns:
        (features (B, T, D), gradient (B, T, D), targets (B,)) as NumPy.
    """
    import tensorflow as tf

    depth = model.config.depth
    if not -depth <= block < depth:
        raise ValueError(f"block {block} is out of range for {depth} blocks")
    if site not in ("input", "output"):
        raise ValueError(f"site must be 'input' or 'output', got {site!r}")
    x, _ = _images(model, images)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(x)
        logits, trace = traced_forward(model, x)
        targets = resolve_targets(logits.numpy(), target)
        y = _selected_logit(logits, targets)
    record = trace["blocks"][block % depth]
    feature = record["x" if site == "input" else "n1"]
    grad = tape.gradient(y, feature, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return (check_finite("token features", tf.cast(feature, tf.float32).numpy()),
            check_finite("token gradient", tf.cast(grad, tf.float32).numpy()), targets)


# -- LRP (Chefer et al. 2021's rules, layers_ours.py, alpha = 1, beta = 0), in float64 ---------------------------
def _safe_divide(a, b):
    """a / b with b -> b + 1e-9 and 0 where b == 0: `safe_divide` of Transformer-Explainability."""
    import tensorflow as tf

    den = b + _EPS
    den = den + tf.cast(tf.equal(den, 0.0), den.dtype) * _EPS
    return a / den * tf.cast(tf.not_equal(b, 0.0), b.dtype)


def _lrp_linear(x, kernel, r):
    """LRP-alpha1beta0 through a Dense layer (bias ignored): x (..., in), kernel (in, out), r (..., out) ->
    relevance of x. Positive inputs meet positive weights and negative inputs negative weights (both give positive
    contributions z); r is shared in proportion to them."""
    import tensorflow as tf

    pw, nw = tf.maximum(kernel, 0.0), tf.minimum(kernel, 0.0)
    px, nx = tf.maximum(x, 0.0), tf.minimum(x, 0.0)
    z = tf.tensordot(px, pw, 1) + tf.tensordot(nx, nw, 1)
    s = _safe_divide(r, z)
    return px * tf.tensordot(s, tf.transpose(pw), 1) + nx * tf.tensordot(s, tf.transpose(nw), 1)


def _lrp_add(x0, x1, r):
    """Chefer et al.'s residual rule: split r by x_i * r / (x0 + x1), then rescale each part so that the two
    shares sum to sum(r) in proportion to |sum(part)| (sums per image here)."""
    import tensorflow as tf

    s = _safe_divide(r, x0 + x1)
    a, b = x0 * s, x1 * s
    axes = list(range(1, len(r.shape)))
    a_sum = tf.reduce_sum(a, axes, keepdims=True)
    b_sum = tf.reduce_sum(b, axes, keepdims=True)
    r_sum = tf.reduce_sum(r, axes, keepdims=True)
    total = tf.abs(a_sum) + tf.abs(b_sum)
    a_fact = _safe_divide(tf.abs(a_sum), total) * r_sum
    b_fact = _safe_divide(tf.abs(b_sum), total) * r_sum
    return a * _safe_divide(a_fact, a_sum), b * _safe_divide(b_fact, b_sum)


def _lrp_clone(x, r0, r1):
    """Relevance of a tensor used twice (residual and branch): x * (r0 / x + r1 / x)."""
    return x * (_safe_divide(r0, x) + _safe_divide(r1, x))


def _lrp_matmul(x0, x1, r, transpose_b=False):
    """The `einsum` rule (RelPropSimple) for z = x0 @ x1 (or x0 @ x1^T): both factors receive x_i * dz/dx_i . r/z,
    so relevance is not conserved (each factor gets all of it before Chefer et al. halve it)."""
    import tensorflow as tf

    z = tf.matmul(x0, x1, transpose_b=transpose_b)
    s = _safe_divide(r, z)
    if transpose_b:  # z = x0 x1^T
        return x0 * tf.matmul(s, x1), x1 * tf.matmul(s, x0, transpose_a=True)
    return x0 * tf.matmul(s, x1, transpose_b=True), x1 * tf.matmul(x0, s, transpose_a=True)


def attention_relevance(model, trace, targets, start_block: int = 0) -> List[Optional[np.ndarray]]:
    """LRP relevance of every block's attention probabilities (Chefer, Gur & Wolf, CVPR 2021; the `relprop` chain
    of Transformer-Explainability's ViT_LRP.py): the one-hot target enters the head, then flows through the class
    (and distillation) token selection, the final norm (identity), and each block from the last down to
    `start_block`: residual adds (`_lrp_add`), MLP linears (alpha1beta0; GELU, LayerNorm and LayerScale pass
    relevance unchanged), attention output projection, A @ V and Q @ K^T (`_lrp_matmul`, each half), qkv linear.

    A distilled head (mean of two linear heads) is one linear layer over [class token, distillation token] with
    weights [W, W_dist] / 2. `trace` is `float64_forward`'s record (any record of the same form works).

    Returns:
        [(B, heads, T, T) relevance of A_l] for each block, None below `start_block`.
    """
    import tensorflow as tf

    c = model.config
    depth = c.depth
    start = start_block % depth
    f64 = lambda t: tf.cast(t, tf.float64)  # noqa: E731
    tokens = f64(trace["tokens"])
    b = tokens.shape[0]
    r = tf.one_hot(targets, c.num_classes, dtype=tf.float64)
    if model.head_dist is not None:
        picked = tokens[:, :2]  # (B, 2, D)
        kernel = tf.concat([f64(model.head.kernel), f64(model.head_dist.kernel)], axis=0) / 2.0
        r_in = tf.reshape(_lrp_linear(tf.reshape(picked, (b, -1)), kernel, r), picked.shape)
    else:
        picked = tokens[:, :1]  # (B, 1, D): the class token
        if model.pre_logits is not None:  # Dense + tanh; tanh passes relevance unchanged
            pre = f64(trace["head_in"])
            r_head = _lrp_linear(tokens[:, 0], f64(model.pre_logits.kernel),
                                 _lrp_linear(pre, f64(model.head.kernel), r))
        else:
            r_head = _lrp_linear(tokens[:, 0], f64(model.head.kernel), r)
        r_in = r_head[:, None]
    # IndexSelect rule: relevance lands on the selected tokens only (x * r / x keeps the safe_divide zeros).
    selected = picked * _safe_divide(r_in, picked)
    r = tf.concat([selected, tf.zeros_like(tokens[:, selected.shape[1]:])], axis=1)
    heads, hd = c.num_heads, c.embed_dim // c.num_heads
    relevance: List[Optional[np.ndarray]] = [None] * depth
    for i in range(depth - 1, start - 1, -1):
        block, t = model.blocks[i], {k: f64(v) for k, v in trace["blocks"][i].items()}
        n = t["x"].shape[1]
        r_mid, r_mlp = _lrp_add(t["mid"], t["m"], r)
        r_g = _lrp_linear(t["g"], f64(block.mlp.fc2.kernel), r_mlp)
        r_n2 = _lrp_linear(t["n2"], f64(block.mlp.fc1.kernel), r_g)
        r = _lrp_clone(t["mid"], r_mid, r_n2)
        r_x, r_y = _lrp_add(t["x"], t["y"], r)
        r_ctx = _lrp_linear(t["ctx"], f64(block.attn.proj.kernel), r_y)
        r_ctx = tf.transpose(tf.reshape(r_ctx, (b, n, heads, hd)), (0, 2, 1, 3))
        r_a, r_v = _lrp_matmul(t["a"], t["v"], r_ctx)
        r_a, r_v = r_a / 2.0, r_v / 2.0
        relevance[i] = r_a.numpy()
        if i == start:
            break
        r_q, r_k = _lrp_matmul(t["q"], t["k"], r_a, transpose_b=True)  # softmax passes relevance unchanged
        r_qkv = tf.stack([r_q / 2.0, r_k / 2.0, r_v], axis=0)  # (3, B, heads, N, hd)
        r_qkv = tf.reshape(tf.transpose(r_qkv, (1, 3, 0, 2, 4)), (b, n, 3 * c.embed_dim))
        r_n1 = _lrp_linear(t["n1"], f64(block.attn.qkv.kernel), r_qkv)
        r = _lrp_clone(t["x"], r_x, r_n1)
    return relevance


# -- pixel gradients -----------------------------------------------------------------------------------------------
def _build_pixel_gradient(model):
    import tensorflow as tf

    def gradient(images, classes):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(images)
            logits, _ = model(images, training=False, return_attention=False)
            y = tf.reduce_sum(tf.gather(tf.cast(logits, tf.float32), classes, axis=1, batch_dims=1))
        return tape.gradient(y, images)
    return gradient


def _pixel_gradient(model, x, targets) -> np.ndarray:
    """d logits[b, targets[b]] / d x for float32 images x (B, H, W, 3)."""
    import tensorflow as tf

    grad = compiled(model, "pixel_gradient", _build_pixel_gradient)(tf.convert_to_tensor(x, tf.float32),
                                                                     tf.constant(targets, tf.int64))
    return check_finite("pixel gradient", grad.numpy().astype(np.float64))


def _logits(model, x) -> np.ndarray:
    import tensorflow as tf

    return np.asarray(logits_function(model)(tf.convert_to_tensor(x, tf.float32)), np.float64)


def integrated_gradients(model, images, target=None, *, steps: int = 50, baseline=0.0) -> Tuple[np.ndarray,
                                                                                               np.ndarray]:
    """Integrated gradients (Sundararajan et al. 2017) per pixel: (x - x') * (1/m) sum_{k=1..m} dy/dx at
    x' + (k/m)(x - x') (right Riemann sum), so its total approaches y(x) - y(x') as m grows (completeness).

    Args:
        baseline: x' in model-input space: a number (0 = the normalisation mean colour), or an array broadcastable
            to the images.
    Returns:
        (attributions (B, H, W, 3) float64, targets (B,)).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    x, _ = _images(model, images)
    x = x.numpy().astype(np.float64)
    base = np.broadcast_to(np.asarray(baseline, np.float64), x.shape)
    targets = resolve_targets(_logits(model, x.astype(np.float32)), target)
    total = np.zeros_like(x)
    for k in range(1, steps + 1):
        total += _pixel_gradient(model, (base + (k / steps) * (x - base)).astype(np.float32), targets)
    return (x - base) * total / steps, targets


def smoothgrad(model, images, target=None, *, samples: int = 50, noise_level: float = 0.15, seed: int = 0,
               times_input: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """SmoothGrad (Smilkov et al. 2017): the mean gradient over `samples` noisy copies x + N(0, sigma^2), sigma =
    noise_level * (max(x) - min(x)) per image; with `times_input`, multiplied by x.

    The noise pattern of sample n is drawn from `numpy.random.default_rng(seed)` once per call and shared by every
    image (scaled by each image's sigma), so an image's result does not depend on the batch it is in.
    Returns:
        (per-pixel values (B, H, W, 3) float64, signed; targets (B,)).
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    x, _ = _images(model, images)
    x = x.numpy().astype(np.float64)
    targets = resolve_targets(_logits(model, x.astype(np.float32)), target)
    sigma = noise_level * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    rng = np.random.default_rng(seed)
    total = np.zeros_like(x)
    for _ in range(samples):
        noise = rng.standard_normal(x.shape[1:])
        total += _pixel_gradient(model, (x + sigma[:, None, None, None] * noise).astype(np.float32), targets)
    mean = total / samples
    return (mean * x if times_input else mean), targets


# -- the entry point -----------------------------------------------------------------------------------------------
_OPTIONS = {
    "attention": {"token", "block"},
    "rollout": {"token", "head_fusion", "discard_ratio", "start_block"},
    "grad_rollout": {"token", "discard_ratio"},
    "gae": {"token"},
    "transformer_attribution": {"token", "start_block"},
    "gradcam_attention": {"token", "block"},
    "gradcam_tokens": {"block", "site"},
    "integrated_gradients": {"steps", "baseline"},
    "smoothgrad": {"samples", "noise_level", "seed", "times_input"},
}


def explain(model, images, method: str, target=None, **options) -> np.ndarray:
    """Explanation maps at patch resolution for a batch.

    Args:
        model: a `VisionTransformer` (a classifier for every method but "attention" and "rollout").
        images: (B, H, W, 3) preprocessed; H and W multiples of the patch size (any grid).
        method: one of `METHODS` (see the module docstring for each rule and its paper).
        target: class index (int) or one per image ((B,) ints); None explains each image's top-1 class. Ignored
            by "attention" and "rollout".
        options, by method (defaults in brackets):
            token ["cls"]: readout token of the attention-based methods ("cls", "dist" or an index).
            block [-1]: the block of "attention", "gradcam_attention" and "gradcam_tokens".
            head_fusion ["mean"], discard_ratio [0.0; 0.9 for grad_rollout], start_block [0]: rollout options;
                start_block also for "transformer_attribution" (Chefer et al.'s perturbation tests used 1).
            site ["input"]: "gradcam_tokens" on the tokens entering the block's norm1 (the output of the block
                before, where the patch tokens' gradient is not zero) or "output" (norm1's output).
            steps [50], baseline [0.0]: integrated gradients; map = sum over each patch's pixels and channels of
                the signed (x - x') * mean gradient.
            samples [50], noise_level [0.15], seed [0], times_input [True]: SmoothGrad; map = sum over each patch's
                pixels and channels of abs(x * mean gradient) (abs(mean gradient) with times_input=False).
    Returns:
        float64 (B, gh, gw), gh = H / patch_size, gw = W / patch_size, patches in row-major order.
    Raises:
        ValueError for an unknown method or option, an out-of-range target or block, or a model without
        classifier for a class-specific method.

    Example:
        >>> import numpy as np, vit_tf
        >>> from vit_tf.analysis.explain import explain
        >>> model = vit_tf.create_model("vit_tiny_patch16_224", depth=2, img_size=32, patch_size=8, num_classes=5)
        >>> explain(model, np.zeros((2, 32, 48, 3), "float32"), "gae", target=3).shape
        (2, 4, 6)
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    unknown = set(options) - _OPTIONS[method]
    if unknown:
        raise ValueError(f"method {method!r} takes no option(s) {sorted(unknown)}; it takes "
                         f"{sorted(_OPTIONS[method])}")
    c = model.config
    x, grid = _images(model, images)
    prefix = c.num_prefix_tokens
    token = options.get("token", "cls")
    if method in CLASS_AGNOSTIC:
        block = options.get("block", -1)
        if not -c.depth <= block < c.depth:
            raise ValueError(f"block {block} is out of range for {c.depth} blocks")
        attention = compiled(model, "attention", _build_attention)(x)
        if method == "attention":
            a = check_finite("attention", attention[f"transformer_block_{block % c.depth}_att"].numpy())
            index = token_index(token, prefix, a.shape[-1])
            row = np.asarray(a, np.float64)[:, :, index, prefix:].mean(axis=1)
            return row.reshape(row.shape[0], *grid)
        return attention_rollout(attention, num_prefix_tokens=prefix, token=token, grid_size=grid,
                                 head_fusion=options.get("head_fusion", "mean"),
                                 discard_ratio=options.get("discard_ratio", 0.0),
                                 start_block=options.get("start_block", 0))
    if method in ("integrated_gradients", "smoothgrad"):
        fn = integrated_gradients if method == "integrated_gradients" else smoothgrad
        values, _ = fn(model, x, target, **options)
        if method == "smoothgrad":
            values = np.abs(values)
        return pool_to_patches(values, c.patch_size)
    if method == "gradcam_tokens":
        features, grad, _ = token_gradients(model, x, target, block=options.get("block", -1),
                                            site=options.get("site", "input"))
        return gradcam_tokens_map(features, grad, num_prefix_tokens=prefix, grid_size=grid)
    _, targets, attention, gradients = attention_gradients(model, x, target)
    if method == "grad_rollout":
        return grad_rollout_map(attention, gradients, num_prefix_tokens=prefix, grid_size=grid, token=token,
                                discard_ratio=options.get("discard_ratio", 0.9))
    if method == "gae":
        return gae_map(attention, gradients, num_prefix_tokens=prefix, grid_size=grid, token=token)
    if method == "gradcam_attention":
        block = options.get("block", -1)
        if not -c.depth <= block < c.depth:
            raise ValueError(f"block {block} is out of range for {c.depth} blocks")
        return gradcam_attention_map(attention[block], gradients[block], num_prefix_tokens=prefix, grid_size=grid,
                                     token=token)
    # transformer_attribution
    start_block = options.get("start_block", 0)
    if not -c.depth <= start_block < c.depth:
        raise ValueError(f"start_block {start_block} is out of range for {c.depth} blocks")
    _, trace = float64_forward(model, x)
    relevance = attention_relevance(model, trace, targets, start_block)
    return attribution_rollout_map(relevance, gradients, num_prefix_tokens=prefix, grid_size=grid, token=token,
                                   start_block=start_block)
