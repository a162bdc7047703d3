"""Composites with known evidence, in the style of BAM (Yang & Kim 2019, "Benchmarking Attribution Methods with
Relative Feature Importance"): an object crop pasted at a random position and scale onto a background photo. The
label is the object, and the pasted box is the ground-truth mask of the evidence.

Split rule (nothing is shared across train / validation / test):
- backgrounds: each background photo belongs to one split (`photos.BACKGROUNDS`);
- positions: the canvas is cut into a 4 x 4 grid of cells; the cell (row r, column c) that holds the pasted box's
  centre belongs to split `CELL_SPLITS[(r + 2 * c) % 4]`: train for 0 and 1 (8 cells), validation for 2, test for 3
  (4 cells each, spread over the canvas).
The objects are the same in every split (the task is to find a known object, not to generalise across objects).
Each background is a random square crop (half to all of the photo's shorter side), flipped at random and tinted by
a random gain per colour channel; each object is scaled so that its longer side is 35-60 % of the canvas, aspect
kept, flipped at random.

Deterministic: a split is a function of (split, n_per_class, seed, image_size), drawn from its own random stream
(seed and split), and the first n images of a split do not change when more are asked for.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np
from PIL import Image

from .photos import BACKGROUNDS, OBJECTS, load_photo, object_crop

SPLITS = ("train", "val", "test")
GRID = 4  # position cells per side
CELL_SPLITS = ("train", "train", "val", "test")  # indexed by (row + 2 * column) % 4
SCALE_RANGE = (0.35, 0.6)  # the object's longer side, as a fraction of the canvas side
BACKGROUND_CROP = (0.5, 1.0)  # the background crop's side, as a fraction of the photo's shorter side
BACKGROUND_TINT = (0.5, 1.5)  # random gain per colour channel of the background (its colour carries no label)
CLASS_NAMES = tuple(OBJECTS)


def data_recipe() -> dict:
    """Everything the composites depend on besides (split, n_per_class, seed, image_size): the photos, boxes and
    rules above, as JSON-ready data (cache keys hash it)."""
    return {"objects": OBJECTS, "backgrounds": BACKGROUNDS, "grid": GRID, "cell_splits": CELL_SPLITS,
            "scale": SCALE_RANGE, "background_crop": BACKGROUND_CROP, "background_tint": BACKGROUND_TINT}


@dataclasses.dataclass(frozen=True)
class Composites:
    """One split of composites; N = n_per_class * number of classes, images in the order (image i of class 0,
    image i of class 1, ...) for i = 0, 1, ...

    Attributes:
        images: uint8 (N, S, S, 3) RGB pixels.
        labels: int32 (N,) index into `class_names`.
        masks: bool (N, S, S), True inside the pasted box (the evidence).
        boxes: int32 (N, 4) the pasted box (top, left, bottom, right), bottom/right exclusive.
        cells: int32 (N, 2) the position cell (row, column) of the box centre in the GRID x GRID grid.
        backgrounds: (N,) the background photo of each image.
        class_names: the objects, in label order.
        split: "train", "val" or "test".
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    cells: np.ndarray
    backgrounds: Tuple[str, ...]
    class_names: Tuple[str, ...]
    split: str

    def __len__(self) -> int:
        return len(self.labels)


def cell_split(row: int, col: int) -> str:
    """The split a position cell belongs to (see the module docstring)."""
    return CELL_SPLITS[(row + 2 * col) % GRID]


def centre_cell(top: int, left: int, height: int, width: int, size: int) -> Tuple[int, int]:
    """(row, column) of the cell holding the centre of a box on a size x size canvas."""
    row = min(int((top + height / 2.0) * GRID // size), GRID - 1)
    col = min(int((left + width / 2.0) * GRID // size), GRID - 1)
    return row, col


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    # PIL's bicubic resize filters over the whole source footprint (antialiased when shrinking).
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


def _background(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    h, w = photo.shape[:2]
    side = int(round(min(h, w) * rng.uniform(*BACKGROUND_CROP)))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = photo[top:top + side, left:left + side]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    gains = rng.uniform(*BACKGROUND_TINT, size=3)
    tinted = np.clip(np.round(_resize(np.ascontiguousarray(crop), size, size) * gains), 0, 255)
    return tinted.astype(np.uint8)


def _position(rng: np.random.Generator, height: int, width: int, size: int, split: str):
    """A uniformly drawn (top, left) whose box centre lies in a cell of `split`, or None when none fits."""
    tops, lefts = np.arange(size - height + 1), np.arange(size - width + 1)
    rows = np.minimum(((tops + height / 2.0) * GRID // size).astype(int), GRID - 1)
    cols = np.minimum(((lefts + width / 2.0) * GRID // size).astype(int), GRID - 1)
    pairs = [(r, c) for r in range(GRID) for c in range(GRID) if cell_split(r, c) == split]
    counts = np.array([np.sum(rows == r) * np.sum(cols == c) for r, c in pairs], np.float64)
    if counts.sum() == 0:
        return None
    r, c = pairs[int(rng.choice(len(pairs), p=counts / counts.sum()))]
    return int(rng.choice(tops[rows == r])), int(rng.choice(lefts[cols == c]))


def make_composites(split: str, n_per_class: int, seed: int = 0, image_size: int = 224) -> Composites:
    """Build one split of composites (see the module docstring for the split rule).

    Args:
        split: "train", "val" or "test".
        n_per_class: images per object class.
        seed: the random stream is (seed, split), so splits are independent and each is reproducible.
        image_size: side S of the square canvas (112 at least, so that the smallest object keeps 39 pixels).
    Returns:
        `Composites` with N = n_per_class * len(CLASS_NAMES) images.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if int(n_per_class) < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    if int(image_size) < 112:
        raise ValueError(f"image_size must be at least 112, got {image_size}")
    size, n = int(image_size), int(n_per_class)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS.index(split)]))
    crops = {name: object_crop(name) for name in CLASS_NAMES}
    photos = BACKGROUNDS[split]
    count = n * len(CLASS_NAMES)
    images = np.empty((count, size, size, 3), np.uint8)
    masks = np.zeros((count, size, size), bool)
    boxes = np.empty((count, 4), np.int32)
    cells = np.empty((count, 2), np.int32)
    backgrounds = []
    for i in range(count):
        label = i % len(CLASS_NAMES)
        crop = crops[CLASS_NAMES[label]]
        photo = photos[int(rng.integers(len(photos)))]
        canvas = _background(rng, load_photo(photo), size).copy()
        for _ in range(100):  # a scale whose box can sit in one of the split's cells (the first fits in practice)
            longer = rng.uniform(*SCALE_RANGE) * size
            scale = longer / max(crop.shape[:2])
            h, w = max(1, int(round(crop.shape[0] * scale))), max(1, int(round(crop.shape[1] * scale)))
            where = _position(rng, h, w, size, split)
            if where is not None:
                break
        else:  # pragma: no cover - SCALE_RANGE always fits a centre cell of every split
            raise RuntimeError(f"no position of the {split} cells fits {CLASS_NAMES[label]} at {size} px")
        top, left = where
        obj = crop[:, ::-1] if rng.random() < 0.5 else crop
        canvas[top:top + h, left:left + w] = _resize(np.ascontiguousarray(obj), w, h)
        images[i], masks[i, top:top + h, left:left + w] = canvas, True
        boxes[i] = (top, left, top + h, left + w)
        cells[i] = centre_cell(top, left, h, w, size)
        backgrounds.append(photo)
    labels = np.arange(count, dtype=np.int32) % len(CLASS_NAMES)
    return Composites(images, labels, masks, boxes, cells, tuple(backgrounds), CLASS_NAMES, split)
