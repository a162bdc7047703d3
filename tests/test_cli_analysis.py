"""`vit-tf probe` and `vit-tf distance` in-process on tiny random-weight models: outputs, and one clear error line
with a non-zero exit for bad input."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from analysis_support import tiny_model, write_converted_dir, write_image
from helpers import run_cli
from vit_tf import analysis as A


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_converted_dir(tmp_path_factory.mktemp("models") / "tiny_vit", tiny_model(img_size=32))


@pytest.fixture(scope="module")
def distilled_dir(tmp_path_factory):
    model = tiny_model("deit_tiny_distilled_patch16_224", img_size=(32, 48), seed=1)
    return write_converted_dir(tmp_path_factory.mktemp("models") / "tiny_deit_distilled", model)


def error_line(err):
    lines = [line for line in err.strip().splitlines() if line.startswith("vit-tf ")]
    assert len(lines) == 1, err
    return lines[0]


# -- probe -----------------------------------------------------------------------------------------------------------
FIGURES = {"mean_distance", "rollout", "heatmaps", "masks", "attention_grid", "filters", "filter_pca",
           "position_similarity", "position_cosine"}


def test_probe_writes_every_figure_and_summary(capsys, tmp_path, tiny_dir):
    img = write_image(tmp_path / "photo.png", (70, 50))
    out = tmp_path / "out"
    code, stdout, _ = run_cli(capsys, "probe", img, "--model", tiny_dir, "--out", out, "--discard-ratio", "0.5",
                              "--head-fusion", "max")
    assert code == 0, stdout
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["figures"]) == FIGURES
    for name in summary["figures"].values():
        with Image.open(out / name) as im:
            assert np.asarray(im.convert("L"), np.float64).std() > 10
    assert summary["image"] == img and summary["model"] == "tiny_vit"
    assert [p["label"] for p in summary["prediction"]][0].startswith("class ")
    assert len(summary["prediction"]) == 5
    assert np.shape(summary["mean_attention_distance"]["per_block_head"]) == (2, 3)
    assert summary["rollout"]["head_fusion"] == "max" and summary["rollout"]["discard_ratio"] == 0.5
    assert 0 < summary["rollout"]["patch_mass"] <= 1


def test_probe_sample_image_with_random_weights(capsys, tmp_path):
    out = tmp_path / "demo"
    code, stdout, _ = run_cli(capsys, "probe", "--model", "vit_tiny_patch16_224", "--random-weights", "--out", out)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "china.jpg" in summary["image"] and "random" in summary["weights"]
    assert summary["grid_size"] == [14, 14] and len(summary["mean_attention_distance"]["per_block_head"]) == 12
    names = A.imagenet_class_names()
    assert all(p["label"] == names[p["index"]] for p in summary["prediction"])
    assert "top-1" in stdout


def test_probe_with_a_checkpoint_file(capsys, tmp_path):
    import vit_tf
    from safetensors.numpy import save_file

    from vit_tf.weights import timm_state_dict

    source_model = vit_tf.create_model("deit_tiny_patch16_224")
    ckpt = tmp_path / "deit_tiny.safetensors"
    save_file(timm_state_dict(source_model), str(ckpt))
    img = write_image(tmp_path / "photo.jpg", (300, 260))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "probe", img, "--model", "deit_tiny_patch16_224", "--checkpoint", ckpt,
                           "--out", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    x, _ = A.prepare(img, source_model.recipe, 16)
    expected = A.top_k(A.KerasSource(source_model)(x)[0]["logits"], 5)[0]
    assert [p["index"] for p in summary["prediction"]] == [p["index"] for p in expected]


def test_probe_offline_says_how_to_pass_weights(capsys, tmp_path, monkeypatch):
    import vit_tf.commands.common as common

    def offline(model, checkpoint):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(common, "load_model", offline)
    code, _, err = run_cli(capsys, "probe", "--model", "vit_base_patch16_224", "--out", tmp_path / "o")
    assert code == 2
    line = error_line(err)
    assert "--checkpoint" in line and "vit-tf convert" in line


def corrupt_jpeg(path):
    write_image(path.with_suffix(".tmp.jpg"), (64, 64))
    data = path.with_suffix(".tmp.jpg").read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated mid-scan
    return path


@pytest.mark.parametrize("kind,words", [
    ("missing", "not found"),
    ("text", "not a readable image"),
    ("corrupt", "not a readable image"),
    ("tiny", "smaller than one 8x8 patch"),
])
def test_probe_bad_image(capsys, tmp_path, tiny_dir, kind, words):
    path = tmp_path / "input.jpg"
    if kind == "text":
        path.write_text("hello, I am not an image")
    elif kind == "corrupt":
        corrupt_jpeg(path)
    elif kind == "tiny":
        Image.new("RGB", (4, 6), "red").save(path)
    code, _, err = run_cli(capsys, "probe", path, "--model", tiny_dir, "--out", tmp_path / "o")
    assert code == 2
    line = error_line(err)
    assert line.startswith("vit-tf probe: error:") and words in line and "input.jpg" in line


def test_probe_bad_model_and_options(capsys, tmp_path, tiny_dir):
    code, _, err = run_cli(capsys, "probe", "--model", "no_such_model", "--out", tmp_path / "o")
    assert code == 2 and "unknown model" in error_line(err)
    code, _, err = run_cli(capsys, "probe", "--model", tiny_dir, "--out", tmp_path / "o", "--discard-ratio", "1.5")
    assert code == 2 and "--discard-ratio" in error_line(err)
    code, _, err = run_cli(capsys, "probe", "--model", tiny_dir, "--random-weights", "--out", tmp_path / "o")
    assert code == 2 and "--random-weights" in error_line(err)


# -- distance --------------------------------------------------------------------------------------------------------
@pytest.fixture()
def image_dir(tmp_path):
    d = tmp_path / "images"
    (d / "sub").mkdir(parents=True)
    for i in range(3):
        write_image(d / f"img{i}.png", (40 + 8 * i, 36), seed=i)
    write_image(d / "sub" / "img3.jpg", (64, 48), seed=3)
    write_image(d / "sub" / "img4.jpg", (33, 90), seed=4)
    (d / "notes.txt").write_text("not an image")
    Image.new("RGB", (5, 5)).save(d / "speck.png")
    corrupt_jpeg(d / "sub" / "broken.jpg")
    (d / "sub" / "broken.tmp.jpg").unlink()
    (d / ".hidden.png").write_bytes(b"ignored")
    return d


def test_distance_streams_folder_and_compares_models(capsys, tmp_path, image_dir, tiny_dir, distilled_dir):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "distance", image_dir, "--model", tiny_dir, "--model", distilled_dir,
                                "--batch-size", "2", "--out", out)
    assert code == 0, err
    report = json.loads((out / "distances.json").read_text())
    assert [m["images"] for m in report["models"]] == [5, 5]
    skipped = {os.path.basename(s["path"]) for s in report["skipped"]}
    assert skipped == {"notes.txt", "speck.png", "broken.jpg"}
    assert err.count("skipped ") == 3  # reported once, not once per model
    assert {m["num_prefix_tokens"] for m in report["models"]} == {1, 2}
    assert os.path.isfile(out / "distance_comparison.png")
    assert os.path.isfile(out / "distance_tiny_vit.png") and os.path.isfile(out / "distance_tiny_deit_distilled.png")
    with open(out / "distances.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (2 * 3)

    # Known answer: the streamed mean and std equal the per-image distances computed in one go.
    from vit_tf.commands.common import load_model

    model, recipe, _ = load_model(distilled_dir)
    good = [p for p in A.list_images(image_dir) if os.path.basename(p) not in skipped]
    x = np.concatenate([A.prepare(p, recipe, 8)[0] for p in good])
    per_image = A.mean_attention_distance(model(x)[1], patch_size=8, num_prefix_tokens=2, grid_size=(4, 6))
    got = report["models"][1]
    np.testing.assert_allclose(got["mean"], per_image.mean(0), rtol=1e-4)
    np.testing.assert_allclose(got["std"], per_image.std(0), rtol=1e-3, atol=1e-4)
    row = next(r for r in rows if r["model"] == "tiny_deit_distilled" and r["block"] == "1" and r["head"] == "2")
    assert float(row["mean_distance_px"]) == pytest.approx(per_image.mean(0)[1, 2], rel=1e-4)


def test_distance_num_images_and_renormalize(capsys, tmp_path, image_dir, tiny_dir):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "distance", image_dir, "--model", tiny_dir, "--num-images", "2",
                           "--renormalize", "--out", out)
    assert code == 0, err
    report = json.loads((out / "distances.json").read_text())
    assert report["models"][0]["images"] == 2 and report["renormalize"] is True
    assert not os.path.exists(out / "distance_comparison.png")


def test_distance_bad_folders(capsys, tmp_path, tiny_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "distance", empty, "--model", tiny_dir, "--out", tmp_path / "o")
    assert code == 2 and "holds no files" in error_line(err)
    code, _, err = run_cli(capsys, "distance", tmp_path / "nope", "--model", tiny_dir, "--out", tmp_path / "o")
    assert code == 2 and "not found" in error_line(err)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_text("text")
    code, _, err = run_cli(capsys, "distance", junk, "--model", tiny_dir, "--out", tmp_path / "o")
    assert code == 2 and "no readable images" in error_line(err)
