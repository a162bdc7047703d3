"""Image input for the analysis commands: checked loading, folder listing and batched streaming with skips."""

from __future__ import annotations

import os
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..preprocessing import normalize, resize_and_crop, to_rgb_image


def load_image(image, patch_size: int):
    """`to_rgb_image` plus a size check: an image smaller than one patch is a ValueError, not an upscaled blur."""
    rgb = to_rgb_image(image)
    w, h = rgb.size
    if w < patch_size or h < patch_size:
        name = os.fspath(image) if isinstance(image, (str, os.PathLike)) else "image"
        raise ValueError(f"{name} is {w}x{h} pixels, smaller than one {patch_size}x{patch_size} patch")
    return rgb


def prepare(image, recipe, patch_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Image -> (model input float32 (1, H, W, 3), the cropped image uint8 (H, W, 3) for display)."""
    cropped = np.asarray(resize_and_crop(load_image(image, patch_size), recipe))
    return normalize(cropped, recipe)[None].astype(np.float32), cropped


def list_images(folder) -> List[str]:
    """Every non-hidden file under `folder`, sorted (decoding decides later what is an image)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths.extend(os.path.join(root, f) for f in files if not f.startswith("."))
    if not paths:
        raise ValueError(f"{folder} holds no files")
    return sorted(paths)


def iter_batches(paths: Sequence[str], recipe, patch_size: int, batch_size: int = 16,
                 limit: Optional[int] = None, on_skip: Optional[Callable[[str, str], None]] = None,
                 on_item: Optional[Callable[[], None]] = None) -> Iterator[Tuple[np.ndarray, List[str]]]:
    """Stream preprocessed batches (B, H, W, 3) with their paths; memory stays at one batch.

    Unreadable files and images smaller than a patch are reported through `on_skip(path, reason)` and skipped.
    `limit` caps the number of images used; `on_item()` is called once per file tried (for progress bars).
    """
    batch, names, used = [], [], 0
    for path in paths:
        if limit is not None and used >= limit:
            break
        try:
            x, _ = prepare(path, recipe, patch_size)
        except (ValueError, OSError) as e:
            if on_skip is not None:
                on_skip(path, str(e))
            continue
        finally:
            if on_item is not None:
                on_item()
        batch.append(x[0])
        names.append(path)
        used += 1
        if len(batch) == batch_size:
            yield np.stack(batch), names
            batch, names = [], []
    if batch:
        yield np.stack(batch), names
