"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

Each block's heads are fused (mean, as in the ViT paper; max or min as in jacobgil/vit-explain), optionally the
weakest entries are discarded, the identity is added for the residual path and rows are renormalised; the blocks'
matrices are multiplied from `start_block` to the last one. The row of the class (or distillation) token over the
patches is the rollout map.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from ._arrays import check_consistent, check_finite, check_prefix, named_blocks, resolve_grid, token_index

HEAD_FUSIONS = ("mean", "max", "min")


def fuse_heads(attention, head_fusion: str = "mean") -> np.ndarray:
    """(B, heads, T, T) -> (B, T, T) by the mean, max or min over heads."""
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    return getattr(np, head_fusion)(np.asarray(attention, np.float64), axis=1)


def discard_lowest(fused: np.ndarray, discard_ratio: float, keep: int = 0, protect: str = "entry") -> np.ndarray:
    """Zero the lowest `discard_ratio` fraction of each (T, T) matrix of (B, T, T), as jacobgil/vit-explain does.

    The k = int(T * T * discard_ratio) smallest entries are chosen (ties in flattened row-major order). `protect`
    (the one rule of rollout and grad-rollout, `vit_tf.analysis.explanations.rules`): "entry" never zeroes the
    readout token's own entry (keep, keep), so fewer than k entries go when it is among them (vit-explain's rule);
    "column" never zeroes the readout token's column and takes the k smallest of the other entries.
    """
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    if protect not in ("entry", "column"):
        raise ValueError(f"protect must be 'entry' or 'column', got {protect!r}")
    b, t, _ = fused.shape
    k = int(t * t * discard_ratio)
    if k == 0:
        return fused
    flat = fused.reshape(b, t * t).copy()
    if protect == "column":
        candidates = np.flatnonzero(np.arange(t * t) % t != keep)
        order = np.argsort(flat[:, candidates], axis=-1, kind="stable")[:, :min(k, candidates.size)]
        np.put_along_axis(flat, candidates[order], 0.0, axis=-1)
        return flat.reshape(b, t, t)
    lowest = np.argsort(flat, axis=-1, kind="stable")[:, :k]
    protected = keep * t + keep
    rows = np.repeat(np.arange(b), k)
    cols = lowest.ravel()
    spare = cols != protected
    flat[rows[spare], cols[spare]] = 0.0
    return flat.reshape(b, t, t)


def rollout_matrix(attention, *, head_fusion: str = "mean", discard_ratio: float = 0.0, start_block: int = 0,
                   keep_token: int = 0, protect: str = "entry") -> np.ndarray:
    """Joint attention of blocks start_block..L-1: prod_l normalize((fuse(A_l) + I) / 2), later blocks on the left.

    Args:
        attention: our models' dict, a list of blocks (B, heads, T, T) or (B, blocks, heads, T, T).
        head_fusion: "mean", "max" or "min" over heads.
        discard_ratio: fraction of each fused matrix's lowest entries set to zero (see `discard_lowest`).
        start_block: first block included (negative counts from the end).
        keep_token, protect: the readout token, and what of it `discard_lowest` never zeroes ("entry" or "column").
    Returns:
        float64 (B, T, T), rows summing to 1; with identity attention in every block, the identity.
    Raises:
        ValueError naming the block for NaN/Inf or negative attention, and naming both blocks when the used blocks
        differ in token count or batch size.
    """
    return _joint(_used_blocks(named_blocks(attention), start_block), head_fusion, discard_ratio, keep_token, protect)


def _used_blocks(blocks: List[Tuple[str, np.ndarray]], start_block: int) -> List[Tuple[str, np.ndarray]]:
    depth = len(blocks)
    if not -depth <= start_block < depth:
        raise ValueError(f"start_block {start_block} is out of range for {depth} blocks")
    used = blocks[start_block % depth:]
    check_consistent(used, heads=False)  # heads are fused per block, so only tokens and batch must agree
    return used


def _joint(blocks: List[Tuple[str, np.ndarray]], head_fusion: str, discard_ratio: float,
           keep_token: int, protect: str = "entry") -> np.ndarray:
    result = None
    for name, a in blocks:
        fused = fuse_heads(check_finite(name, a), head_fusion)
        low = fused.min() if fused.size else 0.0
        if low < 0:
            raise ValueError(f"{name} has negative entries (min {low:.3g}): rollout needs attention probabilities "
                             f"(softmax outputs), not logits")
        fused = discard_lowest(fused, discard_ratio, keep_token, protect)
        eye = np.eye(fused.shape[-1])
        joint = (fused + eye) / 2.0  # the residual connection carries the token itself
        joint = joint / joint.sum(axis=-1, keepdims=True)
        result = joint if result is None else joint @ result
    return result


def attention_rollout(attention, *, num_prefix_tokens: int, token: Union[int, str] = "cls",
                      head_fusion: str = "mean", discard_ratio: float = 0.0, start_block: int = 0,
                      grid_size: Optional[Sequence[int]] = None, protect: str = "entry") -> np.ndarray:
    """Rollout map: the chosen token's row of `rollout_matrix` over the patches, on the patch grid.

    Args:
        attention: our models' dict, a list of blocks (B, heads, T, T) or (B, blocks, heads, T, T).
        num_prefix_tokens: leading non-patch tokens (1, or 2 for distilled DeiT).
        token: "cls", "dist" (distilled DeiT) or a token index to read the rollout from.
        head_fusion, discard_ratio, start_block, protect: see `rollout_matrix`.
        grid_size: (gh, gw); may be omitted for square grids.
    Returns:
        float64 (B, gh, gw), not rescaled: its sum is the rollout mass that reached the patches (the rest stayed
        on the prefix tokens).
    """
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    blocks = _used_blocks(named_blocks(attention), start_block)
    t = blocks[0][1].shape[-1]
    n = check_prefix(t, num_prefix_tokens)
    gh, gw = resolve_grid(n, grid_size)
    index = token_index(token, num_prefix_tokens, t)
    joint = _joint(blocks, head_fusion, discard_ratio, index, protect)
    return joint[:, index, num_prefix_tokens:].reshape(-1, gh, gw)


def rollout_stats(rollout_map) -> dict:
    """Summary numbers of rollout maps (B, gh, gw), each a list over the batch.

    patch_mass: sum over patches (1 - the mass left on prefix tokens). peak: (row, col) of the maximum.
    peak_share: the maximum's share of patch mass. normalized_entropy: entropy of the map as a distribution over
    patches divided by log(patches) (1 = uniform, 0 = one patch). top10_share: share of patch mass in the top 10%
    of patches.
    """
    m = check_finite("rollout_map", np.asarray(rollout_map, np.float64))
    if m.ndim != 3:
        raise ValueError(f"rollout_map must be (B, gh, gw), got {m.shape}")
    b, gh, gw = m.shape
    flat = m.reshape(b, -1)
    mass = flat.sum(-1)
    p = flat / np.where(mass > 0, mass, 1.0)[:, None]
    entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)
    top = max(1, int(np.ceil(0.1 * flat.shape[1])))
    peak = flat.argmax(-1)
    return {
        "patch_mass": mass.tolist(),
        "peak": [[int(i // gw), int(i % gw)] for i in peak],
        "peak_share": p.max(-1).tolist(),
        "normalized_entropy": (entropy / np.log(flat.shape[1]) if flat.shape[1] > 1 else np.zeros(b)).tolist(),
        "top10_share": np.sort(p, axis=-1)[:, -top:].sum(-1).tolist(),
    }
