"""Tiny random-weight models and files shared by the analysis tests (32-64 px, patch 8-16, depth 2, width 48)."""

from __future__ import annotations

import json
import os

import numpy as np

TINY = dict(depth=2, embed_dim=48, num_heads=3, mlp_dim=96, patch_size=8, num_classes=10)


def tiny_model(arch="vit_tiny_patch16_224", img_size=32, seed=0, **overrides):
    import keras

    import vit_tf

    keras.utils.set_random_seed(seed)
    return vit_tf.create_model(arch, img_size=img_size, **{**TINY, **overrides})


def write_converted_dir(path, model, recipe=None):
    """A directory in the layout `vit_tf.commands.common.load_model` reads (config.json + model.keras)."""
    from vit_tf.registry import Recipe

    os.makedirs(path, exist_ok=True)
    recipe = recipe or Recipe(input_size=model.config.img_size, crop_pct=0.875)
    model.save(os.path.join(path, "model.keras"))
    with open(os.path.join(path, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"name": os.path.basename(os.path.normpath(path)), "preprocessing": recipe.to_dict(),
                   "config": model.config.to_dict()}, f)
    return str(path)


def write_image(path, size=(48, 40), seed=0):
    """A random RGB image (width, height) with some structure, saved by extension."""
    from PIL import Image

    rng = np.random.RandomState(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], -1)
    img = np.clip(base + rng.randint(-30, 30, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return str(path)


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def random_attention(batch, heads, tokens, seed=0):
    return softmax(np.random.RandomState(seed).randn(batch, heads, tokens, tokens) * 2.0)
