"""Mean attention distance (Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words", Fig. 7 right and App. D.7;
Raghu et al. 2021, "Do Vision Transformers See Like Convolutional Neural Networks?").

For every query patch, the pixel distance to every key patch (patch_size x Euclidean grid distance) weighted by the
attention, then averaged over query patches. Prefix tokens (class, distillation) are removed explicitly. The keras.io
example "Investigating Vision Transformer representations" computes the same with a double Python loop over patches;
here one distance matrix per grid is cached and contracted with the attention by einsum.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import numpy as np

from ._arrays import (check_consistent, check_finite, check_prefix, is_single_block, named_blocks, resolve_grid,
                      to_numpy)


@functools.lru_cache(maxsize=32)
def _distance_matrix(gh: int, gw: int, patch_size: float) -> np.ndarray:
    rows, cols = np.divmod(np.arange(gh * gw), gw)  # row-major patch order
    dy = rows[:, None] - rows[None, :]
    dx = cols[:, None] - cols[None, :]
    d = patch_size * np.sqrt(dy * dy + dx * dx, dtype=np.float64)
    d.setflags(write=False)  # shared by every caller through the cache
    return d


@functools.lru_cache(maxsize=32)
def _padded(grid, patch_size: float, num_prefix_tokens: int, dtype: str) -> np.ndarray:
    n = grid[0] * grid[1]
    d = np.zeros((num_prefix_tokens + n,) * 2, dtype)
    d[num_prefix_tokens:, num_prefix_tokens:] = _distance_matrix(grid[0], grid[1], patch_size)
    d.setflags(write=False)
    return d


def patch_distance_matrix(grid_size: Sequence[int], patch_size: float = 1.0) -> np.ndarray:
    """Pixel distance between every pair of patches of a (gh, gw) grid in row-major order: (gh*gw, gh*gw) float64.

    Cached per (grid, patch size); the returned array is read-only.
    """
    gh, gw = (int(s) for s in grid_size)
    return _distance_matrix(gh, gw, float(patch_size))


def mean_attention_distance(attention, *, patch_size: float, num_prefix_tokens: int,
                            grid_size: Optional[Sequence[int]] = None, renormalize: bool = False) -> np.ndarray:
    """Mean attention distance in pixels per image, block and head.

    Args:
        attention: one block (B, heads, T, T), or several blocks (our models' dict, a list of blocks, or an array
            (B, blocks, heads, T, T)). NumPy or any framework's tensors.
        patch_size: patch side in pixels (distances are patch_size x grid distance).
        num_prefix_tokens: leading non-patch tokens to remove (1 for class token, 2 for distilled DeiT).
        grid_size: (gh, gw) of the patch grid; may be omitted for square grids.
        renormalize: rescale each query's attention over the patches to sum to 1 (otherwise the attention that
            went to prefix tokens counts as distance 0, as in the keras.io example).
    Returns:
        float64 (B, heads) for one block, (B, blocks, heads) for several.
    Raises:
        ValueError naming the block for NaN/Inf attention, and naming both blocks when blocks differ in token count,
        batch size or heads.
    """
    if not patch_size > 0:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    single = is_single_block(attention)
    blocks = named_blocks(attention)
    check_consistent(blocks)
    per_block = []
    for name, a in blocks:
        check_finite(name, a)
        t = a.shape[-1]
        n = check_prefix(t, num_prefix_tokens)
        grid = resolve_grid(n, grid_size)
        dtype = np.result_type(a.dtype, np.float32)  # float32 attention stays float32: no copy of (B, H, T, T)
        # Distances padded with zero rows/columns for the prefix tokens, so the attention is used without slicing.
        per_query = np.einsum("bhqk,qk->bhq", a, _padded(grid, float(patch_size), num_prefix_tokens, dtype.str))
        per_query = per_query[..., num_prefix_tokens:].astype(np.float64)  # (B, heads, patches)
        if renormalize:
            mass = a[..., num_prefix_tokens:, num_prefix_tokens:].sum(-1, dtype=np.float64)
            per_query = per_query / np.where(mass > 0, mass, 1.0)
        per_block.append(per_query.sum(-1) / n)
    return per_block[0] if single else np.stack(per_block, axis=1)


class RunningMoments:
    """Streaming mean and standard deviation over a leading batch axis, in float64 with constant memory.

    Batches are merged with Chan et al.'s parallel update, so the result does not depend on how the data are split.

    Example:
        >>> stats = RunningMoments()
        >>> for batch in ([[1.0], [2.0]], [[3.0]]):
        ...     _ = stats.update(np.array(batch))
        >>> stats.count, stats.mean.tolist(), round(float(stats.std[0]), 4)
        (3, [2.0], 0.8165)
    """

    def __init__(self):
        self.count = 0
        self._mean: Optional[np.ndarray] = None
        self._m2: Optional[np.ndarray] = None

    def update(self, batch) -> "RunningMoments":
        """Add samples `batch` (B, ...); returns self."""
        x = to_numpy(batch, np.float64)
        n = x.shape[0]
        if n == 0:
            return self
        mean = x.mean(axis=0)
        m2 = ((x - mean) ** 2).sum(axis=0)
        if self._mean is None:
            self.count, self._mean, self._m2 = n, mean, m2
            return self
        if mean.shape != self._mean.shape:
            raise ValueError(f"sample shape {mean.shape} differs from earlier samples {self._mean.shape}")
        total = self.count + n
        delta = mean - self._mean
        self._mean = self._mean + delta * (n / total)
        self._m2 = self._m2 + m2 + delta ** 2 * (self.count * n / total)
        self.count = total
        return self

    @property
    def mean(self) -> np.ndarray:
        if self._mean is None:
            raise ValueError("no samples yet")
        return self._mean

    @property
    def var(self) -> np.ndarray:
        """Population variance (ddof=0)."""
        if self._m2 is None:
            raise ValueError("no samples yet")
        return self._m2 / self.count

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0)."""
        return np.sqrt(self.var)


def accumulate_mean_distance(run, batches, *, patch_size: Optional[float] = None,
                             num_prefix_tokens: Optional[int] = None, renormalize: bool = False,
                             stats: Optional[RunningMoments] = None) -> RunningMoments:
    """Dataset-level mean attention distance: streams batches through `run` and keeps only running moments.

    Args:
        run: an attention source (see `vit_tf.analysis.attention_source`) or any callable images ->
            (outputs, attention); then pass patch_size and num_prefix_tokens.
        batches: iterable of preprocessed image batches (B, H, W, 3).
        patch_size, num_prefix_tokens: default to the source's own.
        renormalize: see `mean_attention_distance`.
        stats: moments to continue from.
    Returns:
        `RunningMoments` over images of the (blocks, heads) distances.
    """
    stats = stats if stats is not None else RunningMoments()
    for images in batches:
        _, attention = run(images)
        p = int(patch_size if patch_size is not None else run.patch_size)  # a SavedModel knows it after a call
        prefix = num_prefix_tokens if num_prefix_tokens is not None else run.num_prefix_tokens
        h, w = np.shape(images)[1:3]
        stats.update(mean_attention_distance(attention, patch_size=p, num_prefix_tokens=prefix,
                                             grid_size=(int(h) // p, int(w) // p), renormalize=renormalize))
    return stats
