"""`vit-tf similarity` and `vit-tf heads` end to end on a folder of generated images with tiny random-weight models
(converted directories, and a registry name with --random-weights); the numbers they write equal the library's on
the same images. The commands are run through vit-tf's parser (`helpers.run_cli`)."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from analysis_support import tiny_model, write_converted_dir, write_image
from helpers import run_cli
from vit_tf.analysis import prepare
from vit_tf.commands.common import load_for_analysis


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for i in range(10):
        write_image(root / f"img_{i:02d}.png", (40 + 3 * i, 36 + i), seed=i)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    vit = write_converted_dir(root / "tiny_vit", tiny_model(img_size=32, num_classes=5))
    deit = write_converted_dir(root / "tiny_deit", tiny_model("deit_tiny_distilled_patch16_224", img_size=48,
                                                              num_classes=5, seed=1))
    return vit, deit


def _rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _non_blank(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), np.float64).std() > 10


def test_similarity_two_models_equals_the_library(folder, models, tmp_path, capsys):
    out = tmp_path / "sim"
    assert run_cli(None, "similarity", folder, "--model", models[0], "--model", models[1], "--tokens", "cls",
                   "--tokens", "mean", "--batch-size", 4, "--out", out) == 0
    report = json.loads((out / "cka.json").read_text())
    assert sorted(os.listdir(out)) == ["cka.csv", "cka.json", "cka_cls.png", "cka_mean.png"]
    assert (report["images"], report["batches"]) == (10, 2)  # 4, 4 + the last 2 joined: 4, 6
    assert [s["path"] for s in report["skipped"]] == [str(folder / "notes.txt")]
    assert report["layers_a"] == ["embedding", "block_0", "block_1", "norm"] == report["layers_b"]
    assert report["constant"]["cls"] == {"a": ["embedding"], "b": ["embedding"]}
    assert all(_non_blank(out / name) for name in report["figures"].values())
    rows = _rows(out / "cka.csv")
    assert len(rows) == 2 * 4 * 4 and {r["tokens"] for r in rows} == {"cls", "mean"}
    # The library on the same images, each model with its own recipe.
    from vit_tf.analysis.cka import layer_cka

    (a, ra, _), (b, rb, _) = (load_for_analysis(m) for m in models)
    paths = [str(folder / f"img_{i:02d}.png") for i in range(10)]
    xa = np.concatenate([prepare(p, ra, 8)[0] for p in paths])
    xb = np.concatenate([prepare(p, rb, 8)[0] for p in paths])
    expected = layer_cka(a, [xa[:4], xa[4:8], xa[8:]], b, batches_b=[xb[:4], xb[4:8], xb[8:]],
                         tokens=["cls", "mean"])
    for t in ("cls", "mean"):
        np.testing.assert_allclose(report["cka"][t], expected.select(t).cka, atol=1e-6)
        csv_matrix = np.array([float(r["cka"]) for r in rows if r["tokens"] == t]).reshape(4, 4)
        np.testing.assert_allclose(csv_matrix, report["cka"][t], atol=1e-6)
    assert "10 images in 2 batches; 1 skipped" in capsys.readouterr().out


def test_similarity_random_weights_registry_model(folder, tmp_path):
    out = tmp_path / "self"
    assert run_cli(None, "similarity", folder, "--model", "deit_tiny_distilled_patch16_224", "--random-weights",
                   "--tokens", "dist", "--num-images", 4, "--batch-size", 4, "--out", out) == 0
    report = json.loads((out / "cka.json").read_text())
    assert "random weights" in report["models"][0]["weights"] and len(report["layers_a"]) == 14
    cka = np.array(report["cka"]["dist"])
    assert cka.shape == (14, 14) and np.isfinite(cka).all()
    assert np.allclose(np.diag(cka)[1:], 1.0) and report["constant"]["dist"]["a"] == ["embedding"]


def test_similarity_errors_leave_nothing_behind(folder, models, tmp_path, capsys):
    out = tmp_path / "never"
    with pytest.raises(SystemExit):
        run_cli(None, "similarity", folder, "--model", models[0], "--batch-size", 3, "--out", out)
    assert "at least 4" in capsys.readouterr().err
    with pytest.raises(ValueError, match="one --model .* or two"):
        run_cli(None, "similarity", folder, "--model", models[0], "--model", models[0], "--model", models[1],
                "--out", out)
    with pytest.raises(ValueError, match="no distillation token"):
        run_cli(None, "similarity", folder, "--model", models[0], "--tokens", "dist", "--out", out)
    few = tmp_path / "few"
    few.mkdir()
    for i in range(3):
        write_image(few / f"{i}.png", seed=i)
    with pytest.raises(ValueError, match="3 images in all"):
        run_cli(None, "similarity", few, "--model", models[0], "--out", out)
    assert not out.exists()


def test_heads_with_imagenet_class_folders_equals_the_library(models, tmp_path, capsys):
    from vit_tf.analysis.heads import head_statistics
    from vit_tf.evaluation import imagenet_synsets

    data = tmp_path / "val"
    for k, wnid in enumerate(imagenet_synsets()[:3]):  # classes 0, 1, 2 of the 5-class tiny model
        (data / wnid).mkdir(parents=True)
        for i in range(3):
            write_image(data / wnid / f"{i}.png", (36 + i, 40), seed=10 * k + i)
    out = tmp_path / "heads"
    assert run_cli(None, "heads", data, "--model", models[0], "--batch-size", 4, "--out", out) == 0
    report = json.loads((out / "heads.json").read_text())
    assert report["metric"] == "accuracy" and report["images"] == 9 and "class_folders" in report["labels"]
    assert sorted(report["figures"].values()) == ["attention_entropy.png", "head_ablation.png",
                                                  "head_importance.png", "heads.png"]
    assert all(_non_blank(out / name) for name in report["figures"].values())
    rows = _rows(out / "heads.csv")
    importance = [float(r["importance"]) for r in rows]
    assert len(rows) == 6 and importance == sorted(importance, reverse=True)
    # The library on the same batches.
    net, recipe, _ = load_for_analysis(models[0])
    paths = [str(data / w / f"{i}.png") for w in imagenet_synsets()[:3] for i in range(3)]
    x = np.concatenate([prepare(p, recipe, 8)[0] for p in paths])
    labels = np.repeat([0, 1, 2], 3)
    r = head_statistics(net, [(x[:4], labels[:4]), (x[4:8], labels[4:8]), (x[8:], labels[8:])])
    assert report["baseline"] == pytest.approx(r.baseline)
    np.testing.assert_allclose(report["accuracy_change"], r.ablation, atol=1e-6)
    np.testing.assert_allclose(report["importance"], r.importance, atol=1e-5)
    np.testing.assert_allclose(report["entropy"], r.entropy, atol=1e-6)
    for row in rows:
        b, h = int(row["block"]), int(row["head"])
        assert float(row["accuracy_change"]) == pytest.approx(r.ablation[b, h], abs=1e-6)
    assert "accuracy" in capsys.readouterr().out


def test_heads_without_labels_or_classifier(folder, tmp_path):
    out = tmp_path / "agree"
    assert run_cli(None, "heads", folder, "--model", _tiny_dir(tmp_path, 5), "--no-ablation",
                   "--out", out) == 0
    report = json.loads((out / "heads.json").read_text())
    assert report["metric"] == "agreement" and report["agreement_change"] is None
    assert np.allclose(np.linalg.norm(report["importance"], axis=1), 1.0, atol=1e-5)
    assert report["labels"].startswith("none") and len(report["skipped"]) == 1
    out = tmp_path / "entropy"
    assert run_cli(None, "heads", folder, "--model", _tiny_dir(tmp_path, 0), "--out", out) == 0
    report = json.loads((out / "heads.json").read_text())
    assert report["importance"] is None and np.shape(report["entropy"]) == (2, 3)
    assert sorted(report["figures"]) == ["entropy", "heads"]


def _tiny_dir(tmp_path, classes):
    return write_converted_dir(tmp_path / f"tiny_{classes}", tiny_model(img_size=32, num_classes=classes))
