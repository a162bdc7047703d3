"""What replaces removed pixels, and in which order pixels and patches leave.

Orders: `patch_order` ranks patches by the map; `pixel_order` reaches pixels by nearest (patch blocks) or bilinear
upsampling; `removal_ranks` inverts an order (the rank of each pixel or patch), which is all the batched forwards
need to paint any step (`vit_tf.analysis.faithfulness.forwards`).

Substrates: a constant per channel (`black_fill` is Chefer et al.'s black), RISE's blur (`gaussian_blur`, the kernel
of RISE's `gkern(11, 5)`) and ROAD's noisy linear imputation (`noisy_linear_impute`, Rong et al. 2022).
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np

FILLS = ("zero", "blur", "road")
UPSAMPLING = ("nearest", "bilinear")
ROAD_NOISE = 0.01


# -- orders ---------------------------------------------------------------------------------------------------------
def patch_order(maps, most_relevant_first: bool = True) -> np.ndarray:
    """(B, gh, gw) -> (B, N) patch indices, highest map value first (or lowest first), ties by patch index."""
    flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
    return np.argsort(-flat if most_relevant_first else flat, axis=-1, kind="stable")


def pixel_order(maps, patch_size: int, upsample: str = "nearest", most_relevant_first: bool = True) -> np.ndarray:
    """(B, gh, gw) -> (B, H * W) row-major pixel indices in removal order: "nearest" moves the pixels of a patch
    together (patches in map order, ties by patch index, pixels of a patch row-major); "bilinear" ranks the pixels
    of the bilinearly upsampled map (ties by pixel index)."""
    if upsample not in UPSAMPLING:
        raise ValueError(f"upsample must be one of {UPSAMPLING}, got {upsample!r}")
    m = np.asarray(maps, np.float64)
    b, gh, gw = m.shape
    p = patch_size
    w = gw * p
    if upsample == "bilinear":
        from ..heatmaps import resize_maps

        pixels = resize_maps(m, (gh * p, w)).reshape(b, -1)
        return np.argsort(-pixels if most_relevant_first else pixels, axis=-1, kind="stable")
    ranks = removal_ranks(patch_order(m, most_relevant_first))
    rows, cols = np.divmod(np.arange(gh * p * w), w)
    patch = (rows // p) * gw + cols // p
    within = (rows % p) * p + cols % p
    return np.argsort(ranks[:, patch].astype(np.int64) * (p * p) + within[None], axis=-1, kind="stable")


def removal_ranks(order) -> np.ndarray:
    """(B, N) removal order -> (B, N) int32 rank of each index (0 leaves first): the inverse permutation. The
    first c of `order` are exactly the indices with rank < c."""
    order = np.asarray(order)
    ranks = np.empty(order.shape, np.int32)
    np.put_along_axis(ranks, order, np.arange(order.shape[-1], dtype=np.int32)[None], axis=-1)
    return ranks


# -- substrates -----------------------------------------------------------------------------------------------------
def black_fill(recipe) -> np.ndarray:
    """The model-input value of a black pixel, -mean / std per channel: Chefer et al.'s removal (pixels set to 0
    before normalisation)."""
    return -np.asarray(recipe.mean, np.float64) / np.asarray(recipe.std, np.float64)


def rise_kernel(size: int = 11, sigma: float = 5.0) -> np.ndarray:
    """RISE's `gkern(size, sigma)`, (size, size) float64: `scipy.ndimage.gaussian_filter` (reflect mode) of a
    size x size impulse. Reflection folds the Gaussian's tails back into the window, so with sigma 5 on 11 x 11 the
    kernel is nearly flat (centre 0.0088, corner 0.0077) and sums to 1. It is the outer product of the 1-D filtered
    impulse, which `gaussian_blur` applies separably."""
    line = _rise_kernel_1d(size, sigma)
    return np.outer(line, line)


@functools.lru_cache(maxsize=8)
def _rise_kernel_1d(size: int, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    impulse = np.zeros(size)
    impulse[size // 2] = 1.0
    return gaussian_filter1d(impulse, sigma, mode="reflect")


def gaussian_blur(images, size: int = 11, sigma: float = 5.0) -> np.ndarray:
    """RISE's insertion substrate, (B, H, W, C) -> (B, H, W, C) float64: each channel correlated with
    `rise_kernel(size, sigma)` with zero padding of size // 2 on every side (RISE's
    `conv2d(x, gkern(klen, nsig), padding=klen // 2)`: the output has the input's size, pixels near the border
    lose the kernel weight that falls outside). RISE's kernel is float32; this one is float64."""
    x = np.asarray(images, np.float64)
    k = _rise_kernel_1d(int(size), float(sigma))
    pad = size // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (0, 0), (0, 0)))
    x = sum(k[i] * padded[:, i:i + x.shape[1]] for i in range(size))
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (0, 0)))
    return sum(k[i] * padded[:, :, i:i + x.shape[2]] for i in range(size))


_NEIGHBOURS = ((-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6), (0, 1, 1 / 6),
               (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12))


@functools.lru_cache(maxsize=8)
def _neighbour_table(h: int, w: int) -> np.ndarray:
    """(8, h * w) int64: each pixel's neighbour in `_NEIGHBOURS` order, -1 outside the image. The same for every
    image and step of a size, so it is built once."""
    r, c = np.divmod(np.arange(h * w), w)
    table = np.full((len(_NEIGHBOURS), h * w), -1, np.int64)
    for k, (dr, dc, _) in enumerate(_NEIGHBOURS):
        rr, cc = r + dr, c + dc
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        table[k, inside] = rr[inside] * w + cc[inside]
    table.flags.writeable = False
    return table


def noisy_linear_impute(image, missing, noise: float = ROAD_NOISE, rng=None) -> np.ndarray:
    """ROAD's imputation of one image (H, W, C): every missing pixel equals the weighted mean of its in-image
    neighbours (weights 1/6 direct, 1/12 diagonal, renormalised at borders), solved jointly as a sparse linear
    system (known neighbours on the right-hand side); then N(0, noise^2) is added to the imputed values.

    Args:
        missing: bool (H, W), True where the pixel is replaced; some pixel must stay known.
        rng: a `numpy.random.Generator` (default: seeded with 0).
    Returns:
        (H, W, C) float64.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import spsolve

    img = np.asarray(image, np.float64)
    h, w, c = img.shape
    miss = np.asarray(missing, bool).reshape(-1)
    idx = np.flatnonzero(miss)
    out = img.reshape(-1, c).copy()
    if idx.size == 0:
        return out.reshape(h, w, c)
    if idx.size == miss.size:
        raise ValueError("noisy linear imputation needs at least one known pixel")
    var = np.full(miss.size, -1)
    var[idx] = np.arange(idx.size)
    neighbours = _neighbour_table(h, w)[:, idx]  # (8, n)
    equations = np.arange(idx.size)
    rows, cols, vals = [], [], []
    diagonal = np.zeros(idx.size)
    rhs = np.zeros((idx.size, c))
    for k, (_, _, weight) in enumerate(_NEIGHBOURS):
        nb = neighbours[k]
        inside = nb >= 0
        unknown = inside & miss[nb]  # nb = -1 reads the last pixel; `inside` masks it
        known = inside & ~unknown
        diagonal += np.where(inside, weight, 0.0)
        rows.append(equations[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), -weight))
        rhs += np.where(known[:, None], weight * out[nb], 0.0)
    rows.append(equations)
    cols.append(equations)
    vals.append(diagonal)
    a = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(idx.size,) * 2)
    solved = spsolve(a.tocsc(), rhs).reshape(idx.size, c)
    rng = np.random.default_rng(0) if rng is None else rng
    out[idx] = solved + noise * rng.standard_normal(solved.shape)
    return out.reshape(h, w, c)


def substrate(images, fill) -> Optional[np.ndarray]:
    """The replacement image (B, H, W, 3) float64 of a constant or blur `fill` (None for "road", which depends on
    what is removed): "zero", a number or 3 numbers per channel in model-input space, or "blur"."""
    images = np.asarray(images, np.float64)
    if isinstance(fill, str):
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, a number or 3 numbers, got {fill!r}")
        if fill == "zero":
            return np.zeros_like(images)
        if fill == "blur":
            return gaussian_blur(images)
        return None
    value = np.asarray(fill, np.float64)
    if value.shape not in ((), (3,)):
        raise ValueError(f"a fill value must be a number or 3 numbers (per channel), got shape {value.shape}")
    return np.broadcast_to(value, images.shape).copy()
