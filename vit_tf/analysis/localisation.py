"""Localisation metrics: does an explanation map point at the ground-truth evidence (a mask)?

- pointing game: Zhang et al. 2018, "Top-down Neural Attention by Excitation Backprop" (IJCV), with a tolerance of
  15 pixels as in their evaluation;
- relevance mass and relevance rank accuracy: Arras, Osman & Samek 2022, "CLEVR-XAI: A benchmark dataset for the
  ground truth evaluation of neural network explanations" (Information Fusion). Relevance mass accuracy is also
  Score-CAM's energy-based pointing game (Wang et al. 2020);
- mask AUROC: the area under the ROC curve of pixel relevance as a detector of mask pixels (the Mann-Whitney U
  statistic, ties counted one half, as `sklearn.metrics.roc_auc_score` computes it).

Every function takes maps (B, h, w) and masks (B, H, W) bool and returns one value per image, (B,). Maps of another
size than the masks are first resized to the mask's size with bilinear interpolation (half-pixel centres;
`vit_tf.analysis.heatmaps.resize_maps`), so a patch-grid map (B, gh, gw) is compared with pixel masks directly.
Undefined cases are NaN for the float metrics (an empty mask; also a mask covering the whole image for the AUROC, and
a map with no positive relevance for the mass accuracy) and False for the pointing game (an empty mask).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from ._arrays import to_numpy
from .heatmaps import resize_maps


def _maps_and_masks(maps, masks) -> Tuple[np.ndarray, np.ndarray]:
    """float64 maps (B, H, W) at the masks' size, bool masks (B, H, W); errors name the argument."""
    m = to_numpy(maps)
    k = to_numpy(masks)
    if m.ndim != 3:
        raise ValueError(f"maps must be (B, h, w), got shape {m.shape}")
    if k.ndim != 3:
        raise ValueError(f"masks must be (B, H, W), got shape {k.shape}")
    if m.shape[0] != k.shape[0]:
        raise ValueError(f"maps and masks differ in batch size: {m.shape[0]} maps, {k.shape[0]} masks")
    if m.dtype.kind not in "biuf":
        raise ValueError(f"maps must be real numbers, got dtype {m.dtype}")
    if k.dtype != bool:
        if k.dtype.kind not in "biu" or not np.isin(k, (0, 1)).all():
            raise ValueError(f"masks must be booleans (or 0/1 integers), got dtype {k.dtype}")
        k = k.astype(bool)
    if 0 in m.shape[1:] or 0 in k.shape[1:]:
        raise ValueError(f"maps {m.shape} and masks {k.shape} must have at least one pixel")
    m = m.astype(np.float64)
    if not np.isfinite(m).all():
        bad = [int(i) for i in np.flatnonzero(~np.isfinite(m).all(axis=(1, 2)))]
        raise ValueError(f"maps {bad[:8]} contain NaN or Inf")
    if m.shape[1:] != k.shape[1:]:
        m = resize_maps(m, k.shape[1:], method="bilinear")
    return m, k


def pointing_game(maps, masks, tolerance: float = 15) -> np.ndarray:
    """Zhang et al.'s pointing game: a hit when the map's maximum lies within `tolerance` pixels of the mask.

    Args:
        maps: (B, h, w) relevance maps (resized bilinearly to the masks' size when h, w differ).
        masks: (B, H, W) bool, the evidence.
        tolerance: pixels; the mask is dilated by a disc of this radius (Euclidean distance between pixel centres
            <= tolerance). 0 means the mask itself.
    Returns:
        (B,) bool. Ties: when several pixels share the maximum, the image is a hit only if every one of them lies
        in the dilated mask, so a constant map (all zeros, say) hits only when the dilated mask covers the whole
        image. An empty mask is a miss.
    """
    from scipy.ndimage import distance_transform_edt

    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number of pixels >= 0, got {tolerance}")
    m, k = _maps_and_masks(maps, masks)
    hits = np.zeros(len(m), bool)
    for i in range(len(m)):
        if not k[i].any():
            continue
        near = k[i] if tolerance == 0 else distance_transform_edt(~k[i]) <= tolerance
        hits[i] = bool(near[m[i] == m[i].max()].all())
    return hits


def relevance_mass_accuracy(maps, masks) -> np.ndarray:
    """Arras et al.'s relevance mass accuracy: the share of the positive relevance that lies inside the mask.

    Args:
        maps: (B, h, w) relevance maps; clipped at 0, no other normalisation.
        masks: (B, H, W) bool.
    Returns:
        (B,) float64 in [0, 1]: sum(max(map, 0) inside the mask) / sum(max(map, 0)). NaN when the map has no
        positive relevance (e.g. all zeros) or the mask is empty.
    """
    m, k = _maps_and_masks(maps, masks)
    positive = np.clip(m, 0.0, None)
    total = positive.sum(axis=(1, 2))
    inside = (positive * k).sum(axis=(1, 2))
    defined = (total > 0) & k.any(axis=(1, 2))
    return np.where(defined, inside / np.where(total > 0, total, 1.0), np.nan)


def relevance_rank_accuracy(maps, masks) -> np.ndarray:
    """Arras et al.'s relevance rank accuracy: with K the mask's pixel count, the share of the K highest-relevance
    pixels that lie inside the mask.

    Args:
        maps: (B, h, w) relevance maps.
        masks: (B, H, W) bool.
    Returns:
        (B,) float64 in [0, 1]. Ties at the K-th highest value are shared out in proportion: the pixels above it all
        count, and the remaining places go to the tied pixels at the rate the mask holds among them (the expected
        score over random tie-breaking), so a constant map scores K / (H * W), chance. NaN for an empty mask.
    """
    m, k = _maps_and_masks(maps, masks)
    out = np.full(len(m), np.nan)
    for i in range(len(m)):
        values, inside = m[i].ravel(), k[i].ravel()
        n_in = int(inside.sum())
        if n_in == 0:
            continue
        threshold = np.partition(values, values.size - n_in)[values.size - n_in]  # the K-th highest value
        above, tied = values > threshold, values == threshold
        places = n_in - int(above.sum())
        hits = np.count_nonzero(above & inside) + places * np.count_nonzero(tied & inside) / np.count_nonzero(tied)
        out[i] = hits / n_in
    return out


def mask_auroc(maps, masks) -> np.ndarray:
    """Area under the ROC curve of the pixel relevance as a score for "this pixel is in the mask".

    Computed as the Mann-Whitney U statistic over average ranks: the probability that a random mask pixel has
    more relevance than a random pixel outside it, ties counted one half (as `sklearn.metrics.roc_auc_score`).

    Args:
        maps: (B, h, w) relevance maps.
        masks: (B, H, W) bool.
    Returns:
        (B,) float64 in [0, 1]: 1 when every mask pixel outranks every other pixel, 0.5 for a constant map. NaN
        when the mask is empty or covers the whole image (one class only).
    """
    from scipy.stats import rankdata

    m, k = _maps_and_masks(maps, masks)
    values, inside = m.reshape(len(m), -1), k.reshape(len(k), -1)
    n_pos = inside.sum(axis=1).astype(np.float64)
    n_neg = inside.shape[1] - n_pos
    ranks = rankdata(values, method="average", axis=1)
    u = (ranks * inside).sum(axis=1) - n_pos * (n_pos + 1) / 2.0
    defined = (n_pos > 0) & (n_neg > 0)
    return np.where(defined, u / np.where(defined, n_pos * n_neg, 1.0), np.nan)
