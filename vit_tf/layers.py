"""Keras 3 layers of the Vision Transformer (Dosovitskiy et al. 2020) on the TensorFlow backend, with DINOv2's
LayerScale and SwiGLU MLP (Oquab et al. 2023).

Sublayer names (`proj`, `norm1`, `attn`, `qkv`, `ls1`, `norm2`, `mlp`, `fc1`, `fc2`, `ls2`) follow timm's module
names so that converters can find every weight by name.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Optional

import keras
import tensorflow as tf

PACKAGE = "vit_tf"


def _cubic(x: tf.Tensor, a: float = -0.5) -> tf.Tensor:
    # Keys' cubic convolution kernel; a = -0.5 is what PyTorch's antialiased bicubic (PIL's filter) uses.
    x = tf.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    return tf.where(x < 1.0, near, tf.where(x < 2.0, far, tf.zeros_like(x)))


def antialiased_bicubic_matrix(in_size: int, out_size) -> tf.Tensor:
    """Row-normalised (out_size, in_size) matrix of `F.interpolate(mode="bicubic", antialias=True)` along one axis.

    timm resamples position embeddings with that call (`resample_abs_pos_embed`); building the separable
    matrices ourselves reproduces it to float32 rounding and works with dynamic sizes inside a SavedModel.
    """
    out_f = tf.cast(out_size, tf.float64)
    scale = tf.cast(in_size, tf.float64) / out_f
    invscale = tf.where(scale >= 1.0, 1.0 / scale, tf.constant(1.0, tf.float64))
    centers = scale * (tf.range(out_f, dtype=tf.float64) + 0.5)  # (out,)
    src = tf.range(in_size, dtype=tf.float64) + 0.5  # (in,)
    w = _cubic((src[None, :] - centers[:, None]) * invscale)  # zero outside the kernel's support
    return tf.cast(w / tf.reduce_sum(w, axis=1, keepdims=True), tf.float32)


def bicubic_matrix(in_size: int, out_size, offset=0.0) -> tf.Tensor:
    """(out_size, in_size) matrix of `F.interpolate(mode="bicubic", align_corners=False)` WITHOUT antialias along
    one axis: Keys' kernel with a = -0.75 on the 4 nearest inputs, indices clamped at the borders (PyTorch's
    `upsample_bicubic2d`; ONNX `Resize` cubic, half_pixel, exclude_outside=0 is the same).

    offset: 0 maps coordinates by the sizes (in / out); DINOv2's `interpolate_offset` (0.1) passes the scale factor
    (out + offset) / in instead, so coordinates map by in / (out + offset). May be a tensor.
    """
    # Coordinates and weights in float32 as PyTorch computes them for float32 tensors (its `opmath` type); the
    # scale is rounded from float64 as PyTorch's `area_pixel_compute_scale` does.
    out_f = tf.cast(out_size, tf.float64)
    scale = tf.cast(tf.cast(in_size, tf.float64) / (out_f + tf.cast(offset, tf.float64)), tf.float32)
    src = scale * (tf.range(tf.cast(out_size, tf.float32), dtype=tf.float32) + 0.5) - 0.5  # negatives kept (cubic)
    left = tf.floor(src)
    t = tf.clip_by_value(src - left, 0.0, 1.0)[:, None]  # (out, 1)
    a = -0.75

    def near(x):  # |x| <= 1
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0

    def far(x):  # 1 <= |x| <= 2
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

    weights = tf.concat([far(t + 1.0), near(t), near(1.0 - t), far((1.0 - t) + 1.0)], axis=1)  # left-1 .. left+2
    index = tf.cast(left, tf.int32)[:, None] + tf.range(-1, 3)[None, :]
    index = tf.clip_by_value(index, 0, in_size - 1)  # border inputs repeat, as PyTorch reads them
    return tf.einsum("ok,oki->oi", weights, tf.one_hot(index, in_size, dtype=tf.float32))


def resample_grid(grid: tf.Tensor, new_size, mode: str = "timm_antialias") -> tf.Tensor:
    """Resample (1, gh, gw, D) position embeddings to (1, new_h, new_w, D); `new_size` may hold tensors.

    mode: a `vit_tf.configs.POS_EMBED_INTERPOLATIONS` value. "bicubic_offset" (official DINOv2 without registers)
    returns the grid unchanged when the new grid is the old one, and offsets the scale factors otherwise.
    Computed in float32 whatever the grid's dtype (the result has the grid's dtype), so that bfloat16 / float16
    models resample exactly as float32 ones up to the final rounding."""
    gh, gw = grid.shape[1], grid.shape[2]
    if mode == "timm_antialias":
        mh = antialiased_bicubic_matrix(gh, new_size[0])
        mw = antialiased_bicubic_matrix(gw, new_size[1])
    elif mode in ("bicubic", "bicubic_offset"):
        offset = 0.0
        if mode == "bicubic_offset":  # the official code skips interpolation only when both sides are unchanged
            same = tf.logical_and(tf.equal(tf.cast(new_size[0], tf.int32), gh),
                                  tf.equal(tf.cast(new_size[1], tf.int32), gw))
            offset = tf.where(same, 0.0, 0.1)
        mh = bicubic_matrix(gh, new_size[0], offset)
        mw = bicubic_matrix(gw, new_size[1], offset)
    else:
        raise ValueError(f"unknown position-embedding interpolation {mode!r}")
    return tf.cast(tf.einsum("hH,bHWd,wW->bhwd", mh, tf.cast(grid, tf.float32), mw), grid.dtype)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PatchEmbed(keras.layers.Layer):
    """Non-overlapping patches to tokens: (B, H, W, 3) -> (B, H/p, W/p, D) via a stride-p convolution `proj`."""

    def __init__(self, patch_size: int, embed_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.proj = keras.layers.Conv2D(embed_dim, patch_size, strides=patch_size, padding="valid", name="proj",
                                        dtype=self.dtype_policy)

    def build(self, input_shape):
        self.proj.build(input_shape)
        self.built = True

    def call(self, images):
        return patch_conv(self.proj, tf.cast(images, self.compute_dtype))

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "embed_dim": self.embed_dim}


# -- relevance rules: an off-by-default switch read at trace time ----------------------------------------------------
# LRP for transformers as gradient x input of the model's own forward pass (vit_tf.analysis.explanations.attnlrp):
# inside `relevance_rules(rule)`, `layer_norm`, `linear`'s activations, `Attention.forward` and `SwiGLUMlp.forward`
# trace the same forward values with the rules' gradients; outside it they trace exactly the ops they always do. The
# setting is per thread, so that each replica that tf.distribute traces in its own thread sets it for itself.
RELEVANCE_RULES = ("attnlrp", "cp")
_relevance = threading.local()


@contextlib.contextmanager
def relevance_rules(rule: str = "attnlrp"):
    """Trace the layers with LRP rules as modified gradients (the forward values are unchanged):
    LayerNorm with its 1 / std constant (Ali et al. 2022's LN rule); GELU, SiLU and tanh by the identity rule, the
    gradient f(x) / x (Achtibat et al. 2024, eq. 9); the SwiGLU product by the uniform rule, half the gradient to
    each factor. Attention: "attnlrp" = the uniform rule on Q K^T and on A V and the softmax's own gradient, which is
    AttnLRP's softmax rule (Proposition 3.1) in gradient x input form; "cp" = the attention probabilities constant
    (Ali et al.'s CP-LRP), so relevance reaches the tokens through the values only."""
    if rule not in RELEVANCE_RULES:
        raise ValueError(f"rule must be one of {RELEVANCE_RULES}, got {rule!r}")
    previous = getattr(_relevance, "rule", None)
    _relevance.rule = rule
    try:
        yield
    finally:
        _relevance.rule = previous


def relevance_rule() -> Optional[str]:
    """The rule `relevance_rules` set on this thread, or None (the default: plain gradients)."""
    return getattr(_relevance, "rule", None)


def uniform_rule(x):
    """x, with half the gradient passed back (the uniform rule for one factor of a product of two)."""
    @tf.custom_gradient
    def half(t):
        return tf.identity(t), lambda dy: dy * tf.cast(0.5, dy.dtype)
    return half(x)


def identity_rule(x, f, ratio):
    """f(x) element-wise, with the gradient dy * ratio(x), ratio(x) = f(x) / x finite at 0: gradient x input then
    passes the output's relevance to the input unchanged (the identity rule)."""
    @tf.custom_gradient
    def rule(t):
        return f(t), lambda dy: dy * ratio(t)
    return rule(x)


def _gelu(y):
    if y.dtype == tf.float64:  # TF's float64 GELU kernel is accurate to ~5e-9 only; erf is exact
        return 0.5 * y * (1.0 + tf.math.erf(y * 0.7071067811865476))
    return tf.nn.gelu(y, approximate=False)


def _gelu_ratio(y):  # gelu(y) / y = Phi(y), the normal CDF
    return 0.5 * (1.0 + tf.math.erf(y * tf.cast(0.7071067811865476, y.dtype)))


def _tanh_ratio(y):  # tanh(y) / y, 1 at 0
    zero = tf.equal(y, 0.0)
    safe = tf.where(zero, tf.ones_like(y), y)
    return tf.where(zero, tf.ones_like(y), tf.tanh(safe) / safe)


# -- the arithmetic every block runs, on (M, features) token matrices ---------------------------------------------
# Tokens go through the blocks as 2-D (B * N, D) matrices: a 2-D MatMul followed by BiasAdd (and GELU) is what
# TensorFlow's oneDNN rewrite fuses into one kernel (`_MklNativeFusedMatMul`); on (B, N, D) the same Dense layer
# becomes a batched matmul with a separate bias add and a four-op GELU, which costs 15-25 % of the forward pass
# in float32 and more in bfloat16 (benchmarks/README.md, "Where the time goes").
def linear(layer, x, activation=None):
    """A `keras.layers.Dense` layer's weights applied to x (M, in) -> (M, out) in x's dtype, as MatMul + BiasAdd
    [+ exact GELU] so that the three fuse. `activation`: None, "gelu" or "tanh"."""
    y = tf.matmul(x, tf.cast(layer.kernel, x.dtype))
    if layer.use_bias:
        y = tf.nn.bias_add(y, tf.cast(layer.bias, x.dtype))
    if activation == "gelu":
        return _gelu(y) if relevance_rule() is None else identity_rule(y, _gelu, _gelu_ratio)
    if activation == "tanh":
        return tf.tanh(y) if relevance_rule() is None else identity_rule(y, tf.tanh, _tanh_ratio)
    return y


def patch_conv(layer, images):
    """A stride-p `keras.layers.Conv2D` (valid padding) applied to images (B, H, W, C) in their dtype:
    (B, H/p, W/p, D)."""
    kernel = tf.cast(layer.kernel, images.dtype)
    y = tf.nn.conv2d(images, kernel, strides=layer.strides, padding="VALID")
    return tf.nn.bias_add(y, tf.cast(layer.bias, images.dtype)) if layer.use_bias else y


def wide_dtype(dtype):
    """The dtype statistics and probabilities are computed in: float64 for float64 tensors (the explanation methods'
    exact pass), float32 for every other dtype."""
    return tf.float64 if dtype == tf.float64 else tf.float32


def layer_norm(layer, x):
    """A `keras.layers.LayerNormalization` (last axis) applied to x (..., D), computed in float32 (float64 for
    float64 x) whatever x's dtype, as Keras does, and returned in x's dtype."""
    with tf.name_scope("layer_norm"):
        dtype = x.dtype
        wide = wide_dtype(dtype)
        x = tf.cast(x, wide)
        # The centred form: five full-size elementwise ops instead of six broadcasts; in ViT-S/16 at batch 8 the
        # 24 LayerNorms took 36 ms instead of 61 ms per batch (benchmarks/profile_forward.py, 2026-12-03).
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        centred = x - mean
        var = tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
        rstd = tf.math.rsqrt(var + layer.epsilon)
        if relevance_rule() is not None:  # LN rule: the scale is a constant, so the norm is linear in x
            rstd = tf.stop_gradient(rstd)
        return tf.cast(tf.cast(layer.beta, wide) + centred * (rstd * tf.cast(layer.gamma, wide)), dtype)


def _scaled(layer_scale, x):
    """x times a `LayerScale`'s gamma, or x when there is none."""
    return x if layer_scale is None else x * tf.cast(layer_scale.gamma, x.dtype)


def head_mask_factors(head_mask, num_heads: int, dtype) -> tf.Tensor:
    """A head mask for one block, (heads,) for every image or (B, heads) per image, as factors (1 or B, heads, 1, 1)
    that broadcast over attention maps (B, heads, N, N)."""
    m = tf.cast(head_mask, dtype)
    return tf.reshape(m, (-1, num_heads, 1, 1))


@keras.saving.register_keras_serializable(package=PACKAGE)
class Attention(keras.layers.Layer):
    """Multi-head self-attention with a fused `qkv` projection.

    Call: `attn(x, training=False, return_attention=True, head_mask=None)` with x (B, N, D) and head_mask None,
    (heads,) or (B, heads): a factor on each head's attention probabilities before they mix the values.
    Returns (output (B, N, D), attention (B, heads, N, N) float32 softmax probabilities taken before attention
    dropout and multiplied by `head_mask`), or (output, None) with `return_attention=False`. The softmax is computed
    in float32 under every dtype policy. `forward(x2d, batch, tokens, ...)` is the same on (B * N, D) matrices and
    can record every intermediate tensor (see `TransformerBlock.forward`).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.num_heads, self.qkv_bias = dim, num_heads, qkv_bias
        self.attn_drop_rate, self.proj_drop_rate = attn_drop, proj_drop
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        policy = self.dtype_policy
        self.qkv = keras.layers.Dense(3 * dim, use_bias=qkv_bias, name="qkv", dtype=policy)
        self.proj = keras.layers.Dense(dim, name="proj", dtype=policy)
        self.attn_drop = keras.layers.Dropout(attn_drop, dtype=policy)
        self.proj_drop = keras.layers.Dropout(proj_drop, dtype=policy)

    def build(self, input_shape):
        self.qkv.build((None, None, self.dim))
        self.proj.build((None, None, self.dim))
        self.built = True

    def forward(self, x, batch, tokens, training=False, head_mask=None, record=None):
        """x (B * N, D) in the compute dtype -> (output (B * N, D), attention (B, heads, N, N) float32).

        record: None or a dict that receives "q", "k", "v" (B, heads, N, hd), "a" (the attention as returned) and
        "ctx" (B * N, D), the heads' outputs concatenated before `proj`."""
        h, hd = self.num_heads, self.head_dim
        qkv = tf.reshape(linear(self.qkv, x), (batch, tokens, 3, h, hd))
        q, k, v = tf.unstack(tf.transpose(qkv, (2, 0, 3, 1, 4)), axis=0)  # each (B, heads, N, hd)
        rule = relevance_rule()
        scaled, keys = q * tf.cast(self.scale, q.dtype), k
        if rule == "attnlrp":  # uniform rule on Q K^T
            scaled, keys = uniform_rule(scaled), uniform_rule(keys)
        logits = tf.matmul(scaled, keys, transpose_b=True)
        attn = tf.nn.softmax(tf.cast(logits, wide_dtype(q.dtype)), axis=-1)
        if head_mask is not None:
            attn = attn * head_mask_factors(head_mask, h, attn.dtype)
        probs = attn
        if training and self.attn_drop_rate > 0:
            probs = self.attn_drop(attn, training=training)
        probs, values = tf.cast(probs, v.dtype), v
        if rule == "attnlrp":  # uniform rule on A V
            probs, values = uniform_rule(probs), uniform_rule(values)
        elif rule == "cp":  # CP-LRP: the attention is a constant
            probs = tf.stop_gradient(probs)
        ctx = tf.matmul(probs, values)  # (B, heads, N, hd)
        ctx = tf.reshape(tf.transpose(ctx, (0, 2, 1, 3)), (-1, self.dim))
        if record is not None:
            record.update(q=q, k=k, v=v, a=attn, ctx=ctx)
        out = linear(self.proj, ctx)
        if training and self.proj_drop_rate > 0:
            out = self.proj_drop(out, training=training)
        return out, attn

    def call(self, x, training=False, return_attention=True, head_mask=None):
        b, n = tf.shape(x)[0], tf.shape(x)[1]
        out, attn = self.forward(tf.reshape(x, (-1, self.dim)), b, n, training=training, head_mask=head_mask)
        return tf.reshape(out, (b, n, self.dim)), (attn if return_attention else None)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads, "qkv_bias": self.qkv_bias,
                "attn_drop": self.attn_drop_rate, "proj_drop": self.proj_drop_rate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Mlp(keras.layers.Layer):
    """fc1 -> exact GELU -> dropout -> fc2 -> dropout, on (..., dim)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.hidden_dim, self.drop_rate = dim, hidden_dim, drop
        self.fc1 = keras.layers.Dense(hidden_dim, name="fc1", dtype=self.dtype_policy)
        self.fc2 = keras.layers.Dense(dim, name="fc2", dtype=self.dtype_policy)
        self.drop = keras.layers.Dropout(drop, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.fc1.build((None, None, self.dim))
        self.fc2.build((None, None, self.hidden_dim))
        self.built = True

    def forward(self, x, training=False, record=None):
        """x (M, dim) -> (M, dim); record: None or a dict that receives "g" (M, hidden), the GELU's output."""
        dropping = training and self.drop_rate > 0
        g = linear(self.fc1, x, "gelu")
        if record is not None:
            record["g"] = g
        out = linear(self.fc2, self.drop(g, training=training) if dropping else g)
        return self.drop(out, training=training) if dropping else out

    def call(self, x, training=False):
        shape = tf.shape(x)
        return tf.reshape(self.forward(tf.reshape(x, (-1, self.dim)), training), shape)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "hidden_dim": self.hidden_dim, "drop": self.drop_rate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SwiGLUMlp(keras.layers.Layer):
    """DINOv2's SwiGLU MLP in timm's packed layout: fc1 (dim -> 2 * hidden_dim) gives halves x1, x2; then
    dropout -> fc2(silu(x1) * x2) -> dropout. (..., dim) -> (..., dim)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.hidden_dim, self.drop_rate = dim, hidden_dim, drop
        self.fc1 = keras.layers.Dense(2 * hidden_dim, name="fc1", dtype=self.dtype_policy)
        self.fc2 = keras.layers.Dense(dim, name="fc2", dtype=self.dtype_policy)
        self.drop = keras.layers.Dropout(drop, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.fc1.build((None, None, self.dim))
        self.fc2.build((None, None, self.hidden_dim))
        self.built = True

    def forward(self, x, training=False, record=None):
        """x (M, dim) -> (M, dim); record: None or a dict that receives "g" (M, hidden), silu(x1) * x2."""
        dropping = training and self.drop_rate > 0
        x1, x2 = tf.split(linear(self.fc1, x), 2, axis=-1)  # the gate is the first half, as torch's chunk(2)
        if relevance_rule() is None:
            g = tf.nn.silu(x1) * x2
        else:  # identity rule on SiLU (silu(x) / x = sigmoid(x)), uniform rule on the product
            g = uniform_rule(identity_rule(x1, tf.nn.silu, tf.sigmoid) * x2)
        if record is not None:
            record["g"] = g
        out = linear(self.fc2, self.drop(g, training=training) if dropping else g)
        return self.drop(out, training=training) if dropping else out

    def call(self, x, training=False):
        shape = tf.shape(x)
        return tf.reshape(self.forward(tf.reshape(x, (-1, self.dim)), training), shape)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "hidden_dim": self.hidden_dim, "drop": self.drop_rate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LayerScale(keras.layers.Layer):
    """Per-channel scale of a residual branch (Touvron et al. 2021, CaiT): x * gamma, gamma (dim,)."""

    def __init__(self, dim: int, init_values: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.init_values = dim, init_values

    def build(self, input_shape):
        self.gamma = self.add_weight(shape=(self.dim,), initializer=keras.initializers.Constant(self.init_values),
                                     name="gamma")
        self.built = True

    def call(self, x):
        return x * tf.cast(self.gamma, x.dtype)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "init_values": self.init_values}


@keras.saving.register_keras_serializable(package=PACKAGE)
class DropPath(keras.layers.Layer):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, rate: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate

    def call(self, x, training=False):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (tf.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        mask = tf.floor(keep + tf.random.uniform(shape, dtype=x.dtype))
        return x / keep * mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerBlock(keras.layers.Layer):
    """Pre-norm block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x))); the LayerScales `ls1`/`ls2` exist only
    with `init_values` (DINOv2), and `mlp_type` "swiglu" makes `mlp` a `SwiGLUMlp`.

    Call: `block(x, training=False, return_attention=True, head_mask=None)`, x (B, N, D), head_mask None, (heads,) or
    (B, heads). Returns (tokens (B, N, D), attention (B, heads, N, N) float32, or None with
    `return_attention=False`). `forward` is the same on (B * N, D) matrices and can record every intermediate.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, qkv_bias: bool = True, layer_norm_eps: float = 1e-6,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, init_values=None,
                 mlp_type: str = "gelu", **kwargs):
        super().__init__(**kwargs)
        self.dim, self.num_heads, self.mlp_dim, self.qkv_bias = dim, num_heads, mlp_dim, qkv_bias
        self.layer_norm_eps, self.drop, self.attn_drop, self.drop_path_rate = layer_norm_eps, drop, attn_drop, drop_path
        self.init_values, self.mlp_type = init_values, mlp_type
        policy = self.dtype_policy
        self.norm1 = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="norm1", dtype=policy)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop=attn_drop, proj_drop=drop, name="attn",
                              dtype=policy)
        self.norm2 = keras.layers.LayerNormalization(epsilon=layer_norm_eps, name="norm2", dtype=policy)
        if mlp_type not in ("gelu", "swiglu"):
            raise ValueError(f"mlp_type must be 'gelu' or 'swiglu', got {mlp_type!r}")
        mlp_class = SwiGLUMlp if mlp_type == "swiglu" else Mlp
        self.mlp = mlp_class(dim, mlp_dim, drop=drop, name="mlp", dtype=policy)
        scaled = init_values is not None
        self.ls1 = LayerScale(dim, init_values, name="ls1", dtype=policy) if scaled else None
        self.ls2 = LayerScale(dim, init_values, name="ls2", dtype=policy) if scaled else None
        self.drop_path = DropPath(drop_path, dtype=policy)

    def build(self, input_shape):
        for layer in (self.norm1, self.attn, self.norm2, self.mlp, self.ls1, self.ls2):
            if layer is not None:
                layer.build((None, None, self.dim))
        self.built = True

    def forward(self, x, batch, tokens, training=False, head_mask=None, record=None):
        """The block on a (B * N, D) token matrix in the compute dtype: the one implementation that `call`, the
        model's forward pass and the explanation methods all run.

        Args:
            x: (B * N, D) tokens, image-major. batch, tokens: B and N.
            head_mask: None, (heads,) or (B, heads).
            record: None, or a dict that receives the block's intermediate tensors (timm's `forward_intermediates`
                idea, per sublayer): "x" input (B*N, D), "n1" norm1(x), "q", "k", "v" (B, heads, N, hd), "a" the
                attention (B, heads, N, N) float32, "ctx" (B*N, D) heads' outputs before `proj`, "y" the attention
                branch after `proj` (and ls1), "mid" x + y, "n2" norm2(mid), "g" the MLP's hidden activation
                (B*N, hidden), "m" the MLP branch (after ls2), "out" mid + m.
        Returns:
            (out (B * N, D), attention (B, heads, N, N) float32).
        """
        n1 = layer_norm(self.norm1, x)
        y, attn = self.attn.forward(n1, batch, tokens, training=training, head_mask=head_mask, record=record)
        y = _scaled(self.ls1, y)
        mid = self._residual(x, y, batch, training)
        n2 = layer_norm(self.norm2, mid)
        m = _scaled(self.ls2, self.mlp.forward(n2, training=training, record=record))
        out = self._residual(mid, m, batch, training)
        if record is not None:
            record.update(x=x, n1=n1, y=y, mid=mid, n2=n2, m=m, out=out)
        return out, attn

    def _residual(self, x, branch, batch, training):
        if training and self.drop_path_rate > 0:  # stochastic depth drops whole images' branches
            branch = tf.reshape(self.drop_path(tf.reshape(branch, (batch, -1, self.dim)), training=True),
                                (-1, self.dim))
        return x + branch

    def call(self, x, training=False, return_attention=True, head_mask=None):
        b, n = tf.shape(x)[0], tf.shape(x)[1]
        out, attn = self.forward(tf.reshape(x, (-1, self.dim)), b, n, training=training, head_mask=head_mask)
        return tf.reshape(out, (b, n, self.dim)), (attn if return_attention else None)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads, "mlp_dim": self.mlp_dim,
                "qkv_bias": self.qkv_bias, "layer_norm_eps": self.layer_norm_eps, "drop": self.drop,
                "attn_drop": self.attn_drop, "drop_path": self.drop_path_rate, "init_values": self.init_values,
                "mlp_type": self.mlp_type}
