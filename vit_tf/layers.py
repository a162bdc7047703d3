"""Keras 3 layers of the Vision Transformer (Dosovitskiy et al. 2020) on the TensorFlow backend, with DINOv2's
LayerScale and SwiGLU MLP (Oquab et al. 2023).

Sublayer names (`proj`, `norm1`, `attn`, `qkv`, `ls1`, `norm2`, `mlp`, `fc1`, `fc2`, `ls2`) follow timm's module
names so that converters can find every weight by name.
"""

from __future__ import annotations

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
        return self.proj(images)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "embed_dim": self.embed_dim}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Attention(keras.layers.Layer):
    """Multi-head self-attention with a fused `qkv` projection.

    Call: `attn(x, training=False, return_attention=True, head_mask=None)` with x (B, N, D) and head_mask None or
    (heads,), a factor on each head's attention probabilities before they mix the values.
    Returns (output (B, N, D), attention (B, heads, N, N) float32 softmax probabilities taken before attention
    dropout and multiplied by `head_mask`), or (output, None) with `return_attention=False`, which runs the fused
    `keras.ops.dot_product_attention` and never materialises the maps. The softmax is computed in float32 under
    every dtype policy.
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

    def call(self, x, training=False, return_attention=True, head_mask=None):
        b, n = tf.shape(x)[0], tf.shape(x)[1]
        qkv = tf.reshape(self.qkv(x), (b, n, 3, self.num_heads, self.head_dim))
        if return_attention or (training and self.attn_drop_rate > 0):
            q, k, v = tf.unstack(tf.transpose(qkv, (2, 0, 3, 1, 4)), axis=0)  # each (B, heads, N, hd)
            logits = tf.matmul(q * tf.cast(self.scale, q.dtype), k, transpose_b=True)
            attn = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
            if head_mask is not None:
                attn = attn * tf.reshape(tf.cast(head_mask, tf.float32), (1, self.num_heads, 1, 1))
            out = tf.matmul(tf.cast(self.attn_drop(attn, training=training), v.dtype), v)  # (B, heads, N, hd)
            out = tf.transpose(out, (0, 2, 1, 3))
        else:
            q, k, v = tf.unstack(tf.transpose(qkv, (2, 0, 1, 3, 4)), axis=0)  # each (B, N, heads, hd)
            out = keras.ops.dot_product_attention(q, k, v, scale=self.scale)  # (B, N, heads, hd)
            if head_mask is not None:  # (A * m) V == m * (A V) per head
                out = out * tf.reshape(tf.cast(head_mask, out.dtype), (1, 1, self.num_heads, 1))
            attn = None
        out = tf.reshape(out, (b, n, self.dim))
        return self.proj_drop(self.proj(out), training=training), (attn if return_attention else None)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads, "qkv_bias": self.qkv_bias,
                "attn_drop": self.attn_drop_rate, "proj_drop": self.proj_drop_rate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Mlp(keras.layers.Layer):
    """fc1 -> exact GELU -> dropout -> fc2 -> dropout."""

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

    def call(self, x, training=False):
        x = self.drop(tf.nn.gelu(self.fc1(x), approximate=False), training=training)
        return self.drop(self.fc2(x), training=training)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "hidden_dim": self.hidden_dim, "drop": self.drop_rate}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SwiGLUMlp(keras.layers.Layer):
    """DINOv2's SwiGLU MLP in timm's packed layout: fc1 (dim -> 2 * hidden_dim) gives halves x1, x2; then
    dropout -> fc2(silu(x1) * x2) -> dropout. (B, N, dim) -> (B, N, dim)."""

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

    def call(self, x, training=False):
        x1, x2 = tf.split(self.fc1(x), 2, axis=-1)  # the gate is the first half, as torch's chunk(2)
        x = self.drop(tf.nn.silu(x1) * x2, training=training)
        return self.drop(self.fc2(x), training=training)

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

    Call: `block(x, training=False, return_attention=True, head_mask=None)`, x (B, N, D), head_mask None or (heads,).
    Returns (tokens (B, N, D), attention (B, heads, N, N) float32, or None with `return_attention=False`).
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

    def call(self, x, training=False, return_attention=True, head_mask=None):
        y, attn = self.attn(self.norm1(x), training=training, return_attention=return_attention, head_mask=head_mask)
        if self.ls1 is not None:
            y = self.ls1(y)
        x = x + self.drop_path(y, training=training)
        y = self.mlp(self.norm2(x), training=training)
        if self.ls2 is not None:
            y = self.ls2(y)
        x = x + self.drop_path(y, training=training)
        return x, attn

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads, "mlp_dim": self.mlp_dim,
                "qkv_bias": self.qkv_bias, "layer_norm_eps": self.layer_norm_eps, "drop": self.drop,
                "attn_drop": self.attn_drop, "drop_path": self.drop_path_rate, "init_values": self.init_values,
                "mlp_type": self.mlp_type}
