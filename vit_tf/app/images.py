"""Image input: the bundled samples, decoding an upload into the model's input (the weights' centre crop, or the
whole image at its aspect ratio), the picture's display scale and the patch under a click."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from ..preprocessing import decode_image, normalize, resize_and_crop
from .common import CROP, MAX_PIXELS, PICTURE_SIDES, RESIZE_MODES, SAMPLES, InputError


def sample_image(name: str) -> np.ndarray:
    """A bundled scikit-learn photo (`SAMPLES`) as uint8 (H, W, 3)."""
    from sklearn.datasets import load_sample_image

    if name not in SAMPLES:
        raise InputError(f"unknown sample {name!r}; the samples are {', '.join(SAMPLES)}")
    return load_sample_image(name)


def aspect_size(width: int, height: int, input_size: Sequence[int], patch_size: int) -> Tuple[int, int]:
    """(W, H) multiples of `patch_size` with about the pixels of `input_size` (H, W) and the image's aspect ratio."""
    scale = math.sqrt(input_size[0] * input_size[1] / (width * height))
    return (max(1, round(width * scale / patch_size)) * patch_size,
            max(1, round(height * scale / patch_size)) * patch_size)


def model_input(image, recipe, patch_size: int, mode: str = CROP, *, name: str = "image",
                max_pixels: Optional[int] = MAX_PIXELS) -> Tuple[np.ndarray, np.ndarray]:
    """Image (path, bytes or uint8 array) -> (model input float32 (1, H, W, 3), uint8 (H, W, 3) it shows).

    CROP is the weights' eval recipe (`vit_tf.analysis.prepare`); ASPECT resizes the whole image, with the recipe's
    interpolation, to the multiples of the patch size nearest its aspect ratio at the recipe's pixel count.
    """
    if mode not in RESIZE_MODES:
        raise InputError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    from PIL import Image

    decoded = decode_image(image, recipe if mode == CROP else None, max_pixels=max_pixels, name=name)
    w, h = decoded.size
    if w < patch_size or h < patch_size:
        raise InputError(f"{name} is {w}x{h} pixels, smaller than one {patch_size}x{patch_size} patch")
    if mode == CROP:
        shown = np.asarray(resize_and_crop(decoded, recipe))
    else:
        size = aspect_size(w, h, recipe.input_size, patch_size)
        resample = getattr(Image.Resampling, recipe.interpolation.upper())
        shown = np.asarray(decoded.image.resize(size, resample, box=decoded.box))
    return normalize(shown, recipe)[None].astype(np.float32), shown


def picture_scale(shape: Sequence[int]) -> float:
    """Scale of the pictures of an (H, W) input: small inputs are enlarged by a whole factor, large ones reduced,
    so that the longer side falls in `PICTURE_SIDES`."""
    longer = max(shape[:2])
    low, high = PICTURE_SIDES
    if longer < low:
        return float(math.ceil(low / longer))
    return min(1.0, high / longer)


def scale_picture(image: np.ndarray, scale: float) -> np.ndarray:
    """uint8 (H, W, 3) enlarged by a whole `scale` with nearest pixels (patches stay sharp), or reduced by area."""
    import cv2

    if scale == 1.0:
        return np.ascontiguousarray(image)
    if scale > 1.0:
        k = int(scale)
        return np.ascontiguousarray(np.repeat(np.repeat(image, k, axis=0), k, axis=1))
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def patch_at(x: float, y: float, patch_pixels: float, grid_size: Sequence[int]) -> Tuple[int, int]:
    """The (row, col) of the patch under pixel (x, y) of a picture with `patch_pixels` pixels per patch side."""
    gh, gw = grid_size
    return (min(max(int(y // patch_pixels), 0), gh - 1), min(max(int(x // patch_pixels), 0), gw - 1))


__all__ = ["aspect_size", "model_input", "patch_at", "picture_scale", "sample_image", "scale_picture"]
