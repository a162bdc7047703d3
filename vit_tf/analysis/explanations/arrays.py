"""The attention-based rules of `rules` on arrays from anywhere (NumPy, TensorFlow, PyTorch): pure functions, arrays
in, float64 NumPy arrays out — for attention and gradients obtained elsewhere (`attention_gradients`, timm hooks).
`explain` runs the same rules inside its compiled pass.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from .._arrays import to_numpy, token_index
from . import rules


def _tensors(arrays):
    import tensorflow as tf

    return [tf.constant(to_numpy(a, np.float64)) for a in arrays]


def grad_rollout_matrix(attention: Sequence, gradients: Sequence, *, keep_token: int = 0, discard_ratio: float = 0.9,
                        protect: str = "entry") -> np.ndarray:
    """jacobgil/vit-explain's gradient rollout with its bugs fixed, as a matrix: per block l with its own gradient,
    F = max(E_h[A_l * dA_l], 0), the lowest entries discarded (`rules`: `protect` spares token `keep_token`'s own
    entry or its column), J = (F + I) / 2 with each row divided by its sum; the product J_{L-1} ... J_0.

    Args:
        attention, gradients: per block (B, heads, T, T).
        discard_ratio: in [0, 1); vit-explain's default 0.9.
    Returns:
        float64 (B, T, T), rows summing to 1.
    """
    rules.check_discard(discard_ratio, protect)
    joint = rules.grad_rollout(_tensors(attention), _tensors(gradients), keep_token, discard_ratio=discard_ratio,
                               protect=protect)
    return joint.numpy()


def grad_rollout_map(attention: Sequence, gradients: Sequence, *, num_prefix_tokens: int, grid_size,
                     token: Union[int, str] = "cls", discard_ratio: float = 0.9, protect: str = "entry") -> np.ndarray:
    """The readout token's row of `grad_rollout_matrix` over the patches, (B, gh, gw).

    Args:
        num_prefix_tokens, grid_size: token layout; (gh, gw) with gh * gw = T - num_prefix_tokens.
        token: readout token ("cls", "dist" or an index).
    """
    index = token_index(token, num_prefix_tokens, np.shape(attention[0])[-1])
    joint = grad_rollout_matrix(attention, gradients, keep_token=index, discard_ratio=discard_ratio,
                                protect=protect)
    return joint[:, index, num_prefix_tokens:].reshape(joint.shape[0], *grid_size)


def gae_map(attention: Sequence, gradients: Sequence, *, num_prefix_tokens: int, grid_size,
            token: Union[int, str] = "cls") -> np.ndarray:
    """Generic Attention-model Explainability (Chefer, Gur & Wolf, ICCV 2021): R = I; for each block in order,
    R <- R + E_h[(dA * A)^+] R; the token's row over the patches (B, gh, gw) float64."""
    index = token_index(token, num_prefix_tokens, np.shape(attention[0])[-1])
    r = rules.gae(_tensors(attention), _tensors(gradients)).numpy()
    return r[:, index, num_prefix_tokens:].reshape(r.shape[0], *grid_size)


def attribution_rollout_map(relevance: Sequence, gradients: Sequence, *, num_prefix_tokens: int, grid_size,
                            token: Union[int, str] = "cls", start_block: int = 0) -> np.ndarray:
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
    index = token_index(token, num_prefix_tokens, np.shape(gradients[0])[-1])
    joint = rules.attribution_rollout(_tensors(relevance[start:]), _tensors(gradients[start:])).numpy()
    return joint[:, index, num_prefix_tokens:].reshape(joint.shape[0], *grid_size)


def gradcam_attention_map(attention, gradient, *, num_prefix_tokens: int, grid_size,
                          token: Union[int, str] = "cls") -> np.ndarray:
    """The attention Grad-CAM baseline of Chefer et al. (CVPR 2021) for one block's attention and gradient
    (B, heads, T, T): the token's row over the patches per head, weighted by that row's mean gradient, averaged
    over heads, clipped at 0 (not min-max scaled). Returns (B, gh, gw) float64."""
    index = token_index(token, num_prefix_tokens, np.shape(attention)[-1])
    a, g = _tensors([attention, gradient])
    return rules.gradcam_attention(a, g, index, num_prefix_tokens, grid_size).numpy()


def gradcam_tokens_map(features, gradient, *, num_prefix_tokens: int, grid_size) -> np.ndarray:
    """Grad-CAM on token features (pytorch-grad-cam with its ViT `reshape_transform`): patch tokens (B, N, D) as a
    (D, gh, gw) activation map, channel weights the gradient's mean over the patches, ReLU of the weighted sum over
    channels; prefix tokens dropped first. (B, T, D) pair -> (B, gh, gw) float64, not min-max scaled."""
    x, g = _tensors([features, gradient])
    return rules.gradcam_tokens(x, g, num_prefix_tokens, grid_size).numpy()


def pool_to_patches(values, patch_size: int) -> np.ndarray:
    """Per-pixel values (B, H, W, C) -> their sums over each patch's pixels and channels, (B, H/p, W/p) float64."""
    v = to_numpy(values, np.float64)
    b, h, w, c = v.shape
    p = patch_size
    return v.reshape(b, h // p, p, w // p, p, c).sum(axis=(2, 4, 5))
