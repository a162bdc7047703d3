"""Image input for the analysis commands: checked loading, folder listing and batched streaming with skips."""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..preprocessing import DecodedImage, decode_image, normalize, resize_and_crop


def _check_patch(decoded: DecodedImage, image, patch_size: int) -> None:
    w, h = decoded.size
    if w < patch_size or h < patch_size:
        name = os.fspath(image) if isinstance(image, (str, os.PathLike)) else "image"
        raise ValueError(f"{name} is {w}x{h} pixels, smaller than one {patch_size}x{patch_size} patch")


def load_image(image, patch_size: int, *, max_pixels: Optional[int] = None):
    """`to_rgb_image` plus a size check: an image smaller than one patch is a ValueError, not an upscaled blur.

    Returns the upright RGB PIL image at full size. `max_pixels`: see `vit_tf.preprocessing.image_pixel_limit`.
    """
    decoded = decode_image(image, max_pixels=max_pixels)
    _check_patch(decoded, image, patch_size)
    return decoded.image.copy() if decoded.image is image else decoded.image


def prepare(image, recipe, patch_size: int, *, max_pixels: Optional[int] = None,
            draft: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """Image -> (model input float32 (1, H, W, 3), the cropped image uint8 (H, W, 3) for display).

    Errors as `load_image`; `max_pixels` and `draft` as in `vit_tf.preprocess`.
    """
    decoded = decode_image(image, recipe if draft else None, max_pixels=max_pixels)
    _check_patch(decoded, image, patch_size)
    cropped = np.asarray(resize_and_crop(decoded, recipe))
    return normalize(cropped, recipe)[None].astype(np.float32), cropped


def list_images(folder) -> List[str]:
    """Every non-hidden file under `folder`, sorted (decoding decides later what is an image)."""
    folder = os.fspath(folder)
    if os.path.isfile(folder):
        raise NotADirectoryError(f"image folder {folder} is a file, not a folder")
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
                 on_item: Optional[Callable[[], None]] = None,
                 max_pixels: Optional[int] = None) -> Iterator[Tuple[np.ndarray, List[str]]]:
    """Stream preprocessed batches (B, H, W, 3) with their paths; memory stays at one batch.

    Unreadable files and images smaller than a patch are reported through `on_skip(path, reason)` and skipped.
    `limit` caps the number of images used; `on_item()` is called once per file tried (for progress bars);
    `max_pixels` as in `vit_tf.preprocess` (images over the limit are skipped with the reason).
    """
    batch, names, used = [], [], 0
    for path in paths:
        if limit is not None and used >= limit:
            break
        try:
            x, _ = prepare(path, recipe, patch_size, max_pixels=max_pixels)
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


def prefetch(iterator: Iterable, depth: int = 2) -> Iterator:
    """Run `iterator` in a background thread, `depth` items ahead, so that decoding the next batch (PIL releases
    the GIL) overlaps the forward pass of the current one. Items come out in order; an error in the producer is
    raised in the consumer."""
    import queue
    import threading

    items: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
    done = object()
    stop = threading.Event()

    def produce():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((True, done))
        except BaseException as e:  # handed to the consumer
            items.put((False, e))

    thread = threading.Thread(target=produce, daemon=True, name="vit_tf-prefetch")
    thread.start()
    try:
        while True:
            ok, item = items.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
