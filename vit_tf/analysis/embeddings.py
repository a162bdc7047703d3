"""What the embeddings learned (Dosovitskiy et al. 2020, Fig. 7 left and centre; keras.io example Methods IV, V).

Patch-projection filters: the first N filters of the patch embedding, min-max scaled (the example), and their
principal components (the paper's "first 28 principal components"). Position embeddings: the example's dot-product
matrix and the paper's cosine similarity of each position to every other, laid out on the grid.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ._arrays import check_prefix, resolve_grid, to_numpy


def _kernel(kernel) -> np.ndarray:
    k = to_numpy(kernel, np.float64)
    if k.ndim != 4 or k.shape[2] != 3:
        raise ValueError(f"patch kernel must be Keras layout (p, p, 3, D), got {k.shape}; a PyTorch weight "
                         f"(D, 3, p, p) is kernel.transpose(2, 3, 1, 0)")
    return k


def _minmax_per_filter(x: np.ndarray) -> np.ndarray:
    # x (n, ...): each filter to [0, 1] on its own, as sklearn's MinMaxScaler does per column in the example.
    flat = x.reshape(x.shape[0], -1)
    lo, hi = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    return ((flat - lo) / span).reshape(x.shape)


def patch_filters(kernel, num_filters: Optional[int] = None) -> np.ndarray:
    """The patch projection's filters as images.

    Args:
        kernel: (p, p, 3, D) Keras Conv2D kernel (`model.get_layer("patch_embed").proj.kernel`).
        num_filters: how many of the D filters, from the first (default all).
    Returns:
        float64 (n, p, p, 3), each filter min-max scaled to [0, 1].
    """
    k = _kernel(kernel)
    n = k.shape[-1] if num_filters is None else min(int(num_filters), k.shape[-1])
    return _minmax_per_filter(np.moveaxis(k[..., :n], -1, 0))


def patch_filter_pca(kernel, num_components: int = 28) -> Tuple[np.ndarray, np.ndarray]:
    """Principal components of the D filters, each a (p, p, 3) image (ViT paper Fig. 7 left).

    The filters are flattened to D vectors of p*p*3 values and centred; the components are the leading right
    singular vectors.

    Returns:
        (components float64 (n, p, p, 3) each min-max scaled to [0, 1], explained variance ratio (n,)).
    """
    k = _kernel(kernel)
    p1, p2, c, d = k.shape
    x = k.reshape(-1, d).T  # (D, p*p*3): one row per filter
    x = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    n = min(int(num_components), vt.shape[0])
    var = s ** 2
    ratio = var[:n] / var.sum() if var.sum() > 0 else np.zeros(n)
    return _minmax_per_filter(vt[:n].reshape(n, p1, p2, c)), ratio


def _patch_positions(pos_embed, num_prefix_tokens: int) -> np.ndarray:
    e = to_numpy(pos_embed, np.float64)
    if e.ndim == 3:
        if e.shape[0] != 1:
            raise ValueError(f"position embedding must be (1, T, D) or (T, D), got {e.shape}")
        e = e[0]
    if e.ndim != 2:
        raise ValueError(f"position embedding must be (1, T, D) or (T, D), got {e.shape}")
    check_prefix(e.shape[0], num_prefix_tokens)
    return e[num_prefix_tokens:]


def position_embedding_similarity(pos_embed, *, num_prefix_tokens: int) -> np.ndarray:
    """Dot products between the patch positions' embeddings (the keras.io example).

    Args:
        pos_embed: (1, T, D) or (T, D), prefix tokens first (`model.pos_embed`).
        num_prefix_tokens: leading non-patch positions to drop (1, or 2 for distilled DeiT).
    Returns:
        float64 (N, N), N = number of patch positions in row-major order.
    """
    e = _patch_positions(pos_embed, num_prefix_tokens)
    return e @ e.T


def position_embedding_cosine(pos_embed, *, num_prefix_tokens: int,
                              grid_size: Optional[Sequence[int]] = None) -> np.ndarray:
    """Cosine similarity of each patch position's embedding with every other (ViT paper Fig. 7 centre).

    Returns:
        float64 (gh, gw, gh, gw): [i, j] is the (gh, gw) similarity map of position (i, j).
    """
    e = _patch_positions(pos_embed, num_prefix_tokens)
    gh, gw = resolve_grid(e.shape[0], grid_size)
    unit = e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)
    return (unit @ unit.T).reshape(gh, gw, gh, gw)
