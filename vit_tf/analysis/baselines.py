"""Baseline maps that know nothing of the model, to set beside the explanation methods in a benchmark:

- `random_map`: uniform noise per patch, seeded: the floor every metric should beat;
- `sobel_map`: the Sobel gradient magnitude of the image, averaged over each patch: an edge detector, the point of
  comparison of Adebayo et al. 2018 ("Sanity Checks for Saliency Maps"), who showed that some saliency maps look
  like it and do not depend on the model.

Both take the model input (B, H, W, 3) and return (B, gh, gw) float64 maps at patch resolution, as
`vit_tf.explain` does, so every metric treats them like a method's maps. `map_function` wraps either as the
`f(model, images, targets)` function `vit_tf.analysis.sanity_checks` accepts.
"""

from __future__ import annotations

import numpy as np

from ._arrays import check_finite, to_numpy

BASELINES = ("random", "sobel")


def _images(images, patch_size: int) -> np.ndarray:
    x = check_finite("images", to_numpy(images, np.float64))
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got shape {x.shape}")
    p = int(patch_size)
    if p < 1 or x.shape[1] % p or x.shape[2] % p:
        raise ValueError(f"image size {x.shape[1]}x{x.shape[2]} is not a multiple of the patch size {patch_size}")
    return x


def random_map(images, patch_size: int, seed: int = 0) -> np.ndarray:
    """Uniform [0, 1) noise per patch from `numpy.random.default_rng(seed)`: (B, gh, gw) float64, the same for the
    same batch shape and seed (image i's map depends on its position in the batch, not on its pixels)."""
    x = _images(images, patch_size)
    p = int(patch_size)
    return np.random.default_rng(int(seed)).random((x.shape[0], x.shape[1] // p, x.shape[2] // p))


def sobel_map(images, patch_size: int) -> np.ndarray:
    """Sobel edge magnitude pooled to patches.

    Per pixel: sqrt(sum over channels of (Sx * x)^2 + (Sy * x)^2), the 3 x 3 Sobel derivatives of each channel
    (`scipy.ndimage.sobel`, borders reflected, so the image's own border is no edge); per patch: the mean over its
    p x p pixels.

    Args:
        images: (B, H, W, 3), any scale (the model input; the magnitude scales with it, ranks do not).
        patch_size: p; H and W multiples of it.
    Returns:
        (B, H / p, W / p) float64, 0 where a patch and its 1-pixel surround are flat.
    """
    from scipy.ndimage import sobel

    x = _images(images, patch_size)
    p = int(patch_size)
    gy = sobel(x, axis=1, mode="reflect")
    gx = sobel(x, axis=2, mode="reflect")
    magnitude = np.sqrt(np.sum(gx * gx + gy * gy, axis=-1))  # (B, H, W)
    b, h, w = magnitude.shape
    return magnitude.reshape(b, h // p, p, w // p, p).mean(axis=(2, 4))


def map_function(name: str, seed: int = 0):
    """The baseline `name` ("random" or "sobel") as `f(model, images, targets) -> (B, gh, gw)`, the form
    `vit_tf.analysis.sanity_checks` takes (it reads only the model's patch size)."""
    if name == "random":
        def random(model, images, targets):
            return random_map(images, model.config.patch_size, seed)
        return random
    if name == "sobel":
        def sobel(model, images, targets):
            return sobel_map(images, model.config.patch_size)
        return sobel
    raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")


__all__ = ["BASELINES", "map_function", "random_map", "sobel_map"]
