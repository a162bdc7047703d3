"""Checks of the inputs every explanation entry point takes: images, class targets, the model's classifier."""

from __future__ import annotations

import numpy as np


def check_images(model, images):
    """(B, H, W, 3) -> (float32 tensor, (gh, gw)); ValueError for another shape or a size not a multiple of the
    patch size."""
    import tensorflow as tf

    x = images if isinstance(images, tf.Tensor) else tf.convert_to_tensor(np.asarray(images, np.float32))
    x = tf.cast(x, tf.float32)
    if x.shape.rank != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got shape {tuple(x.shape)}")
    p = model.config.patch_size
    h, w = int(x.shape[1]), int(x.shape[2])
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
    return x, (h // p, w // p)


def check_targets(target, batch: int, num_classes: int):
    """`target` (None, an int, or one int per image) -> (B,) int64 with -1 meaning "top-1"; ValueError naming the
    target and the number of classes when one is negative or not below `num_classes` (a -1 must not silently become
    the last class)."""
    if target is None:
        return np.full((batch,), -1, np.int64)
    t = np.asarray(target)
    if t.dtype.kind not in "iu" or t.ndim > 1:
        raise ValueError(f"target must be a class index or one index per image, got {target!r}")
    t = np.broadcast_to(t.astype(np.int64), (batch,)) if t.ndim == 0 else t.astype(np.int64)
    if t.shape != (batch,):
        raise ValueError(f"target has {t.shape[0]} indices for {batch} images")
    bad = sorted({int(v) for v in t if not 0 <= v < num_classes})
    if bad:
        raise ValueError(f"target {bad[0] if len(bad) == 1 else bad} is out of range for {num_classes} classes "
                         f"(valid: 0..{num_classes - 1})")
    return t.copy()


def resolve_targets(logits, target=None) -> np.ndarray:
    """Class indices (B,) int64: `target` checked against the logits (B, classes), or each image's top-1 class when
    `target` is None."""
    z = np.asarray(logits)
    t = check_targets(target, z.shape[0], z.shape[1])
    return np.where(t < 0, np.argmax(z, axis=-1), t).astype(np.int64)


def check_classifier(model):
    if not model.config.num_classes:
        raise ValueError("class-specific explanations need a classifier; this model has num_classes=0 (features "
                         "only); use method 'attention' or 'rollout'")


def check_block(value, depth: int, name: str = "block") -> int:
    """A block index (negative counts from the end) -> non-negative; ValueError when out of range."""
    if not -depth <= int(value) < depth:
        raise ValueError(f"{name} {value} is out of range for {depth} blocks")
    return int(value) % depth
