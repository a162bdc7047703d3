"""The photos the composites are made of: every one ships with an installed package (scikit-image's `skimage.data`,
scikit-learn's sample images, matplotlib's sample data), so nothing is downloaded and no image is checked in.

Objects are hand-chosen tight boxes in their source photo; backgrounds are photos that show none of the objects,
each given to exactly one split.
"""

from __future__ import annotations

import functools
from typing import Dict, Tuple

import numpy as np

# Object name -> (source photo, box (left, top, right, bottom) in the photo's pixels, right/bottom exclusive).
# Sources: "skimage:<skimage.data function>", "sklearn:<load_sample_image file>", "matplotlib:<sample_data file>".
OBJECTS: Dict[str, Tuple[str, Tuple[int, int, int, int]]] = {
    "astronaut": ("skimage:astronaut", (110, 10, 350, 300)),  # Eileen Collins, head and suit (flag and shuttle out)
    "cat": ("skimage:chelsea", (40, 10, 390, 290)),  # Chelsea's face
    "coffee": ("skimage:coffee", (75, 15, 480, 390)),  # cup, saucer and spoon
    "rocket": ("skimage:rocket", (270, 120, 385, 420)),  # the rocket on its pad (towers out)
    "motorcycle": ("skimage:stereo_motorcycle", (90, 95, 690, 450)),  # the left view
    "flower": ("sklearn:flower.jpg", (165, 85, 450, 360)),  # the dahlia in focus
    "grace_hopper": ("matplotlib:grace_hopper.jpg", (150, 25, 375, 340)),  # face and cap
    "cameraman": ("skimage:camera", (95, 60, 335, 310)),  # head, hands and camera
    "coins": ("skimage:coins", (10, 90, 300, 230)),  # two rows of coins
}

# Split -> background photos. No photo is in two splits, and none shows an object.
BACKGROUNDS: Dict[str, Tuple[str, ...]] = {
    "train": ("skimage:grass", "skimage:brick", "skimage:hubble_deep_field", "sklearn:china.jpg", "skimage:text"),
    "val": ("skimage:gravel", "skimage:immunohistochemistry", "skimage:page"),
    "test": ("skimage:moon", "skimage:retina", "skimage:cell"),
}


def _skimage(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError as e:
        raise ImportError(f"the composites' photos come with scikit-image ({e}): pip install scikit-image "
                          f"(or pip install 'vit_tf[test]')") from None
    image = getattr(data, name)()
    return image[0] if isinstance(image, tuple) else image  # stereo_motorcycle: (left, right, disparity)


def _sklearn(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image(name)


def _matplotlib(name: str) -> np.ndarray:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data(name) as f:
        return np.asarray(Image.open(f).convert("RGB"))


_LOADERS = {"skimage": _skimage, "sklearn": _sklearn, "matplotlib": _matplotlib}


@functools.lru_cache(maxsize=None)
def load_photo(source: str) -> np.ndarray:
    """A photo named as in `OBJECTS` / `BACKGROUNDS` ("skimage:coffee") -> uint8 RGB (H, W, 3), read-only.

    Grey images are repeated over the channels, alpha is dropped, floats in [0, 1] are scaled to 0..255."""
    package, _, name = source.partition(":")
    if package not in _LOADERS or not name:
        raise ValueError(f"unknown photo {source!r}: expected 'skimage:NAME', 'sklearn:FILE' or 'matplotlib:FILE'")
    image = np.asarray(_LOADERS[package](name))
    if image.dtype != np.uint8:
        scale = 255.0 if image.dtype.kind == "f" and image.max() <= 1.0 else 1.0
        image = np.clip(np.round(image.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3])
    image.setflags(write=False)
    return image


def object_crop(name: str) -> np.ndarray:
    """The tight crop of object `name` (a key of `OBJECTS`): uint8 (h, w, 3)."""
    source, (left, top, right, bottom) = OBJECTS[name]
    photo = load_photo(source)
    if not (0 <= left < right <= photo.shape[1] and 0 <= top < bottom <= photo.shape[0]):
        raise ValueError(f"box {OBJECTS[name][1]} of {name!r} lies outside {source} ({photo.shape[1]}x"
                         f"{photo.shape[0]})")
    return photo[top:bottom, left:right]
