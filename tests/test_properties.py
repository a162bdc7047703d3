"""Property tests (hypothesis): preprocessing of random sizes, PIL modes, array dtypes and damaged files gives the model
input or a clear ValueError/TypeError, never another exception; analysis invariants over random softmax attention on
random grids. Example counts are modest (deadline off, no example database written) so the file runs in well under a
minute."""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

import vit_tf
from vit_tf import analysis as A

SETTINGS = settings(max_examples=50, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MODES = ["1", "L", "P", "P+transparency", "RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr", "HSV", "LAB", "RGBX", "I",
         "I;16", "I;16B", "F"]


# -- preprocessing -----------------------------------------------------------------------------------------------------
sizes = st.one_of(
    st.tuples(st.integers(1, 6), st.integers(1, 6)),                          # tiny
    st.tuples(st.integers(1, 120), st.integers(1, 120)),                      # ordinary
    st.tuples(st.integers(1, 4), st.integers(300, 3000)),                     # very elongated, tall
    st.tuples(st.integers(300, 3000), st.integers(1, 4)),                     # very elongated, wide
)

def recipe_strategy(interpolations=("bicubic", "bilinear", "nearest", "lanczos")):
    return st.builds(
        lambda size, crop, interpolation, mean, std: vit_tf.Recipe(input_size=size, crop_pct=crop,
                                                                   interpolation=interpolation, mean=mean, std=std),
        st.sampled_from([(16, 16), (32, 32), (24, 40)]),
        st.sampled_from([0.5, 0.875, 0.9, 1.0]),
        st.sampled_from(interpolations),
        st.tuples(*[st.floats(0.0, 1.0)] * 3),
        st.tuples(*[st.floats(0.05, 2.0)] * 3),
    )


recipes = recipe_strategy()


def make_image(mode, w, h, rng, span):
    """A PIL image of `mode` with random content; `span` picks the value range of the deep modes."""
    rgb = Image.fromarray(rng.randint(0, 256, (h, w, 3), dtype=np.uint8))
    if mode == "P+transparency":
        image = rgb.convert("P")
        image.info["transparency"] = int(np.asarray(image).flat[0])
        return image
    if mode in ("I", "I;16", "I;16B", "F"):
        lo, hi = {"small": (0, 255), "sixteen": (0, 65535), "wide": (-2 ** 31, 2 ** 31 - 1),
                  "unit": (0, 1), "const": (7, 7)}[span]
        if mode == "F":
            data = rng.uniform(lo, hi, (h, w)).astype(np.float32)
            if span == "const":
                data[:] = 7.5
            return Image.fromarray(data, "F")
        if mode.startswith("I;16"):
            lo, hi = max(lo, 0), min(hi, 65535)
            data = rng.randint(lo, hi + 1, (h, w)).astype(np.uint16)
            return Image.frombytes(mode, (w, h), data.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
        return Image.fromarray(rng.randint(lo, hi + 1, (h, w), dtype=np.int64).astype(np.int32))
    return rgb.convert(mode)


def check_model_input(x, recipe, batch):
    h, w = recipe.input_size
    assert isinstance(x, np.ndarray) and x.shape == (batch, h, w, 3) and x.dtype == np.float32
    assert np.isfinite(x).all()
    mean, std = np.asarray(recipe.mean), np.asarray(recipe.std)
    low, high = (0.0 - mean) / std, (1.0 - mean) / std  # pixels are in [0, 1] before normalisation
    tol = 1e-5 * (1 + np.abs(low) + np.abs(high))
    assert np.all(x >= (low - tol).astype(np.float32)) and np.all(x <= (high + tol).astype(np.float32))


def clear_error(call):
    """Run `call`; a ValueError or TypeError with a message is an accepted outcome, anything else propagates."""
    try:
        return call()
    except (ValueError, TypeError) as e:
        assert str(e).strip()
        return None


@SETTINGS
@given(size=sizes, mode=st.sampled_from(MODES), span=st.sampled_from(["small", "sixteen", "wide", "unit", "const"]),
       recipe=recipes, seed=st.integers(0, 2 ** 31 - 1))
def test_any_pil_image_gives_model_input(size, mode, span, recipe, seed):
    image = make_image(mode, *size, np.random.RandomState(seed), span)
    x = vit_tf.preprocess(image, recipe)  # every mode is supported: no error allowed
    check_model_input(x, recipe, 1)


@SETTINGS
@given(size=sizes, channels=st.sampled_from([None, 1, 2, 3, 4, 5]),
       dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_, np.int8]),
       recipe=recipes, seed=st.integers(0, 2 ** 31 - 1))
def test_any_array_gives_model_input_or_a_clear_error(size, channels, dtype, recipe, seed):
    w, h = size
    shape = (h, w) if channels is None else (h, w, channels)
    array = (np.random.RandomState(seed).rand(*shape) * 255).astype(dtype)
    x = clear_error(lambda: vit_tf.preprocess([array, array], recipe))
    valid = dtype == np.uint8 and channels in (None, 1, 3, 4)
    assert (x is not None) == valid
    if valid:
        check_model_input(x, recipe, 2)


# PIL's TIFF reader warns about damaged files, then decodes what it can or we report the error.
@pytest.mark.filterwarnings("ignore:Truncated File Read", "ignore:Corrupt EXIF data")
@SETTINGS
@given(size=st.tuples(st.integers(1, 80), st.integers(1, 80)), fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP",
                                                                                   "TIFF", "WEBP"]),
       cut=st.one_of(st.none(), st.floats(0.0, 0.99)), recipe=recipes, seed=st.integers(0, 2 ** 31 - 1))
def test_encoded_and_damaged_files_give_model_input_or_a_clear_error(size, fmt, cut, recipe, seed):
    buf = io.BytesIO()
    make_image("RGB", *size, np.random.RandomState(seed), "small").save(buf, fmt)
    data = buf.getvalue()
    if cut is not None:
        data = data[: int(len(data) * cut)]  # truncated anywhere, down to nothing
    x = clear_error(lambda: vit_tf.preprocess(data, recipe))
    if cut is None:
        assert x is not None  # an intact file always decodes
    if x is not None:
        check_model_input(x, recipe, 1)


@SETTINGS
@given(size=st.tuples(st.integers(256, 1100), st.integers(256, 1100)), orientation=st.integers(1, 8),
       recipe=recipe_strategy(("bicubic", "bilinear", "lanczos")), smooth=st.booleans(),
       seed=st.integers(0, 2 ** 31 - 1))
def test_reduced_jpeg_decode_stays_within_tolerance(size, orientation, recipe, smooth, seed):
    """Whenever a JPEG is decoded at a reduced scale, the result is within the documented tolerance of the full-size
    decode (max 8/255, mean 0.5/255 before normalisation), for every EXIF orientation."""
    w, h = size
    rng = np.random.RandomState(seed)
    cells = rng.randint(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8) if smooth else None
    pixels = (np.asarray(Image.fromarray(cells).resize((w, h), Image.BICUBIC)) if smooth
              else rng.randint(0, 256, (h, w, 3), dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    data = buf.getvalue()[:2] + b"\xff\xe1" + len(payload + b"..").to_bytes(2, "big") + payload + buf.getvalue()[2:]
    fast = vit_tf.preprocess(data, recipe)
    full = vit_tf.preprocess(data, recipe, draft=False)
    check_model_input(fast, recipe, 1)
    factor = vit_tf.preprocessing.decode_image(data, recipe).factor
    assert factor in (1, 2, 4, 8)
    event(f"decoded at 1/{factor:g}")
    diff = np.abs(fast - full) * np.asarray(recipe.std) * 255.0  # in uint8 levels
    if factor == 1:
        assert diff.max() == 0
    else:
        assert diff.max() <= 8.0 + 1e-3 and diff.mean() <= 0.5


# -- analysis --------------------------------------------------------------------------------------------------------
@st.composite
def attention_case(draw):
    gh, gw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    prefix = draw(st.integers(0, 2))
    b, heads, depth = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    t = prefix + gh * gw
    rng = np.random.RandomState(draw(st.integers(0, 2 ** 31 - 1)))
    scale = draw(st.sampled_from([0.1, 1.0, 5.0, 30.0]))  # from near-uniform to near-one-hot rows
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    blocks = {}
    for i in range(depth):
        logits = rng.randn(b, heads, t, t) * scale
        e = np.exp(logits - logits.max(-1, keepdims=True))
        blocks[f"transformer_block_{i}_att"] = (e / e.sum(-1, keepdims=True)).astype(dtype)
    return blocks, (gh, gw), prefix


@SETTINGS
@given(case=attention_case(), fusion=st.sampled_from(["mean", "max", "min"]), discard=st.floats(0.0, 0.9),
       start=st.integers(0, 2))
def test_rollout_rows_sum_to_one_and_maps_are_non_negative(case, fusion, discard, start):
    blocks, grid, prefix = case
    start = min(start, len(blocks) - 1)
    joint = A.rollout_matrix(blocks, head_fusion=fusion, discard_ratio=discard, start_block=start)
    np.testing.assert_allclose(joint.sum(-1), 1.0, atol=1e-9)
    assert np.all(joint >= 0)
    token = "cls" if prefix else 0
    maps = A.attention_rollout(blocks, num_prefix_tokens=prefix, token=token, head_fusion=fusion,
                               discard_ratio=discard, start_block=start, grid_size=grid)
    first = next(iter(blocks.values()))
    assert maps.shape == (first.shape[0], *grid)
    assert np.isfinite(maps).all() and np.all(maps >= 0) and np.all(maps.sum((-2, -1)) <= 1 + 1e-9)


@SETTINGS
@given(case=attention_case(), patch=st.sampled_from([1, 8, 14, 16, 32]), renormalize=st.booleans())
def test_mean_distances_lie_between_zero_and_the_grid_diagonal(case, patch, renormalize):
    blocks, (gh, gw), prefix = case
    d = A.mean_attention_distance(blocks, patch_size=patch, num_prefix_tokens=prefix, grid_size=(gh, gw),
                                  renormalize=renormalize)
    first = next(iter(blocks.values()))
    assert d.shape == (first.shape[0], len(blocks), first.shape[1])
    diagonal = patch * np.hypot(gh - 1, gw - 1)
    assert np.all(d >= -1e-9) and np.all(d <= diagonal * (1 + 1e-6) + 1e-9)
    grid = A.attention_grid(blocks, num_prefix_tokens=prefix, token=0, grid_size=(gh, gw))
    assert grid.shape == (first.shape[0], len(blocks), first.shape[1], gh, gw) and np.isfinite(grid).all()


@SETTINGS
@given(case=attention_case(), bad=st.sampled_from([np.nan, np.inf, -np.inf]), where=st.integers(0, 10 ** 6),
       which=st.integers(0, 2))
def test_non_finite_attention_raises_naming_the_block(case, bad, where, which):
    blocks, grid, prefix = case
    name = f"transformer_block_{which % len(blocks)}_att"
    target = blocks[name]
    target.flat[where % target.size] = bad
    token = "cls" if prefix else 0
    for call in (lambda: A.mean_attention_distance(blocks, patch_size=16, num_prefix_tokens=prefix, grid_size=grid),
                 lambda: A.rollout_matrix(blocks),
                 lambda: A.attention_rollout(blocks, num_prefix_tokens=prefix, token=token, grid_size=grid),
                 lambda: A.attention_grid(blocks, num_prefix_tokens=prefix, token=token, grid_size=grid),
                 lambda: A.token_attention(blocks, num_prefix_tokens=prefix, token=token, grid_size=grid,
                                           block=which % len(blocks))):
        with pytest.raises(ValueError, match=f"{name} contains NaN/Inf"):
            call()
