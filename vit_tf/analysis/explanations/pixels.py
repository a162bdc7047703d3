"""Pixel-gradient methods: integrated gradients (Sundararajan et al. 2017) and SmoothGrad (Smilkov et al. 2017) as
per-pixel attributions. Their steps are batched in the compiled graph (`passes.pixel_values`): all (step, image)
rows of a batch, `internal_batch_size` rows per forward+backward, as captum's `internal_batch_size`.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .._arrays import check_finite
from ..engine import logits_function
from . import passes
from .inputs import check_classifier as _check_classifier, check_images, check_targets, resolve_targets

INTERNAL_BATCH_SIZE = 16  # rows per forward+backward: ViT-B/16 at 224 keeps ~0.2 GB of activations per row


def check_baseline(baseline, shape) -> np.ndarray:
    """A baseline for images of `shape` (B, H, W, 3): a number, per-channel values, an image (H, W, 3) or one per
    image (B, H, W, 3) -> float32 array that broadcasts to the images, with a leading batch axis."""
    base = np.asarray(baseline, np.float32)
    try:
        np.broadcast_to(base, shape)
    except ValueError:
        raise ValueError(f"baseline of shape {base.shape} does not broadcast to the images {tuple(shape)}") from None
    return base.reshape((1,) * (4 - base.ndim) + base.shape) if base.ndim < 4 else base


def smoothgrad_noise(samples: int, shape, seed: int = 0) -> np.ndarray:
    """(samples, H, W, 3) float32 standard normal noise, pattern n drawn n-th from `numpy.random.default_rng(seed)`
    and shared by every image (scaled by each image's sigma), so an image's result does not depend on its batch."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.standard_normal(tuple(shape)) for _ in range(samples)]).astype(np.float32)


def pixel_options(method: str, steps: int = 50, samples: int = 50, noise_level: float = 0.15,
                  times_input: bool = True, internal_batch_size: int = INTERNAL_BATCH_SIZE) -> passes.PixelOptions:
    """Checked `passes.PixelOptions`."""
    for name, value in (("steps", steps), ("samples", samples), ("internal_batch_size", internal_batch_size)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if not noise_level >= 0:
        raise ValueError(f"noise_level must be >= 0, got {noise_level}")
    return passes.PixelOptions(method=method, steps=int(steps) if method == "integrated_gradients" else 50,
                               samples=int(samples) if method == "smoothgrad" else 50,
                               noise_level=float(noise_level) if method == "smoothgrad" else 0.15,
                               times_input=bool(times_input), rows=int(internal_batch_size))


def _run(model, images, target, options: passes.PixelOptions, baseline, noise) -> Tuple[np.ndarray, np.ndarray]:
    import tensorflow as tf

    _check_classifier(model)
    x, _ = check_images(model, images)
    t = check_targets(target, int(x.shape[0]), model.config.num_classes)
    if np.any(t < 0):
        t = resolve_targets(logits_function(model)(x).numpy(), target)
    values = passes.run_pixel_values(model, x, tf.constant(t), tf.constant(baseline), tf.constant(noise), options)
    return check_finite(options.method, values.numpy()), t


def integrated_gradients(model, images, target=None, *, steps: int = 50, baseline=0.0,
                         internal_batch_size: int = INTERNAL_BATCH_SIZE) -> Tuple[np.ndarray, np.ndarray]:
    """Integrated gradients per pixel: (x - x') * (1/m) sum_{k=1..m} dy/dx at x' + (k/m)(x - x') (right Riemann
    sum), so its total approaches y(x) - y(x') as m grows (completeness).

    Args:
        model: a `VisionTransformer` with a classifier. images: (B, H, W, 3) preprocessed.
        target: class index, one per image, or None for each image's top-1 class.
        baseline: x' in model-input space: a number (0 = the normalisation mean colour), per-channel values, an
            image (H, W, 3) or one per image (B, H, W, 3).
        internal_batch_size: (step, image) rows per forward+backward call.
    Returns:
        (attributions (B, H, W, 3) float64, targets (B,) int64).
    """
    options = pixel_options("integrated_gradients", steps=steps, internal_batch_size=internal_batch_size)
    shape = np.shape(images)
    noise = np.zeros((1, 1, 1, 3), np.float32)
    return _run(model, images, target, options, check_baseline(baseline, shape), noise)


def smoothgrad(model, images, target=None, *, samples: int = 50, noise_level: float = 0.15, seed: int = 0,
               times_input: bool = True, internal_batch_size: int = INTERNAL_BATCH_SIZE) -> Tuple[np.ndarray,
                                                                                                 np.ndarray]:
    """SmoothGrad: the mean gradient over `samples` noisy copies x + N(0, sigma^2), sigma = noise_level * (max(x) -
    min(x)) per image; with `times_input`, multiplied by x. Noise: `smoothgrad_noise(samples, (H, W, 3), seed)`.

    Returns:
        (per-pixel values (B, H, W, 3) float64, signed; targets (B,) int64).
    """
    options = pixel_options("smoothgrad", samples=samples, noise_level=noise_level, times_input=times_input,
                            internal_batch_size=internal_batch_size)
    noise = smoothgrad_noise(samples, np.shape(images)[1:], seed)
    return _run(model, images, target, options, np.zeros((1, 1, 1, 1), np.float32), noise)
