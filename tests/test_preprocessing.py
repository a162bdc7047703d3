"""Preprocessing follows timm's eval transform for each weight tag's recipe."""

import numpy as np
import pytest
from conftest import extra
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
    timm_data = extra("timm.data")
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


# -- reduced-scale decoding and region resampling ------------------------------------------------------------------
RECIPE = vit_tf.Recipe(input_size=(224, 224), crop_pct=0.875)  # resize to 256, crop 224; mean = std = 0.5


def levels(x):
    """Undo RECIPE's normalisation: float (..., 3) -> uint8 levels as floats."""
    return (np.asarray(x) * 0.5 + 0.5) * 255.0


def blocks(w, h, seed=0):
    """Sharp-edged 37-pixel blocks of random colours, (width w, height h)."""
    rng = np.random.RandomState(seed)
    grid = rng.randint(0, 256, (h // 37 + 1, w // 37 + 1, 3)).astype(np.uint8)
    return Image.fromarray(grid).resize((grid.shape[1] * 37, grid.shape[0] * 37), Image.NEAREST).crop((0, 0, w, h))


def test_normal_photos_are_decoded_at_full_size_and_unchanged(tmp_path):
    # Shorter side 3000 < 8 x 2 x 256: no reduction, so the result is exactly the full decode's.
    path = tmp_path / "camera.jpg"
    blocks(4000, 3000).save(path, quality=90)
    assert vit_tf.preprocessing.decode_image(str(path), RECIPE).factor == 1
    np.testing.assert_array_equal(vit_tf.preprocess(str(path), RECIPE), vit_tf.preprocess(str(path), RECIPE,
                                                                                          draft=False))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_big_non_jpeg_images_are_box_reduced_within_tolerance(tmp_path, mode):
    # 4200x4100 PNG: reduced 2x by Image.reduce before conversion. Tolerance vs full size: max 8, mean 0.5 levels.
    image = blocks(4200, 4100)
    if mode == "RGBA":
        alpha = Image.fromarray(np.tile(np.linspace(0, 255, 4200).astype(np.uint8), (4100, 1)))
        image.putalpha(alpha)
    image = image.convert(mode)
    path = tmp_path / f"big_{mode}.png"
    image.save(path, compress_level=1)
    decoded = vit_tf.preprocessing.decode_image(str(path), RECIPE)
    assert decoded.factor == 2 and decoded.size == (4200, 4100) and decoded.image.size == (2100, 2050)
    diff = np.abs(levels(vit_tf.preprocess(str(path), RECIPE)) - levels(vit_tf.preprocess(image, RECIPE,
                                                                                            draft=False)))
    assert diff.max() <= 8.0 + 1e-3 and diff.mean() <= 0.5


@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear", "lanczos"])
@pytest.mark.parametrize("size", [(3, 700), (1300, 5), (1, 900)])
def test_very_elongated_images_resample_only_the_crop(size, interpolation):
    # Resized to 256 x 59,733 (for 3x700) and so on: over 64 crops, so only the crop's region is resampled.
    # Reference: PIL's resize of the whole image, then the crop. Tolerance: 1 level (float32 box coordinates).
    recipe = vit_tf.Recipe(input_size=(224, 224), crop_pct=0.875, interpolation=interpolation)
    rng = np.random.RandomState(sum(size))
    image = Image.fromarray(rng.randint(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    w, h = size
    rw, rh = (256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256)
    assert rw * rh > 64 * 224 * 224
    full = image.resize((rw, rh), {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR,
                                   "lanczos": Image.LANCZOS}[interpolation])
    top, left = int(round((rh - 224) / 2.0)), int(round((rw - 224) / 2.0))
    expected = np.asarray(full.crop((left, top, left + 224, top + 224))).astype(int)
    got = np.asarray(vit_tf.preprocessing.resize_and_crop(image, recipe)).astype(int)
    assert got.shape == (224, 224, 3)
    assert np.abs(got - expected).max() <= 1
