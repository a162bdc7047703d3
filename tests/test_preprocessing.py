"""Preprocessing follows timm's eval transform for each weight tag's recipe."""

import numpy as np
import pytest
from PIL import Image

import vit_tf


def photo(w=300, h=200, mode="RGB", seed=0):
    rng = np.random.RandomState(seed)
    base = np.linspace(0, 255, w * h * 3).reshape(h, w, 3) + rng.randint(0, 40, (h, w, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).convert(mode)


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224.fb_in1k", "vit_base_patch16_384.augreg_in1k",
                                  "vit_small_patch16_224.augreg_in21k_ft_in1k", "vit_small_patch16_224.dino"])
@pytest.mark.parametrize("size", [(300, 200), (180, 260)])
def test_matches_timm_eval_transform(name, size):
    timm_data = pytest.importorskip("timm.data")
    recipe = vit_tf.get_entry(name).recipe
    transform = timm_data.create_transform(input_size=(3, *recipe.input_size), interpolation=recipe.interpolation,
                                           mean=recipe.mean, std=recipe.std, crop_pct=recipe.crop_pct)
    image = photo(*size)
    expected = transform(image).permute(1, 2, 0).numpy()
    ours = vit_tf.preprocess(image, name)
    assert ours.shape == (1, *recipe.input_size, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours[0], expected, atol=1e-5)


def test_original_vit_scaling_is_minus_one_to_one():
    x = vit_tf.preprocess(np.full((240, 240, 3), 255, np.uint8), "vit_base_patch16_224.augreg_in1k")
    np.testing.assert_allclose(x, 1.0, atol=1e-6)
    x = vit_tf.preprocess(np.zeros((240, 240, 3), np.uint8), "vit_base_patch16_224.augreg_in1k")
    np.testing.assert_allclose(x, -1.0, atol=1e-6)


def test_inputs_of_every_kind_become_rgb(tmp_path):
    rgb = photo()
    path = tmp_path / "a.png"
    rgb.save(path)
    name = "deit_tiny_patch16_224.fb_in1k"
    reference = vit_tf.preprocess(rgb, name)
    np.testing.assert_array_equal(vit_tf.preprocess(str(path), name), reference)
    np.testing.assert_array_equal(vit_tf.preprocess(np.asarray(rgb), name), reference)
    gray = vit_tf.preprocess(rgb.convert("L"), name)
    assert gray.shape == reference.shape
    recipe = vit_tf.get_entry(name).recipe
    pixels = gray[0] * np.asarray(recipe.std) + np.asarray(recipe.mean)  # undo the per-channel normalisation
    np.testing.assert_allclose(pixels[..., 0], pixels[..., 1], atol=1e-5)  # replicated channels
    np.testing.assert_allclose(pixels[..., 0], pixels[..., 2], atol=1e-5)
    palette = vit_tf.preprocess(rgb.convert("P"), name)
    assert palette.shape == reference.shape
    rgba = np.dstack([np.asarray(rgb), np.zeros(rgb.size[::-1], np.uint8)])  # fully transparent
    white = vit_tf.preprocess(rgba, name)
    np.testing.assert_allclose(white, vit_tf.preprocess(np.full_like(np.asarray(rgb), 255), name), atol=1e-6)
    batch = vit_tf.preprocess([rgb, rgb.convert("L")], name)
    assert batch.shape == (2, 224, 224, 3)


def test_bad_inputs_are_clear_errors(tmp_path):
    name = "deit_tiny_patch16_224.fb_in1k"
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        vit_tf.preprocess(str(tmp_path / "missing.jpg"), name)
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    with pytest.raises(ValueError, match="notes.jpg is not a readable image"):
        vit_tf.preprocess(str(not_image), name)
    with pytest.raises(ValueError, match="uint8"):
        vit_tf.preprocess(np.zeros((10, 10, 3), np.float32), name)
    with pytest.raises(ValueError, match="carries no eval recipe"):
        vit_tf.preprocess(photo(), object())
