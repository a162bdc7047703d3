"""Attention heatmaps: a token's attention to the patches per head (the keras.io example's Method III, after DINO's
visualize_attention.py, facebookresearch/dino), the layer x head grid of timm's attention-map recipe, DINO-style
masks keeping a fraction of the attention mass (Caron et al. 2021, Fig. 3), and resizing/overlay onto images.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from ._arrays import check_consistent, check_finite, check_prefix, named_blocks, resolve_grid, to_numpy, token_index


def _token_maps(a: np.ndarray, num_prefix_tokens: int, token, grid_size) -> np.ndarray:
    t = a.shape[-1]
    n = check_prefix(t, num_prefix_tokens)
    gh, gw = resolve_grid(n, grid_size)
    index = token_index(token, num_prefix_tokens, t)
    return a[:, :, index, num_prefix_tokens:].reshape(a.shape[0], a.shape[1], gh, gw)


def token_attention(attention, *, num_prefix_tokens: int, block: int = -1, token: Union[int, str] = "cls",
                    grid_size: Optional[Sequence[int]] = None) -> np.ndarray:
    """Per-head attention of one token to the patches in one block.

    Args:
        attention: one block (B, heads, T, T), our models' dict, a list of blocks or (B, blocks, heads, T, T).
        num_prefix_tokens: leading non-patch tokens (1, or 2 for distilled DeiT).
        block: block index when several are given (default the last).
        token: "cls", "dist" or a token index (the query).
        grid_size: (gh, gw); may be omitted for square grids.
    Returns:
        (B, heads, gh, gw), the attention probabilities as given (not renormalised over the patches).
    Raises:
        ValueError naming the block when the chosen block holds NaN/Inf.
    """
    blocks = named_blocks(attention)
    if not -len(blocks) <= block < len(blocks):
        raise ValueError(f"block {block} is out of range for {len(blocks)} blocks")
    name, a = blocks[block]
    return _token_maps(check_finite(name, a), num_prefix_tokens, token, grid_size)


def attention_grid(attention, *, num_prefix_tokens: int, token: Union[int, str] = "cls",
                   grid_size: Optional[Sequence[int]] = None) -> np.ndarray:
    """Every block's and head's attention of one token to the patches (timm's layer x head grid).

    Returns:
        (B, blocks, heads, gh, gw).
    Raises:
        ValueError naming the block for NaN/Inf attention, and naming both blocks when blocks differ in token
        count, batch size or heads.
    """
    blocks = named_blocks(attention)
    check_consistent(blocks)
    return np.stack([_token_maps(check_finite(name, a), num_prefix_tokens, token, grid_size) for name, a in blocks],
                    axis=1)


def _linear_weights(in_size: int, out_size: int) -> np.ndarray:
    # Half-pixel-centre linear interpolation (tf.image.resize "bilinear", cv2 INTER_LINEAR), edges clamped.
    x = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
    x = np.clip(x, 0, in_size - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = x - lo
    w = np.zeros((out_size, in_size))
    w[np.arange(out_size), lo] += 1.0 - frac
    w[np.arange(out_size), hi] += frac
    return w


def _nearest_weights(in_size: int, out_size: int) -> np.ndarray:
    src = np.minimum((np.arange(out_size) * in_size) // out_size, in_size - 1)
    w = np.zeros((out_size, in_size))
    w[np.arange(out_size), src] = 1.0
    return w


def resize_maps(maps, size: Sequence[int], method: str = "bilinear") -> np.ndarray:
    """Resize maps (..., h, w) to (..., H, W) with separable "bilinear" (half-pixel centres) or "nearest" weights.

    A patch map resized to (gh * p, gw * p) covers the model input exactly; any leading dimensions are kept.
    """
    m = check_finite("maps", to_numpy(maps, np.float64))
    if m.ndim < 2:
        raise ValueError(f"maps must be (..., h, w), got {m.shape}")
    height, width = (int(s) for s in size)
    weights = {"bilinear": _linear_weights, "nearest": _nearest_weights}
    if method not in weights:
        raise ValueError(f"method must be one of {sorted(weights)}, got {method!r}")
    wh = weights[method](m.shape[-2], height)
    ww = weights[method](m.shape[-1], width)
    return np.einsum("Hh,...hw,Ww->...HW", wh, m, ww)


def attention_mass_mask(maps, keep: float = 0.6) -> np.ndarray:
    """DINO's threshold: per map, the largest values that together hold at least `keep` of its total mass.

    Like facebookresearch/dino visualize_attention.py: sort ascending, normalise, keep where the cumulative sum
    exceeds 1 - keep.

    Args:
        maps: (..., h, w) non-negative attention maps.
        keep: fraction of the mass to keep, in (0, 1].
    Returns:
        bool (..., h, w).
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    m = check_finite("maps", to_numpy(maps, np.float64))
    if m.ndim < 2:
        raise ValueError(f"maps must be (..., h, w), got {m.shape}")
    flat = m.reshape(-1, m.shape[-2] * m.shape[-1])
    order = np.argsort(flat, axis=-1, kind="stable")
    values = np.take_along_axis(flat, order, axis=-1)
    total = values.sum(-1, keepdims=True)
    cumulative = np.cumsum(values / np.where(total > 0, total, 1.0), axis=-1)
    kept_sorted = cumulative > 1.0 - keep
    kept = np.empty_like(kept_sorted)
    np.put_along_axis(kept, order, kept_sorted, axis=-1)
    return kept.reshape(m.shape)


def normalize_map(maps, eps: float = 1e-12) -> np.ndarray:
    """Min-max scale each map (..., h, w) to [0, 1]; a constant map becomes 0. NaN/Inf maps are a ValueError."""
    m = check_finite("maps", to_numpy(maps, np.float64))
    lo = m.min(axis=(-2, -1), keepdims=True)
    span = m.max(axis=(-2, -1), keepdims=True) - lo
    return np.where(span > eps, (m - lo) / np.where(span > eps, span, 1.0), 0.0)


def colorize(heat, colormap: str = "inferno") -> np.ndarray:
    """A map (H, W) -> uint8 RGB (H, W, 3) with an OpenCV colormap after min-max scaling."""
    import cv2

    code = getattr(cv2, f"COLORMAP_{colormap.upper()}", None)
    if code is None:
        raise ValueError(f"unknown OpenCV colormap {colormap!r}")
    scaled = np.round(normalize_map(heat) * 255.0).astype(np.uint8)
    return cv2.applyColorMap(scaled, code)[..., ::-1]  # OpenCV gives BGR


def overlay(image, heat, alpha: float = 0.5, colormap: str = "inferno") -> np.ndarray:
    """Blend a colorised heatmap onto an image.

    Args:
        image: uint8 (H, W, 3) RGB.
        heat: (h, w) map; resized bilinearly to (H, W) when its size differs.
        alpha: weight of the heatmap.
    Returns:
        uint8 (H, W, 3).
    """
    img = to_numpy(image)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"image must be uint8 (H, W, 3), got {img.dtype} {img.shape}")
    heat = check_finite("heat", to_numpy(heat, np.float64))
    if heat.shape != img.shape[:2]:
        heat = resize_maps(heat, img.shape[:2])
    mixed = (1.0 - alpha) * img + alpha * colorize(heat, colormap)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def apply_mask(image, heat) -> np.ndarray:
    """The keras.io example's rollout picture: image x (map / max), map resized bilinearly to the image.

    Returns:
        uint8 (H, W, 3).
    """
    img = to_numpy(image)
    heat = check_finite("heat", to_numpy(heat, np.float64))
    if heat.shape != img.shape[:2]:
        heat = resize_maps(heat, img.shape[:2])
    peak = heat.max()
    scale = heat / peak if peak > 0 else np.zeros_like(heat)
    return np.clip(scale[..., None] * img, 0, 255).astype(np.uint8)


def display_images(images, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo `preprocess`'s normalisation: float (B, H, W, 3) -> uint8 (B, H, W, 3) for display."""
    x = to_numpy(images, np.float64) * np.asarray(std) + np.asarray(mean)
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def input_grid(image_shape: Sequence[int], patch_size: int) -> Tuple[int, int]:
    """Patch grid (H // p, W // p) of an input of shape (..., H, W, 3)."""
    h, w = image_shape[-3], image_shape[-2]
    return int(h) // patch_size, int(w) // patch_size
