"""`vit-tf explain` and `vit-tf faithfulness` in-process on tiny random-weight models, through vit-tf's parser
(`helpers.run_cli`): outputs, their agreement with the library, streaming, skipped files, and one clear error for
bad input."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis_support import tiny_model, write_converted_dir, write_image
from helpers import run_cli
from vit_tf.commands import explain as explain_command
from vit_tf.commands import faithfulness as faithfulness_command


@pytest.fixture(scope="module")
def distilled_dir(tmp_path_factory):
    model = tiny_model("deit_tiny_distilled_patch16_224", img_size=(32, 48), seed=1, num_classes=5)
    return write_converted_dir(tmp_path_factory.mktemp("models") / "tiny_deit", model)


def nonblank(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), np.float64).std() > 10


def test_explain_writes_a_figure_per_image_and_json(tmp_path, distilled_dir, capsys):
    images = [write_image(tmp_path / "wide.png", (70, 50)), write_image(tmp_path / "tall.jpg", (40, 60), seed=1)]
    out = tmp_path / "out"
    code = run_cli(None, "explain", *images, "--model", distilled_dir, "--method", "all", "--steps", "2", "--samples",
                   "2", "--out", out, "--dpi", "60")
    assert code == 0 and "2 image(s)" in capsys.readouterr().out
    report = json.loads((out / "explain.json").read_text())
    assert report["methods"] == list(explain_command.METHODS)
    assert [r["figure"] for r in report["images"]] == ["explain_wide.png", "explain_tall.png"]
    for record in report["images"]:
        assert nonblank(out / record["figure"])
        assert record["grid"] == [4, 6]
        assert record["target"]["index"] == record["prediction"][0]["index"]
        assert record["target"]["label"] == f"class {record['target']['index']}"
        assert set(record["maps"]) == set(explain_command.METHODS)
    # The maps are the library's, on the same preprocessed image.
    from vit_tf.analysis import prepare
    from vit_tf.analysis import explain
    from vit_tf.commands.common import load_for_analysis

    net, recipe, _ = load_for_analysis(distilled_dir)
    x, _ = prepare(images[0], recipe, 8)
    # The command runs its images as one batch, the call below one image: float32 rounding differs (1.3e-6 relative
    # seen), so the bound is 1e-5 relative, far below any difference between methods or images.
    np.testing.assert_allclose(report["images"][0]["maps"]["gae"], explain(net, x, "gae")[0], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(report["images"][0]["maps"]["transformer_attribution"],
                               explain(net, x, "transformer_attribution")[0], rtol=1e-5, atol=1e-8)


def test_explain_target_token_and_errors(tmp_path, distilled_dir):
    image = write_image(tmp_path / "a.png", (48, 32))
    out = tmp_path / "out"
    assert run_cli(None, "explain", image, "--model", distilled_dir, "--method", "gae,rollout", "--target", "4",
                   "--token", "dist", "--out", out) == 0
    record = json.loads((out / "explain.json").read_text())["images"][0]
    assert record["target"]["index"] == 4 and list(record["maps"]) == ["gae", "rollout"]
    with pytest.raises(ValueError, match="--target 5"):
        run_cli(None, "explain", image, "--model", distilled_dir, "--target", "5", "--out", out)
    with pytest.raises(SystemExit):
        run_cli(None, "explain", image, "--model", distilled_dir, "--method", "lime", "--out", out)
    with pytest.raises(ValueError, match="no distillation token"):
        run_cli(None, "explain", image, "--model", "vit_tiny_patch16_224", "--random-weights", "--token", "dist",
                "--out", out)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        run_cli(None, "explain", str(tmp_path / "missing.png"), "--model", distilled_dir, "--out", out)


def labelled_folder(root, per_class=3):
    for c, name in enumerate(("cat", "dog")):
        os.makedirs(root / name)
        for i in range(per_class):
            write_image(root / name / f"{i}.png", (40 + 8 * i, 36), seed=10 * c + i)
    (root / "dog" / "broken.png").write_bytes(b"not an image")
    return root


def test_faithfulness_table_streams_and_skips(tmp_path, distilled_dir, capsys):
    data = labelled_folder(tmp_path / "data")
    outs = []
    for batch in ("4", "16"):
        out = tmp_path / f"out{batch}"
        code = run_cli(
            None, "faithfulness", data, "--model", distilled_dir, "--method", "transformer_attribution", "--out", out,
            "--metrics", "perturbation,tokens,insertion,deletion,saco,road", "--batch-size", batch,
            "--saco-groups", "4", "--dpi", "60")
        assert code == 0
        outs.append(out)
    assert "broken.png" in capsys.readouterr().err
    small, large = [list(csv.reader(open(o / "faithfulness.csv"))) for o in outs]
    assert small[0] == ["method", "class", "metric", "value", "images"]
    assert small == large  # two batches of 4 and 2, or one of 6: the same numbers
    metrics = {(r[0], r[1], r[2]) for r in small[1:]}
    for method in ("transformer_attribution",):
        for which in ("predicted", "target"):
            for metric in ("positive_pixels_auc", "negative_pixels_auc", "positive_tokens_auc",
                           "negative_tokens_auc", "road_morf_auc", "road_lerf_auc", "insertion_auc",
                           "deletion_auc", "saco"):
                assert (method, which, metric) in metrics
    report = json.loads((outs[0] / "faithfulness.json").read_text())
    assert report["images"] == 6 and report["layout"]["classes"] == ["cat", "dog"]
    assert [s["path"].endswith("broken.png") for s in report["skipped"]] == [True]
    assert nonblank(outs[0] / "faithfulness.png")
    for row in report["table"]:
        if row["metric"].endswith("pixels_auc") or row["metric"].endswith("tokens_auc"):
            assert 0.0 <= row["value"] <= 90.0
    # The model accuracy row is the library's on the same preprocessing.
    from vit_tf.analysis import faithfulness as F, prepare
    from vit_tf.commands.common import load_for_analysis

    net, recipe, _ = load_for_analysis(distilled_dir)
    paths, labels, _ = faithfulness_command.labelled_images(str(data))
    x = np.concatenate([prepare(p, recipe, 8)[0] for p in paths if not p.endswith("broken.png")])
    y = np.asarray([label for p, label in zip(paths, labels) if not p.endswith("broken.png")])
    accuracy = 100.0 * np.mean(F.forward_logits(net, x).argmax(-1) == y)
    assert small[1] == ["model", "-", "accuracy", f"{accuracy:.6f}", "6"]


def test_faithfulness_errors(tmp_path, distilled_dir):
    data = labelled_folder(tmp_path / "data", per_class=1)
    with pytest.raises(FileNotFoundError):
        run_cli(None, "faithfulness", tmp_path / "nothing", "--model", distilled_dir, "--out", tmp_path / "o")
    with pytest.raises(SystemExit):
        run_cli(None, "faithfulness", data, "--model", distilled_dir, "--metrics", "aopc", "--out", tmp_path / "o")
    with pytest.raises(ValueError, match="no classifier"):
        run_cli(None, "faithfulness", data, "--model", "vit_small_patch14_dinov2.lvd142m", "--random-weights",
                "--method", "rollout", "--out", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_faithfulness_classes_outside_the_model_exit_2(tmp_path, distilled_dir, capsys):
    """Six class folders for a model of five classes: class 5 is refused before any image is scored, in one line
    naming the class and the number of classes, exit status 2."""
    from vit_tf.cli import main

    data = tmp_path / "data"
    for c in range(6):
        os.makedirs(data / f"class_{c}")
        write_image(data / f"class_{c}" / "a.png", (40, 36), seed=c)
    out = tmp_path / "out"
    assert main(["faithfulness", str(data), "--model", distilled_dir, "--method", "rollout", "--metrics",
                 "deletion", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("class 5 (folder 'class_5') is out of range for tiny_deit, which has 5 classes (0..4)")
    assert not any("Traceback" in line for line in err) and not out.exists()


MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from vit_tf.cli import main
    data, model, out = sys.argv[1:4]
    common = ["faithfulness", data, "--model", model, "--method", "gae", "--metrics",
              "perturbation,tokens,deletion,road", "--batch-size", "4", "--internal-batch-size", "5", "--dpi", "40"]
    assert main(common + ["--out", out + "/one"]) == 0
    assert main(common + ["--out", out + "/two", "--strategy", "mirrored"]) == 0
    print("REPLICAS", json.load(open(out + "/two/faithfulness.json"))["replicas"])
""")


def test_faithfulness_mirrored_on_two_logical_cpus_equals_one_device(tmp_path, distilled_dir):
    """`--strategy mirrored` over two logical CPUs splits every forward call of variants (5 per call: 2 + 3) over
    both replicas (painted pixels, dropped tokens, ROAD's host-imputed inputs; insertion and SaCo use the painted
    path too) and writes the single-device table: accuracy AUCs equal, deletion AUCs within 2e-6 (6 decimals
    written)."""
    data = labelled_folder(tmp_path / "data", per_class=2)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    run = subprocess.run([sys.executable, "-c", MIRRORED, str(data), distilled_dir, str(tmp_path)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "REPLICAS 2" in run.stdout
    one, two = [list(csv.reader(open(tmp_path / name / "faithfulness.csv"))) for name in ("one", "two")]
    assert len(one) == len(two) == 2 + 2 * 7 and [r[:3] + r[4:] for r in one] == [r[:3] + r[4:] for r in two]
    for a, b in zip(one[1:], two[1:]):
        if a[2].endswith("pixels_auc") or a[2].endswith("tokens_auc") or a[2].startswith("road") or a[0] == "model":
            assert a[3] == b[3], (a, b)
        else:
            assert abs(float(a[3]) - float(b[3])) <= 2e-6, (a, b)


EXPLAIN_MIRRORED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from vit_tf.cli import main
    folder, model, out = sys.argv[1:4]
    common = ["explain", folder, "--model", model, "--method", "gae,rollout,transformer_attribution,smoothgrad",
              "--steps", "3", "--samples", "2",
              "--batch-size", "3", "--internal-batch-size", "4", "--no-figures"]
    assert main(common + ["--out", out + "/one"]) == 0
    assert main(common + ["--out", out + "/two", "--strategy", "mirrored"]) == 0
""")


def test_explain_mirrored_on_two_logical_cpus_equals_one_device(tmp_path, distilled_dir):
    """`vit-tf explain --strategy mirrored` over two logical CPUs (batches of 3 split 2 + 1, a last batch of 2)
    writes the single-device maps of each kind of pass (attention, float64 and pixel-gradient) to 1e-6 (relative)."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        write_image(folder / f"im{i}.png", (48 + 8 * i, 40), seed=i)
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    run = subprocess.run([sys.executable, "-c", EXPLAIN_MIRRORED, str(folder), distilled_dir, str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = [json.loads((tmp_path / name / "explain.json").read_text()) for name in ("one", "two")]
    assert len(one["images"]) == len(two["images"]) == 5
    for a, b in zip(one["images"], two["images"]):
        assert a["image"] == b["image"] and a["target"]["index"] == b["target"]["index"]
        for method in one["methods"]:
            ref = np.asarray(a["maps"][method])
            scale = max(np.abs(ref).max(), 1e-12)
            assert np.abs(np.asarray(b["maps"][method]) - ref).max() <= 1e-6 * scale + 1e-8, method


def test_the_command_line_knows_every_method_and_option():
    """The parser's copy of the method list (kept so that parsing loads no TensorFlow) is the library's, and every
    option it passes is one the method takes."""
    import argparse

    from vit_tf.analysis.explanations import METHODS, OPTIONS

    assert explain_command.METHODS == METHODS
    parser = argparse.ArgumentParser()
    explain_command.add_method_arguments(parser)
    args = parser.parse_args([])
    args.internal_batch_size = 4
    for method in METHODS:
        assert set(explain_command.method_options(args, method)) <= OPTIONS[method], method
