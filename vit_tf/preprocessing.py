"""Eval preprocessing of each weight tag (timm's eval transform: resize shorter side, centre crop, normalise)."""

from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image

from .registry import Recipe, default_recipe, resolve

_PIL_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
                "lanczos": Image.LANCZOS}


def get_recipe(model_or_name) -> Recipe:
    """The eval recipe of a model (`model.recipe`: models from `create_model`, `vit_tf.load` and SavedModels that
    carry one), of a registry name (a weight name's recipe; an architecture's default), or a `Recipe` itself."""
    if isinstance(model_or_name, Recipe):
        return model_or_name
    if isinstance(model_or_name, str):
        arch, entry = resolve(model_or_name)
        return entry.recipe if entry is not None else default_recipe(arch)
    recipe = getattr(model_or_name, "recipe", None)
    if recipe is None:
        raise ValueError(f"this {type(model_or_name).__name__} carries no eval recipe; pass a registry name or a "
                         f"vit_tf.Recipe")
    return recipe


def to_rgb_image(image) -> Image.Image:
    """A path, PIL image or uint8 array (H, W), (H, W, 1|3|4) -> RGB PIL image. Alpha is composited on white."""
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"image not found: {path}")
        try:
            with Image.open(path) as im:
                im.load()
                image = im.copy()
        except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for non-images and truncated files
            raise ValueError(f"{path} is not a readable image: {e}") from e
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8 (H, W[, C]), got {image.dtype}; scale floats yourself")
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
            raise ValueError(f"image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
        image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
        raise TypeError(f"expected a path, PIL image or uint8 array, got {type(image).__name__}")
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def resize_and_crop(image: Image.Image, recipe: Recipe) -> Image.Image:
    """Shorter side to floor(size / crop_pct) (timm), then a centre crop of `recipe.input_size`."""
    th, tw = recipe.input_size
    if th == tw:
        scale = math.floor(th / recipe.crop_pct)
        w, h = image.size
        # torchvision.Resize(int): the shorter side becomes `scale`, the longer one is truncated proportionally.
        if w <= h:
            size = (scale, int(scale * h / w))
        else:
            size = (int(scale * w / h), scale)
    else:
        size = (math.floor(tw / recipe.crop_pct), math.floor(th / recipe.crop_pct))
    if size != image.size:
        image = image.resize(size, _PIL_FILTERS[recipe.interpolation])
    w, h = image.size
    if w < tw or h < th:
        raise ValueError(f"image resized to {w}x{h} is smaller than the crop {tw}x{th}")
    top, left = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return image.crop((left, top, left + tw, top + th))


def normalize(pixels: np.ndarray, recipe: Recipe) -> np.ndarray:
    """uint8 (..., 3) -> float32 ((x / 255) - mean) / std."""
    x = pixels.astype(np.float32) / 255.0
    return (x - np.asarray(recipe.mean, np.float32)) / np.asarray(recipe.std, np.float32)


def preprocess(image, model_name) -> np.ndarray:
    """Image(s) -> model input with the weights' own eval recipe.

    Args:
        image: a path, PIL image or uint8 array, or a list of them. Grayscale, palette and RGBA become RGB.
        model_name: registry name, model from `create_model`, or a `Recipe`.
    Returns:
        float32 array (B, H, W, 3), B = 1 for a single image.
    """
    recipe = get_recipe(model_name)
    images = image if isinstance(image, (list, tuple)) else [image]
    batch = [normalize(np.asarray(resize_and_crop(to_rgb_image(im), recipe)), recipe) for im in images]
    return np.stack(batch).astype(np.float32)
