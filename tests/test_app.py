"""`vit-tf app`: every API endpoint called through `gradio_client` against the app served on 127.0.0.1 by the test,
its arrays checked against the `vit_tf.analysis` functions run on the model's own output and its pictures against
the app's drawing functions applied to those reference arrays; bad uploads answered with messages; the forward pass
cached; the command's arguments; and one real browser (the OS's headless Chromium through selenium) that uploads a
photo and clicks patches.

Gradio, gradio_client, selenium or Chromium missing: skipped locally with the reason, a failure in CI (CI=true).
`VIT_TF_APP_SCREENSHOT=docs/figures/app.png` makes the browser test save the page there; with
`VIT_TF_APP_SCREENSHOT_MODEL=<registry name>` it serves that model, with seeded random weights (the page says so)
unless `VIT_TF_APP_SCREENSHOT_OFFICIAL=1` (the official weights, downloaded).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import socket
import tempfile
import time
import types
import urllib.request

import numpy as np
import pytest

from analysis_support import tiny_model, write_converted_dir, write_image
from conftest import in_ci

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="vit-tf-test-gradio-"))

CHROMIUM = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"
TIMEOUT = 120  # seconds for any one API call or browser wait


def require(condition: bool, reason: str):
    """Skip locally, fail in CI, when something the tests need is missing."""
    if not condition:
        if in_ci():
            pytest.fail(f"CI must run the app tests, but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module", autouse=True)
def app_extra():
    missing = [m for m in ("gradio", "gradio_client") if importlib.util.find_spec(m) is None]
    require(not missing, f"{missing} cannot be imported: pip install -e '.[app]'")


# -- references ------------------------------------------------------------------------------------------------------
LABELS = {"plain": "tiny", "distilled": "tiny-distilled", "registers": "tiny-registers"}
TOKENS = {"plain": ["class"], "distilled": ["class", "distillation"],
          "registers": ["class", "register 0", "register 1"]}


@pytest.fixture(scope="module")
def models():
    return {"plain": tiny_model(seed=0), "distilled": tiny_model("deit_tiny_distilled_patch16_224", seed=1),
            "registers": tiny_model(seed=2, num_register_tokens=2)}


def forward(model, x):
    outputs, attention = model.forward_all(x, return_attention=True)  # eager: the app's graph must agree
    return {k: np.asarray(v) for k, v in outputs.items()}, {k: np.asarray(v) for k, v in attention.items()}


def reference(model, image=None):
    from vit_tf.app import sample_image
    from vit_tf.analysis import prepare

    image = sample_image("china.jpg") if image is None else image
    x, shown = prepare(image, model.recipe, model.config.patch_size)
    outputs, attention = forward(model, x)
    return x, shown, outputs, attention


def png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def assert_picture(path, expected: np.ndarray, max_diff: int = 1):
    # Maps equal to float32 rounding can round a blended pixel the other way, or cross a colour-map entry (a few
    # levels): the views' maps are checked against the library to 1e-6, and their pictures against the drawing of
    # the maps the endpoint returned (max_diff=0), so the two checks do not mix.
    got = png(path).astype(int)
    assert got.shape == expected.shape
    diff = np.abs(got - expected.astype(int))
    assert diff.max() <= max_diff and diff.mean() < 0.01, (diff.max(), diff.mean())


# -- the server ------------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(models):
    """The app on 127.0.0.1 (a free port) with the three tiny models; closed at the end of the module."""
    from vit_tf.app import build_app, serve

    demo = build_app([(LABELS[k], m) for k, m in models.items()], max_pixels=300_000,
                     max_upload_bytes=2_000_000)
    demo.queue()
    port = free_port()
    serve(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
    assert demo.server_name == "127.0.0.1"
    try:
        yield demo, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        demo.explorer.close()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    from gradio_client import Client

    return Client(server[1], verbose=False, download_files=str(tmp_path_factory.mktemp("client")))


def call(client, *args, api_name):
    return client.submit(*args, api_name=api_name).result(timeout=TIMEOUT)


def fields(label, source="china.jpg", upload=None, mode=None, random_weights=False, checkpoint=""):
    from vit_tf.app import CROP

    return [source, upload, label, checkpoint, random_weights, mode or CROP]


# -- every endpoint against the library ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["plain", "distilled", "registers"])
def test_analyze_matches_library(client, models, kind):
    from vit_tf.app import picture_scale, scale_picture
    from vit_tf.analysis import top_k

    model = models[kind]
    x, shown, outputs, _ = reference(model)
    result = call(client, *fields(LABELS[kind]), api_name="/analyze")
    picture, label, about, status, *_, run = result
    assert status == "" and "error" not in run
    assert_picture(picture, scale_picture(shown, picture_scale(shown.shape)), max_diff=0)
    expected = top_k(outputs["logits"], 5)[0]
    assert [c["label"] for c in label["confidences"]] == [p["label"] for p in expected]
    np.testing.assert_allclose([c["confidence"] for c in label["confidences"]],
                               [p["probability"] for p in expected], atol=1e-6)
    assert run["tokens"] == TOKENS[kind] and run["grid_size"] == [4, 4] and run["input_size"] == [32, 32]
    assert run["random_weights"] is False and "RANDOM" not in about


@pytest.mark.parametrize("kind", ["plain", "distilled", "registers"])
def test_views_match_library(client, models, kind):
    from vit_tf import app
    from vit_tf.analysis import (attention_grid, attention_mass_mask, attention_rollout, mean_attention_distance,
                                 token_attention)

    model = models[kind]
    _, shown, _, attention = reference(model)
    picture = app.scale_picture(shown, app.picture_scale(shown.shape))
    scale = app.picture_scale(shown.shape)
    prefix = model.config.num_prefix_tokens
    common = dict(num_prefix_tokens=prefix, grid_size=(4, 4))
    base = fields(LABELS[kind])
    for index, token in enumerate(TOKENS[kind]):
        maps = token_attention(attention, block=0, token=index, **common)[0]
        path, info = call(client, *base, 0, token, api_name="/heatmaps")
        assert info["token_index"] == index
        np.testing.assert_allclose(info["maps"], maps, atol=1e-6)
        assert_picture(path, app.heads_picture(picture, np.asarray(info["maps"])), max_diff=0)

        masks = attention_mass_mask(maps, 0.5)
        path, info = call(client, *base, 0, token, 0.5, api_name="/masks")
        assert np.array_equal(np.asarray(info["masks"], bool), masks)
        assert_picture(path, app.masks_picture(picture, masks), max_diff=0)

        rollout = attention_rollout(attention, token=index, head_fusion="max", discard_ratio=0.2, start_block=1,
                                    **common)[0]
        path, info = call(client, *base, token, "max", 0.2, 1, api_name="/rollout")
        np.testing.assert_allclose(info["map"], rollout, atol=1e-6)
        assert info["start_block"] == 1 and info["head_fusion"] == "max"
        assert_picture(path, app.rollout_picture(picture, np.asarray(info["map"])), max_diff=0)

        grid = attention_grid(attention, token=index, **common)[0]
        path, info = call(client, *base, token, api_name="/grid")
        np.testing.assert_allclose(info["max"], grid.max((-2, -1)), atol=1e-6)
        # The grid's picture is drawn from maps equal to 1e-6 but not returned whole: a value on a rounding edge
        # moves one entry of the 256-entry colour map, at most 5 levels (inferno's largest step).
        assert_picture(path, app.grid_picture(grid), max_diff=5)

    distance = mean_attention_distance(attention, patch_size=8, **common)[0]
    path, info = call(client, *base, api_name="/distance")
    np.testing.assert_allclose(info["per_block_head"], distance, atol=1e-5)
    assert png(path).std() > 10  # a drawn figure, not a blank canvas

    row, col = 1, 2
    maps = token_attention(attention, block=1, token=prefix + row * 4 + col, **common)[0]
    marked, path, info = call(client, *base, 1, row, col, api_name="/patch")
    np.testing.assert_allclose(info["maps"], maps, atol=1e-6)
    assert info["patch"] == [row, col]
    assert_picture(path, app.heads_picture(picture, np.asarray(info["maps"]), mark=(row, col), patch_pixels=8 * scale),
                   max_diff=0)
    assert_picture(marked, app.mark_patch(picture, row, col, 8 * scale), max_diff=0)


def test_downloads_hold_the_figures_and_summary(client, models):
    from vit_tf.analysis import mean_attention_distance, top_k

    _, _, outputs, attention = reference(models["distilled"])
    paths, info = call(client, *fields(LABELS["distilled"]), 1, "distillation", "mean", 0.0, 0, 0.6, 2, 3,
                       api_name="/downloads")
    names = [os.path.basename(p) for p in paths]
    assert names == info["files"] and names[0] == "summary.json"
    for name in ("heatmaps.png", "masks.png", "rollout.png", "attention_grid.png", "mean_distance.png",
                 "patch_attention.png"):
        assert name in names
    for p in paths[1:]:
        assert png(p).std() > 5
    with open(paths[0], encoding="utf-8") as f:
        summary = json.load(f)
    assert [p["label"] for p in summary["prediction"]] == [p["label"] for p in top_k(outputs["logits"], 5)[0]]
    np.testing.assert_allclose(summary["mean_attention_distance"]["per_block_head"],
                               mean_attention_distance(attention, patch_size=8, num_prefix_tokens=2)[0], atol=1e-3)
    assert summary["token"] == "distillation" and summary["patch"] == {"block": 1, "row": 2, "col": 3}
    assert summary["rollout"]["token"] == "dist" and summary["heatmaps"]["block"] == 1


def test_upload_keeping_the_aspect_ratio(client, models, tmp_path):
    from gradio_client import handle_file
    from PIL import Image

    from vit_tf.app import ASPECT, UPLOAD
    from vit_tf.analysis import token_attention
    from vit_tf.preprocessing import normalize

    model = models["plain"]
    path = write_image(tmp_path / "wide.png", size=(96, 48))
    # 96x48 at the 32x32 recipe's 1024 pixels, in multiples of 8: 48x24, a 3x6 grid.
    with Image.open(path) as im:
        x = normalize(np.asarray(im.convert("RGB").resize((48, 24), Image.BICUBIC)), model.recipe)[None]
    _, attention = forward(model, x.astype(np.float32))
    base = fields(LABELS["plain"], UPLOAD, handle_file(path), ASPECT)
    run = call(client, *base, api_name="/analyze")[-1]
    assert run["input_size"] == [24, 48] and run["grid_size"] == [3, 6] and run["image"] == "wide.png"
    _, info = call(client, *base, 1, "class", api_name="/heatmaps")
    np.testing.assert_allclose(info["maps"], token_attention(attention, num_prefix_tokens=1, grid_size=(3, 6))[0],
                               atol=1e-5)


def test_bad_uploads_give_messages(server, client, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError
    from PIL import Image

    from vit_tf.app import UPLOAD

    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not an image")
    small = write_image(tmp_path / "small.png", size=(5, 20))
    huge = tmp_path / "huge.png"  # 700 x 700 = 490,000 pixels over the server's 300,000, in few bytes
    Image.new("RGB", (700, 700), (120, 30, 200)).save(huge)
    heavy = tmp_path / "heavy.png"  # over the server's 2,000,000 bytes
    Image.fromarray(np.random.RandomState(0).randint(0, 256, (900, 900, 3), dtype=np.uint8)).save(heavy)
    expected = {not_image: "not a readable image", small: "smaller than one 8x8 patch", huge: "more than the limit",
                heavy: "MB allowed"}
    for path, words in expected.items():
        base = fields(LABELS["plain"], UPLOAD, handle_file(str(path)))
        result = call(client, *base, api_name="/analyze")
        assert result[0] is None and result[3].startswith("**Error:**") and words in result[3], result[3]
        assert "Traceback" not in result[3] and os.path.basename(str(path)) in result[3]
        picture, info = call(client, *base, 1, "class", api_name="/heatmaps")
        assert picture is None and words in info["error"]
    missing = call(client, *fields(LABELS["plain"], UPLOAD, None), api_name="/analyze")[3]
    assert "no image uploaded" in missing
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(AppError, match="Invalid file type"):  # Gradio's own check of the upload box's types
        call(client, *fields(LABELS["plain"], UPLOAD, handle_file(str(text))), api_name="/analyze")
    unknown = call(client, *fields("vit_tyni_patch16_224"), api_name="/analyze")[3]
    assert "unknown model" in unknown and "did you mean" in unknown
    # Once a session has run a model, Gradio bounds the block slider by its depth; a fresh session relies on ours.
    call(client, *fields(LABELS["plain"]), api_name="/analyze")
    with pytest.raises(AppError, match="greater than maximum value 1"):
        call(client, *fields(LABELS["plain"]), 7, "class", api_name="/heatmaps")
    fresh = Client(server[1], verbose=False, download_files=str(tmp_path))
    _, info = call(fresh, *fields(LABELS["plain"]), 7, "class", api_name="/heatmaps")
    assert "block 7 is out of range" in info["error"] and "blocks 0..1" in info["error"]
    _, info = call(fresh, *fields(LABELS["plain"]), 0, "distillation", api_name="/heatmaps")
    assert "has class" in info["error"]


def test_every_api_default_is_valid_for_the_default_model(server, tmp_path):
    """Called with nothing but its advertised defaults, after a run has bounded the session's fields by the model's
    depth (where a default of the deepest registry model's last block failed), every endpoint with settings of its
    own answers for the page's default model (a 2-block model here): the block fields default to -1, the last
    block of any model."""
    from gradio_client import Client

    demo, url = server
    endpoints = demo.get_api_info()["named_endpoints"]
    for name in ("/heatmaps", "/masks", "/patch", "/downloads"):
        block = next(p for p in endpoints[name]["parameters"] if p["parameter_name"] == "block")
        assert block["parameter_default"] == -1, (name, block)
    fresh = Client(url, verbose=False, download_files=str(tmp_path))
    # (/explain is called with its defaults by test_explain_endpoint; /distance and /downloads take the same fields.)
    for name in ("/analyze", "/heatmaps", "/masks", "/rollout", "/grid", "/patch"):
        info = fresh.submit(api_name=name).result(timeout=TIMEOUT)[-1]
        assert "error" not in info, (name, info)
        if name in ("/heatmaps", "/masks", "/patch"):
            assert info["block"] == 1  # the last of the default model's 2 blocks


def test_random_weights_say_so(client):
    import keras

    import vit_tf
    from vit_tf.analysis import top_k

    name = "deit_tiny_distilled_patch16_224"
    result = call(client, *fields(name, random_weights=True), api_name="/analyze")
    _, label, about, status, *_, run = result
    assert status == "" and about.startswith("### ⚠️ RANDOM WEIGHTS") and run["random_weights"] is True
    assert run["tokens"] == ["class", "distillation"] and run["input_size"] == [224, 224]
    keras.utils.set_random_seed(0)  # the app's seed: the same weights, so the same prediction
    model = vit_tf.create_model(name)
    _, _, outputs, _ = reference(model)
    assert [c["label"] for c in label["confidences"]] == [p["label"] for p in top_k(outputs["logits"], 5)[0]]


def test_converted_directory_and_local_checkpoint(client, models, tmp_path):
    from safetensors.numpy import save_file

    import keras

    import vit_tf
    from vit_tf.analysis import top_k

    folder = write_converted_dir(tmp_path / "converted", models["plain"])
    _, label, about, status, *_ = call(client, *fields(folder), api_name="/analyze")
    _, _, outputs, _ = reference(vit_tf.load(folder))  # its own recipe (crop 0.875), the same weights
    assert status == "" and folder in about
    assert [c["label"] for c in label["confidences"]] == [p["label"] for p in top_k(outputs["logits"], 5)[0]]

    keras.utils.set_random_seed(3)
    source = vit_tf.create_model("vit_tiny_patch16_224")
    checkpoint = str(tmp_path / "weights.safetensors")
    save_file(vit_tf.timm_state_dict(source), checkpoint)
    _, label, about, status, *_ = call(client, *fields("vit_tiny_patch16_224", checkpoint=checkpoint),
                                       api_name="/analyze")
    _, _, outputs, _ = reference(source)
    assert status == "" and checkpoint in about
    assert [c["label"] for c in label["confidences"]] == [p["label"] for p in top_k(outputs["logits"], 5)[0]]
    missing = call(client, *fields("vit_tiny_patch16_224", checkpoint=str(tmp_path / "nope.pth")),
                   api_name="/analyze")[3]
    assert "checkpoint not found" in missing


# -- the pure layer --------------------------------------------------------------------------------------------------
def test_model_loaded_once_and_forward_pass_cached(models, monkeypatch):
    from vit_tf.app import Explorer, Handlers

    ex = Explorer([("tiny", models["plain"])])
    loads = []
    original_load = Explorer._load
    monkeypatch.setattr(Explorer, "_load", lambda self, spec: loads.append(spec) or original_load(self, spec))
    h = Handlers(ex)
    loaded = ex.load(ex.spec("tiny"))
    calls = []
    run_forward = loaded.forward
    loaded.forward = lambda x: calls.append(x.shape) or run_forward(x)
    china = fields("tiny")
    h.analyze(*china)
    for block in (0, 1, 0):  # a slider moving
        h.heatmaps(*china, block, "class")
        h.masks(*china, block, "class", 0.3)
        h.patch(*china, block, 1, 1)
    h.rollout(*china, "class", "min", 0.5, 1)
    h.grid(*china, "class")
    h.distance(*china)
    assert calls == [(1, 32, 32, 3)] and len(loads) == 1
    flower = fields("tiny", "flower.jpg")
    h.analyze(*flower)
    h.heatmaps(*flower, 1, "class")
    h.heatmaps(*china, 1, "class")
    assert len(calls) == 2 and len(loads) == 1
    ex.close()


def test_lru_cache_forgets_the_least_recently_used():
    from vit_tf.app import LRUCache

    forgotten = []
    cache = LRUCache(2, on_evict=lambda k, v: forgotten.append((k, v)))
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent: "b" goes first
    cache.put("c", 3)
    assert forgotten == [("b", 2)] and "b" not in cache and cache.get("b") is None and len(cache) == 2
    for i in range(100):
        cache.put(i, i)
    assert len(cache) == 2 and [k for k, _ in cache.items()] == [98, 99] and len(forgotten) == 101
    assert cache.pop_oldest() == (98, 98) and cache.remove(lambda k, v: v == 99) == 1 and len(cache) == 0
    with pytest.raises(ValueError, match="at least 1"):
        LRUCache(0)


def test_explorer_caches_are_bounded(models, tmp_path, monkeypatch):
    """Past `max_models` / `max_images`, the least recently used model (with its forward passes) and upload digest
    are forgotten, and nothing keeps them alive: the explorer's memory does not grow with use."""
    import gc
    import weakref

    from vit_tf.app import UPLOAD, Explorer

    import vit_tf.app.explorer

    # The eager forward pass stands in for the traced one: this test is about what the caches keep, not speed.
    monkeypatch.setattr(vit_tf.app.explorer, "compiled_forward", lambda net: lambda x: forward(net, x))
    ex = Explorer([(LABELS[k], m) for k, m in models.items()], max_models=2, max_images=2)
    loads = []
    original_load = Explorer._load
    monkeypatch.setattr(Explorer, "_load", lambda self, spec: loads.append(spec.name) or original_load(self, spec))
    plain = ex.run(*fields(LABELS["plain"]))
    forgotten = weakref.ref(plain.model)
    ex.run(*fields(LABELS["distilled"]))
    ex.run(*fields(LABELS["plain"]))  # cached: "plain" becomes the most recent model, "distilled" the least
    ex.run(*fields(LABELS["registers"]))
    assert [s.name for s, _ in ex._models.items()] == [LABELS["plain"], LABELS["registers"]]
    assert {key[0].name for key, _ in ex._runs.items()} == {LABELS["plain"], LABELS["registers"]}
    ex.run(*fields(LABELS["distilled"]))  # forgotten, so loaded again; "plain" goes with its forward pass
    assert loads == [LABELS["plain"], LABELS["distilled"], LABELS["registers"], LABELS["distilled"]]
    assert len(ex._models) == 2 and len(ex._runs) == 2
    del plain
    gc.collect()
    assert forgotten() is None  # the forgotten model's compiled forward pass is freed
    paths = [write_image(tmp_path / f"{i}.png", (40, 36), seed=i) for i in range(3)]
    for path in paths:
        ex.run(*fields(LABELS["registers"], UPLOAD, path))
    assert len(ex._digests) == 2 and len(ex._runs) == 2 and len(ex._models) == 2
    ex.close()


def test_without_local_paths_the_page_opens_only_what_it_was_given(models, tmp_path):
    from vit_tf.app import Explorer, InputError

    folder = write_converted_dir(tmp_path / "converted", models["plain"])
    ex = Explorer([folder, ("tiny", models["plain"])], local_paths=False)
    assert ex.spec(folder).name == folder and ex.spec("tiny").name == "tiny"  # listed at start: allowed
    assert ex.spec("vit_tiny_patch16_224.augreg_in21k_ft_in1k").checkpoint is None  # registry names: allowed
    for name in (str(tmp_path), "./converted", "~/models", "../x"):
        with pytest.raises(InputError, match="opens no folders"):
            ex.spec(name)
    with pytest.raises(InputError, match="opens no checkpoint files"):
        ex.spec("vit_tiny_patch16_224", checkpoint=str(tmp_path / "w.pth"))
    ex.close()


def test_click_picks_the_patch_under_the_pointer(server):
    from vit_tf.app import patch_at

    demo = server[0]  # the served app's own explorer and handlers, called directly
    plain = fields(LABELS["plain"])
    run = demo.explorer.run(*plain)
    pixels = 8 * run.scale  # the 32x32 input is shown 6x larger: 48 picture pixels per patch
    assert run.picture.shape == (192, 192, 3) and pixels == 48
    click = lambda x, y: demo.handlers.click(types.SimpleNamespace(index=[x, y]), *plain)  # noqa: E731
    assert click(0, 0) == (0, 0)
    assert click(47, 48) == (1, 0)
    assert click(191, 100) == (2, 3)
    assert patch_at(500, -3, pixels, (4, 4)) == (0, 3)  # outside the picture: the nearest patch


def test_upsample_matches_resize_maps():
    from vit_tf.app import upsample
    from vit_tf.analysis import resize_maps

    maps = np.random.RandomState(0).rand(2, 3, 5, 7)
    for size in [(40, 56), (13, 9), (5, 7)]:
        np.testing.assert_allclose(upsample(maps, size), resize_maps(maps, size), atol=1e-12)
        masks = maps > 0.5
        assert np.array_equal(upsample(masks, size, "nearest"), resize_maps(masks, size, method="nearest"))


def test_aspect_size_keeps_pixels_and_ratio():
    from vit_tf.app import aspect_size

    assert aspect_size(640, 427, (224, 224), 16) == (272, 176)  # china.jpg: a 17 x 11 grid
    assert aspect_size(224, 224, (224, 224), 16) == (224, 224)
    assert aspect_size(10000, 20, (224, 224), 16) == (5008, 16)  # at least one patch per side


# -- the command and the Space entry ---------------------------------------------------------------------------------
def parse(*argv):
    import argparse

    from vit_tf.commands import app as command

    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["app", *argv])


def test_command_serves_on_loopback_by_default(monkeypatch):
    import vit_tf.app
    from vit_tf.commands import app as command

    args = parse()
    assert args.host == "127.0.0.1" and args.port is None and args.model is None
    command.check(args)
    served = {}
    monkeypatch.setattr(vit_tf.app, "serve", lambda demo, host, port, share: served.update(
        demo=demo, host=host, port=port, share=share))
    assert args.func(args) == 0
    assert served["host"] == "127.0.0.1" and served["port"] is None and served["share"] is False
    ex = served["demo"].explorer
    assert ex.default_model == vit_tf.app.DEFAULT_MODEL and ex.local_paths
    assert (ex._models.size, ex._runs.size, ex._digests.size) == (2, 32, 32)
    ex.close()

    args = parse("--model", "deit_tiny_patch16_224", "--random-weights", "--seed", "4", "--port", "7999",
                 "--host", "0.0.0.0")
    command.check(args)
    assert args.func(args) == 0
    ex = served["demo"].explorer
    assert (served["host"], served["port"]) == ("0.0.0.0", 7999)
    assert ex.default_model == "deit_tiny_patch16_224" and ex.random_weights and ex.seed == 4
    ex.close()

    args = parse("--share", "--max-models", "1", "--max-images", "5")
    command.check(args)
    assert args.func(args) == 0
    ex = served["demo"].explorer
    assert served["share"] is True and not ex.local_paths  # a public link opens no paths on this machine
    assert (ex._models.size, ex._runs.size, ex._digests.size) == (1, 5, 5)
    ex.close()


def test_command_checks(monkeypatch, tmp_path):
    from vit_tf.commands import app as command

    with pytest.raises(KeyError, match="did you mean"):
        command.check(parse("--model", "vit_tyni_patch16_224"))
    with pytest.raises(ValueError, match="--checkpoint goes with --model"):
        command.check(parse("--checkpoint", str(tmp_path / "w.pth")))
    with pytest.raises(FileNotFoundError):
        command.check(parse("--model", "vit_tiny_patch16_224", "--checkpoint", str(tmp_path / "w.pth")))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'vit_tf\[app\]'"):
        command.check(parse())


def test_space_entry_builds_the_same_app():
    import runpy

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    demo = runpy.run_path(os.path.join(root, "app.py"))["demo"]  # not __main__: built, not launched
    try:
        assert demo.explorer.default_model == "deit_small_distilled_patch16_224.fb_in1k"
        assert not demo.explorer.local_paths  # public: no paths on the server
        assert {"/analyze", "/heatmaps", "/patch", "/explain", "/downloads"} <= set(
            demo.get_api_info()["named_endpoints"])
    finally:
        demo.explorer.close()


def test_space_settings_come_from_its_variables():
    from vit_tf.app import space_app

    demo = space_app({"VIT_TF_APP_MODELS": " vit_tiny_patch16_224 , deit_tiny_patch16_224",
                      "VIT_TF_APP_MAX_MODELS": "1", "VIT_TF_APP_MAX_IMAGES": "4"})
    ex = demo.explorer
    assert ex.default_model == "vit_tiny_patch16_224" and ex.model_names[:2] == ["vit_tiny_patch16_224",
                                                                                  "deit_tiny_patch16_224"]
    assert (ex._models.size, ex._runs.size) == (1, 4) and not ex.local_paths
    ex.close()
    with pytest.raises(ValueError, match=r"\$VIT_TF_APP_MAX_IMAGES must be a whole number of at least 1, got '0'"):
        space_app({"VIT_TF_APP_MAX_IMAGES": "0"})


# -- a real browser --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    chromium = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    driver_path = shutil.which(CHROMEDRIVER)
    require(importlib.util.find_spec("selenium") is not None, "selenium is not installed: pip install selenium")
    require(chromium is not None and driver_path is not None,
            "headless Chromium is not installed: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1250", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)  # the OS's driver: nothing downloaded
    driver.set_page_load_timeout(TIMEOUT)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition, what: str, timeout: float = TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def element_image(element) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB")).astype(int)


def test_browser_upload_and_click(browser, server, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from vit_tf import app

    shot = os.environ.get("VIT_TF_APP_SCREENSHOT")
    shot_model = os.environ.get("VIT_TF_APP_SCREENSHOT_MODEL") if shot else None
    random_weights = bool(shot_model) and os.environ.get("VIT_TF_APP_SCREENSHOT_OFFICIAL") != "1"
    if shot_model:  # an app of its own for the screenshot's model
        demo = app.build_app([shot_model], random_weights=random_weights)
        demo.queue()
        port = free_port()
        app.serve(demo, "127.0.0.1", port, prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{port}/"
    else:  # the module's app, whose default model is the plain tiny one
        demo, url = server
    try:
        browser.get(url)
        find = lambda css: browser.find_elements(By.CSS_SELECTOR, css)  # noqa: E731
        src = lambda css: (find(css) or [None])[0] and find(css)[0].get_attribute("src")  # noqa: E731
        first = wait_for(lambda: src("#input-image img"), "the sample's picture after the page loads")
        ex = demo.explorer
        spec_name = ex.default_model
        loaded = ex.load(ex.spec(spec_name))
        grid = tuple(s // loaded.config.patch_size for s in loaded.config.img_size)  # the centre crop's grid

        def fields_show(row, col):
            return (find("#row input")[0].get_attribute("value"),
                    find("#col input")[0].get_attribute("value")) == (str(row), str(col))

        def settled(what):
            """Wait until no event is running (Gradio marks the outputs it is computing), then let pictures paint."""
            wait_for(lambda: not find(".pending, .generating, .progress-text"), what)
            time.sleep(0.5)

        settled("the sample's views")
        photo = str(tmp_path / "photo.jpg")  # a real photo, uploaded as a file
        Image.fromarray(app.sample_image("flower.jpg")[40:400, 60:540]).save(photo, quality=92)
        wait_for(lambda: find("#upload input[type=file]"), "the upload box")[0].send_keys(photo)
        wait_for(lambda: src("#input-image img") not in (None, first), "the uploaded photo's picture")
        settled("the uploaded photo's views")
        assert find("#status")[0].text == "" and fields_show(grid[0] // 2, grid[1] // 2)

        def click_patch(row, col):
            gh, gw = grid
            before = src("#patch-image img")  # pictures are files named by their content: another patch, another name
            for attempt in range(3):  # a click on a picture being replaced can be lost: click again
                image = find("#input-image img")[0]
                w, h = image.size["width"], image.size["height"]
                # Selenium 4 offsets are from the element's centre.
                ActionChains(browser).move_to_element_with_offset(
                    image, int((col + 0.5) * w / gw - w / 2), int((row + 0.5) * h / gh - h / 2)).click().perform()
                try:
                    wait_for(lambda: fields_show(row, col), f"the row and column fields to show ({row}, {col})", 15)
                    break
                except AssertionError:
                    if attempt == 2:
                        raise
            wait_for(lambda: src("#patch-image img") not in (None, before), f"the heatmaps of patch ({row}, {col})")
            settled(f"the heatmaps of patch ({row}, {col})")
            return element_image(find("#patch-image img")[0])

        row, col = grid[0] // 2, grid[1] // 2 - 1
        a = click_patch(0, 0)
        b = click_patch(row, col)
        for picture in (a, b):  # a heatmap, not a blank box: many colours, strong contrast
            assert picture.std() > 25 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 200
        assert a.shape == b.shape and np.abs(a - b).mean() > 5  # another patch, other maps
        # What the page shows is the handler's picture for that patch.
        shown = png(io.BytesIO(urllib.request.urlopen(src("#patch-image img"), timeout=30).read()))
        expected = demo.handlers.patch(app.UPLOAD, photo, spec_name, "", random_weights, app.CROP,
                                       loaded.config.depth - 1, row, col)[1]  # the page's block: the last
        assert shown.shape == expected.shape and np.abs(shown.astype(int) - expected).max() <= 0
        if shot:
            browser.execute_script("window.scrollTo(0, 0)")
            time.sleep(0.5)
            os.makedirs(os.path.dirname(os.path.abspath(shot)), exist_ok=True)
            browser.save_screenshot(shot)
    finally:
        if shot_model:
            demo.close()
            demo.explorer.close()


def test_explanation_view_matches_the_library(server, models):
    """The Explanations tab's handler: the map is `vit_tf.explain` on the run's input, the scores are
    `insertion_deletion`'s AUCs; models without a classifier and bad targets get a message."""
    from vit_tf import explain
    from vit_tf.analysis import insertion_deletion
    from vit_tf.app import EXPLAIN_STEPS, Explorer, Handlers

    model = models["distilled"]
    ex, h = server[0].explorer, server[0].handlers  # the served app's, called directly
    tiny = fields(LABELS["distilled"])
    run = ex.run(*tiny)
    top1 = int(np.argmax(run.outputs["logits"][0]))
    picture, info = h.explain(*tiny, "gae", "", True)
    assert picture.dtype == np.uint8 and info["target"] == top1 and info["method"] == "gae"
    expected = explain(model, run.x, "gae", target=[top1])[0]
    np.testing.assert_allclose(np.asarray(info["map"]), expected, atol=1e-9)
    step = 64 * max(1, -(-16 // EXPLAIN_STEPS))  # 4x4 grid of 8x8 patches
    game = insertion_deletion(model, run.x, expected[None], [top1], mode="deletion", step=step)
    assert info["deletion_auc"] == pytest.approx(float(game["auc"][0]), abs=1e-9)
    assert 0.0 <= info["insertion_auc"] <= 1.0 and info["steps"] == len(game["scores"][0]) - 1
    _, other = h.explain(*tiny, "gae", "3", False)  # (methods each cost a trace: GAE again, for another class)
    assert other["target"] == 3 and "deletion_auc" not in other and other["token"] == "class"
    np.testing.assert_allclose(np.asarray(other["map"]), explain(model, run.x, "gae", target=[3])[0], atol=1e-9)
    assert "out of range" in h.explain(*tiny, "gae", "99", False)[1]["error"]
    assert "method must be one of" in h.explain(*tiny, "nope", "", False)[1]["error"]
    headless = Explorer([("features", tiny_model(num_classes=0))])
    message = Handlers(headless).explain(*fields("features"), "gae", "", True)[1]["error"]
    assert "has no classifier" in message
    headless.close()


def test_explanations_follow_the_pages_token(server, models):
    """The Explanations tab explains from the token the page chose (class, distillation, register) with every
    method that reads one (`TOKEN_METHODS`); the others take none, say so, and `vit_tf.explain` refuses one for
    them."""
    from vit_tf import explain
    from vit_tf.analysis import EXPLAIN_METHODS
    from vit_tf.app import TOKEN_METHODS

    model = models["distilled"]
    h = server[0].handlers  # the served app's, called directly
    tiny = fields(LABELS["distilled"])
    run = server[0].explorer.run(*tiny)
    top1 = int(np.argmax(run.outputs["logits"][0]))
    by_class = explain(model, run.x, "gae", target=[top1], token="cls")[0]
    by_dist = explain(model, run.x, "gae", target=[top1], token="dist")[0]
    assert np.abs(by_class - by_dist).max() > 1e-3  # the two readout tokens give different maps
    _, info = h.explain(*tiny, "gae", "", False, "distillation")
    assert info["token"] == "distillation"
    np.testing.assert_allclose(np.asarray(info["map"]), by_dist, atol=1e-9)
    _, info = h.explain(*tiny, "gradcam_tokens", "", False, "distillation")
    assert info["token"] is None and "takes no token" in info["note"]
    np.testing.assert_allclose(np.asarray(info["map"]), explain(model, run.x, "gradcam_tokens", target=[top1])[0],
                               atol=1e-9)
    assert "has class, distillation" in h.explain(*tiny, "gae", "", False, "register 0")[1]["error"]
    for method in sorted(set(EXPLAIN_METHODS) - set(TOKEN_METHODS)):  # the app passes them no token, rightly
        with pytest.raises(ValueError, match="token"):
            explain(model, run.x, method, target=[top1], token="cls")


def test_explain_endpoint(client, models):
    from vit_tf import explain

    model = models["distilled"]
    x, _, outputs, _ = reference(model)
    path, info = call(client, *fields(LABELS["distilled"]), "gae", "2", False, api_name="/explain")
    assert info["target"] == 2 and png(path).ndim == 3
    np.testing.assert_allclose(np.asarray(info["map"]), explain(model, x, "gae", target=[2])[0], atol=1e-6)
    # The page's token reaches the endpoint; the method and target at their defaults (GAE, the top-1; the scores,
    # on by default, are checked through the handler in test_explanation_view_matches_the_library).
    top1 = int(np.argmax(outputs["logits"][0]))
    _, info = client.submit(*fields(LABELS["distilled"]), scores=False, token="distillation",
                            api_name="/explain").result(timeout=TIMEOUT)
    assert info["method"] == "gae" and info["target"] == top1 and info["token"] == "distillation"
    np.testing.assert_allclose(np.asarray(info["map"]), explain(model, x, "gae", target=[top1], token="dist")[0],
                               atol=1e-6)
