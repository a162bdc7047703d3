"""The attention-based explanation rules, written once with TensorFlow ops in float64, so that they run inside the
compiled pass (only (B, gh, gw) maps leave it) and, wrapped by the `*_map` functions, on arrays from anywhere.

Notation: A_l (B, heads, T, T) block l's attention probabilities, dA_l the gradient of the target logit with respect
to them, E_h the mean over heads, ^+ clipping at 0, `index` the readout token's row, `prefix` the number of prefix
tokens (class, distillation, registers) before the patches.

Discarding (rollout, grad-rollout): the k = int(T * T * ratio) smallest entries of each fused (T, T) matrix are set
to 0, ties in flattened row-major order. What the discard never touches is one named rule for both methods,
`protect`: "entry" (default) spares the readout token's own entry (index, index) — jacobgil/vit-explain's rule,
which spares flat index 0, generalised to any readout token — so fewer than k entries go when it is among them;
"column" spares the readout token's whole column and takes the k smallest of the other entries.
"""

from __future__ import annotations

PROTECT = ("entry", "column")
HEAD_FUSIONS = ("mean", "max", "min")


def _tf():
    import tensorflow as tf

    return tf


def check_discard(discard_ratio: float, protect: str) -> None:
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    if protect not in PROTECT:
        raise ValueError(f"protect must be one of {PROTECT}, got {protect!r}")


def discard_lowest(fused, discard_ratio: float, index: int, protect: str = "entry"):
    """(B, T, T) -> the same with the discarded entries set to 0 (see the module docstring). T must be static."""
    tf = _tf()
    t = fused.shape[-1]
    k = int(t * t * discard_ratio)
    if k == 0:
        return fused
    flat = tf.reshape(fused, (-1, t * t))
    position = tf.range(t * t)
    if protect == "column":
        spared = tf.equal(position % t, index)
        big = tf.constant(float("inf"), flat.dtype)
        # The spared entries sort last, so the k smallest of the others are the first k (stable: row-major ties).
        order = tf.argsort(tf.where(spared[None], big, flat), axis=-1, stable=True)
        rank = tf.argsort(order, axis=-1, stable=True)
        drop = (rank < min(k, t * t - t)) & ~spared[None]
    else:
        order = tf.argsort(flat, axis=-1, stable=True)
        rank = tf.argsort(order, axis=-1, stable=True)  # position of each entry in the sorted order
        drop = (rank < k) & tf.not_equal(position, index * t + index)[None]
    return tf.reshape(tf.where(drop, tf.zeros_like(flat), flat), tf.shape(fused))


def _eye(t, dtype):
    return _tf().eye(t, dtype=dtype)


def row_over_patches(matrix, index: int, prefix: int, grid):
    """(B, T, T) -> token `index`'s row over the patches, (B, gh, gw)."""
    tf = _tf()
    return tf.reshape(matrix[:, index, prefix:], (-1, grid[0], grid[1]))


def rollout(attention, index: int, *, head_fusion: str = "mean", discard_ratio: float = 0.0,
            protect: str = "entry"):
    """Abnar & Zuidema's rollout over the given blocks [(B, heads, T, T)]: prod_l normalize((discard(fuse(A_l)) +
    I) / 2), later blocks on the left; float64 (B, T, T)."""
    tf = _tf()
    fuse = {"mean": tf.reduce_mean, "max": tf.reduce_max, "min": tf.reduce_min}[head_fusion]
    result = None
    for a in attention:
        fused = discard_lowest(fuse(tf.cast(a, tf.float64), axis=1), discard_ratio, index, protect)
        joint = (fused + _eye(fused.shape[-1], tf.float64)) / 2.0
        joint = joint / tf.reduce_sum(joint, axis=-1, keepdims=True)
        result = joint if result is None else tf.matmul(joint, result)
    return result


def grad_rollout(attention, gradients, index: int, *, discard_ratio: float = 0.9, protect: str = "entry"):
    """jacobgil/vit-explain's gradient rollout with its bugs fixed: per block l with its own gradient,
    F = (E_h[A_l * dA_l])^+, discarded as the module docstring says, J = (F + I) / 2 with rows normalised; the
    product J_{L-1} ... J_0, float64 (B, T, T), rows summing to 1."""
    tf = _tf()
    result = None
    for a, g in zip(attention, gradients):
        fused = tf.nn.relu(tf.reduce_mean(tf.cast(a, tf.float64) * tf.cast(g, tf.float64), axis=1))
        fused = discard_lowest(fused, discard_ratio, index, protect)
        joint = (fused + _eye(fused.shape[-1], tf.float64)) / 2.0
        joint = joint / tf.reduce_sum(joint, axis=-1, keepdims=True)
        result = joint if result is None else tf.matmul(joint, result)
    return result


def relevance_heads(a, g):
    """Chefer et al.'s head average E_h[(g * a)^+]: (B, heads, T, T) pair -> (B, T, T) float64."""
    tf = _tf()
    return tf.reduce_mean(tf.nn.relu(tf.cast(g, tf.float64) * tf.cast(a, tf.float64)), axis=1)


def gae(attention, gradients):
    """Generic Attention-model Explainability (Chefer, Gur & Wolf, ICCV 2021), rules 5 and 6 for self-attention:
    R = I; for each block in order R <- R + E_h[(dA * A)^+] R. Returns R, float64 (B, T, T)."""
    tf = _tf()
    t = attention[0].shape[-1]
    r = None
    for a, g in zip(attention, gradients):
        cam = relevance_heads(a, g)
        r = cam + _eye(t, tf.float64)[None] if r is None else r + tf.matmul(cam, r)
    return r


def attribution_rollout(relevance, gradients):
    """Transformer attribution's aggregation (Chefer, Gur & Wolf, CVPR 2021, eq. 13-14) over the given blocks:
    prod_l (E_h[(dA_l * R_l)^+] + I), later blocks on the left, not normalised; float64 (B, T, T)."""
    tf = _tf()
    result = None
    for r, g in zip(relevance, gradients):
        joint = relevance_heads(r, g) + _eye(g.shape[-1], tf.float64)
        result = joint if result is None else tf.matmul(joint, result)
    return result


def gradcam_attention(a, g, index: int, prefix: int, grid):
    """The attention Grad-CAM baseline of Chefer et al. (CVPR 2021, `generate_cam_attn`) on one block: the token's
    row over the patches per head, weighted by that row's mean gradient, averaged over heads, clipped at 0.
    (B, heads, T, T) pair -> float64 (B, gh, gw)."""
    tf = _tf()
    cam = tf.cast(a, tf.float64)[:, :, index, prefix:]  # (B, heads, N)
    weight = tf.reduce_mean(tf.cast(g, tf.float64)[:, :, index, prefix:], axis=-1, keepdims=True)
    return tf.reshape(tf.nn.relu(tf.reduce_mean(cam * weight, axis=1)), (-1, grid[0], grid[1]))


def gradcam_tokens(features, gradient, prefix: int, grid):
    """Grad-CAM on token features (pytorch-grad-cam with its ViT `reshape_transform`): the patch tokens X (B, N, D)
    as a (D, gh, gw) activation map, channel weights the gradient's mean over the patches, ReLU of the weighted sum
    over channels. Prefix tokens are dropped first. (B, T, D) pair -> float64 (B, gh, gw)."""
    tf = _tf()
    x = tf.cast(features, tf.float64)[:, prefix:]
    g = tf.cast(gradient, tf.float64)[:, prefix:]
    cam = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(g, axis=1, keepdims=True) * x, axis=-1))
    return tf.reshape(cam, (-1, grid[0], grid[1]))


def attention_row(a, index: int, prefix: int, grid):
    """Raw attention: the token's row over the patches, mean over heads. (B, heads, T, T) -> float64 (B, gh, gw)."""
    tf = _tf()
    return tf.reshape(tf.reduce_mean(tf.cast(a, tf.float64)[:, :, index, prefix:], axis=1), (-1, grid[0], grid[1]))


def pool_to_patches(values, patch_size: int):
    """Per-pixel values (B, H, W, C) -> their sums over each patch's pixels and channels, (B, H/p, W/p)."""
    tf = _tf()
    v = tf.cast(values, tf.float64)
    s = tf.shape(v)
    p = patch_size
    v = tf.reshape(v, (s[0], s[1] // p, p, s[2] // p, p, s[3]))
    return tf.reduce_sum(v, axis=(2, 4, 5))
