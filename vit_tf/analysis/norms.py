"""Token norms and high-norm ("artifact") tokens: Darcet et al. 2024, "Vision Transformers Need Registers".

Large, long-trained ViTs (DINOv2 ViT-L/g, OpenCLIP, DeiT-III) repurpose a few low-information patch tokens for
global computation; their output norms are far above the rest (the paper separates the bimodal distribution of
DINOv2 ViT-L at a norm of 150) and they show as bright spots in attention maps. Register tokens give that
computation a place of its own and the outliers disappear.

Pure functions: arrays in (NumPy, TF or torch tensors), NumPy arrays out; any batch size and grid; prefix tokens
(class, distillation, registers) passed explicitly as `num_prefix_tokens`. `token_norms` also accepts a model with
`forward_features(images, return_hidden=True)` (our `VisionTransformer`) and images.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ._arrays import check_prefix, to_numpy

# Default outlier rule (per image and block, over the patch tokens): a norm above both median + K * sigma, with
# sigma = 1.4826 * MAD (the median absolute deviation scaled to a normal's standard deviation), and RATIO * median.
# The relative floor keeps a nearly constant norm map (tiny MAD) from flagging ordinary tokens; both margins sit
# well inside the gap the paper reports (normal tokens below ~100, artifacts above 150 for ViT-L).
DEFAULT_K = 6.0
DEFAULT_RATIO = 2.0


def token_norms(model_or_hidden, images=None, *, blocks: Optional[Sequence[int]] = None) -> np.ndarray:
    """L2 norm of every token at the output of every block (the residual stream, before the final norm).

    Args:
        model_or_hidden: a model with `forward_features(images, return_hidden=True, return_attention=False)`, or
            the hidden states themselves: a sequence over blocks of (B, T, D), or an array (blocks, B, T, D).
        images: (B, H, W, 3) preprocessed images when a model is given.
        blocks: indices of the blocks to keep (negative count from the end); all by default.
    Returns:
        float32 (B, blocks, T): token order as the model's (prefix tokens first, then patches row by row).
    """
    if hasattr(model_or_hidden, "forward_features"):
        if images is None:
            raise ValueError("token_norms(model, images): images are needed with a model")
        _, _, hidden = model_or_hidden.forward_features(np.asarray(images, np.float32), return_hidden=True,
                                                        return_attention=False)
    else:
        hidden = model_or_hidden
    hidden = [to_numpy(h).astype(np.float32) for h in hidden]
    if not hidden or any(h.ndim != 3 or h.shape != hidden[0].shape for h in hidden):
        raise ValueError(f"hidden states must be blocks x (B, T, D) of one shape, got {[h.shape for h in hidden]}")
    if blocks is not None:
        hidden = [hidden[i] for i in blocks]
    return np.stack([np.linalg.norm(h, axis=-1) for h in hidden], axis=1)


def high_norm_tokens(norms, *, num_prefix_tokens: int, threshold: Optional[float] = None, k: float = DEFAULT_K,
                     ratio: float = DEFAULT_RATIO, grid_size: Optional[Tuple[int, int]] = None
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Flag the patch tokens whose norm is an outlier.

    Args:
        norms: (B, blocks, T) from `token_norms` (or (B, T) for one block).
        num_prefix_tokens: leading non-patch tokens (class, distillation, registers), never flagged.
        threshold: a fixed norm (Darcet et al. use 150 for DINOv2 ViT-L); None uses the robust default per image
            and block: max(median + k * 1.4826 * MAD, ratio * median) of the patch-token norms.
        k, ratio: the margins of the default rule.
        grid_size: (gh, gw) to return the mask as a grid.
    Returns:
        (mask bool (B, blocks, N) or (B, blocks, gh, gw) — the leading block axis absent for (B, T) input,
        thresholds float32 (B, blocks) or (B,)).
    """
    n = to_numpy(norms).astype(np.float64)
    single = n.ndim == 2
    if single:
        n = n[:, None]
    if n.ndim != 3:
        raise ValueError(f"norms must be (B, blocks, T) or (B, T), got shape {n.shape}")
    patches = n[..., num_prefix_tokens:]
    check_prefix(n.shape[-1], num_prefix_tokens)
    if threshold is None:
        median = np.median(patches, axis=-1)
        sigma = 1.4826 * np.median(np.abs(patches - median[..., None]), axis=-1)
        limit = np.maximum(median + k * sigma, ratio * median)
    else:
        limit = np.full(n.shape[:2], float(threshold))
    mask = patches > limit[..., None]
    if grid_size is not None:
        gh, gw = grid_size
        if gh * gw != mask.shape[-1]:
            raise ValueError(f"grid_size {grid_size} does not hold {mask.shape[-1]} patch tokens")
        mask = mask.reshape(*mask.shape[:2], gh, gw)
    limit = limit.astype(np.float32)
    return (mask[:, 0], limit[:, 0]) if single else (mask, limit)


def norm_summary(norms, *, num_prefix_tokens: int, block: int = -1) -> dict:
    """Plain numbers of one block for reports: class-token norm, patch median / max, registers' norms (mean over
    the batch), and the count of tokens `high_norm_tokens` flags with its default rule."""
    n = to_numpy(norms).astype(np.float64)[:, block]
    patches = n[:, num_prefix_tokens:]
    mask, _ = high_norm_tokens(n, num_prefix_tokens=num_prefix_tokens)
    return {"cls": float(n[:, 0].mean()), "registers": [float(v) for v in n[:, 1:num_prefix_tokens].mean(0)],
            "patch_median": float(np.median(patches)), "patch_max": float(patches.max()),
            "high_norm": int(mask.sum())}


__all__ = ["DEFAULT_K", "DEFAULT_RATIO", "high_norm_tokens", "norm_summary", "token_norms"]
