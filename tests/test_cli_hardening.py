"""The command line is quiet, quick, and strict: no TensorFlow log lines without --verbose; help, version, argument
errors and `vit-tf models` without TensorFlow; every bad input one line naming the argument or file, exit 2, no
traceback unless --debug; nothing half-written; figures that say what made them (random weights, query token),
at 150 dpi, with colorbars, and readable titles at ViT-B/8 sizes."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis_support import tiny_model, write_converted_dir, write_image
from helpers import run_cli
from vit_tf import cli
from vit_tf import plotting as P
from vit_tf.commands import common

ROOT = Path(__file__).resolve().parents[1]
TF_LOG = re.compile(r"^[IWEF]\d{4} |oneDNN|cuInit|absl|cpu_feature_guard|cudart", re.M)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return write_converted_dir(tmp_path_factory.mktemp("models") / "tiny_vit", tiny_model(img_size=32))


@pytest.fixture(scope="module")
def distilled_dir(tmp_path_factory):
    model = tiny_model("deit_tiny_distilled_patch16_224", img_size=32, seed=1)
    return write_converted_dir(tmp_path_factory.mktemp("models") / "tiny_deit_distilled", model)


def error_line(err, command):
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("vit-tf ")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"vit-tf {command}: error: ")
    return lines[0]


def child_env():
    """The test's environment without the settings that would hide what is tested (log level, devices)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def write_clip(path, frames=3, size=(32, 40)):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (size[1], size[0]))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full(size + (3,), 60 + 40 * i, np.uint8)
        cv2.circle(frame, (8 + 5 * i, size[0] // 2), 5, (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return str(path)


def leftovers(folder):
    """Hidden temporary files or folders left by an interrupted write."""
    return sorted(p.name for p in Path(folder).iterdir() if ".tmp" in p.name)


# -- 1. quiet --------------------------------------------------------------------------------------------------------
def test_no_tensorflow_log_lines_unless_verbose(tmp_path, tiny_dir):
    image = write_image(tmp_path / "photo.png", (40, 36))
    command = [sys.executable, "-m", "vit_tf", "probe", image, "--model", tiny_dir, "--dpi", "20", "--out"]
    quiet = subprocess.run(command + [str(tmp_path / "quiet")], cwd=ROOT, env=child_env(), capture_output=True,
                           text=True, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert (tmp_path / "quiet" / "summary.json").is_file()
    assert not TF_LOG.search(quiet.stderr), quiet.stderr
    # The same command with --verbose shows TensorFlow's messages: the pattern above does catch them here.
    loud = subprocess.run(command + [str(tmp_path / "loud"), "--verbose"], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=300)
    assert loud.returncode == 0, loud.stderr
    assert TF_LOG.search(loud.stderr), loud.stderr


# -- 2. quick --------------------------------------------------------------------------------------------------------
QUICK = r"""
import contextlib, io, json, sys, time
start = time.perf_counter()
from vit_tf import cli
codes = {}
for argv in json.loads(sys.argv[1]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes[" ".join(argv)] = cli.main(argv)
print(json.dumps({"codes": codes, "seconds": time.perf_counter() - start,
                  "loaded": sorted(m for m in ("tensorflow", "keras", "torch", "matplotlib") if m in sys.modules)}))
"""


def test_help_version_errors_and_models_do_not_import_tensorflow(tmp_path):
    expected = {
        ("--help",): 0, ("--version",): 0, ("models",): 0, ("models", "--pretrained", "dino"): 0,
        **{(name, "--help"): 0 for name in cli.COMMANDS},
        ("frobnicate",): 2,
        ("probe", "--model", "vit_tiny_patch16_224", "--out", "o", "--dpi", "0"): 2,
        ("eval", "--model", "vit_tiny_patch16_224", "--data", "d", "--limit", "-2"): 2,
        ("convert", "deit_tiny_patch16_224.fb_in1k", "--output", str(tmp_path / "c"), "--img-size", "0"): 2,
        # checks that run after parsing, still before TensorFlow: registry names, --set fields, files
        ("probe", "--model", "vit_tinny_patch16_224", "--out", str(tmp_path / "o")): 2,
        ("convert", "deit_tiny_patch16_224.fb_in1k", "--output", str(tmp_path / "c"), "--set", "depht=2"): 2,
        ("probe", str(tmp_path / "missing.jpg"), "--model", "vit_tiny_patch16_224", "--out", "o"): 2,
    }
    argvs = [list(a) for a in expected]
    done = subprocess.run([sys.executable, "-c", QUICK, json.dumps(argvs)], cwd=ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == [], f"parsing imported {result['loaded']}"
    assert result["codes"] == {" ".join(a): code for a, code in expected.items()}
    assert result["seconds"] < 3.0  # generous: guards against importing TensorFlow, not a benchmark
    assert not (tmp_path / "c").exists() and not (tmp_path / "o").exists()


def test_version_help_defaults_and_global_flags(capsys):
    import vit_tf

    code, out, _ = run_cli(capsys, "--version")
    assert code == 0 and out.strip() == f"vit-tf {vit_tf.__version__}"
    code, out, _ = run_cli(capsys, "probe", "--help")
    assert code == 0 and "(default: 150)" in out and "(default: 0)" in out  # --dpi, --seed
    code, out, _ = run_cli(capsys, "eval", "--help")
    assert code == 0 and "(default: 64)" in out
    parser = cli.build_parser()
    base = ["probe", "--model", "m", "--out", "o"]
    assert not parser.parse_args(base).verbose and not parser.parse_args(base).debug
    assert parser.parse_args(["-v", *base]).verbose and parser.parse_args([*base, "--verbose"]).verbose
    assert parser.parse_args([*base, "--debug"]).debug and parser.parse_args(["--debug", *base]).debug


# -- 3. models -------------------------------------------------------------------------------------------------------
def table(out):
    return {row[0]: row for row in (re.split(r"\s{2,}", line.strip()) for line in out.splitlines()[1:])
            if len(row) == 4}


def test_models_lists_names_sizes_sources_and_top1(capsys):
    from vit_tf.registry import ARCHITECTURES, WEIGHTS, list_models

    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    rows = table(out)
    assert sorted(rows) == list_models()
    assert rows["vit_base_patch16_384"][1:] == ["384x384", "architecture", "-"]
    augreg = "vit_base_patch16_224.augreg_in21k_ft_in1k"
    assert rows[augreg][1:] == ["224x224", "Google .npz", f"{WEIGHTS[augreg].top1:.1f}"]
    assert rows["deit_tiny_patch16_224.fb_in1k"][2:] == ["DeiT .pth", "72.2"]
    assert rows["vit_small_patch16_224.dino"][3] == "74.5 (k-NN)"
    assert rows["vit_base_patch16_224.orig_in21k"][3] == "-"

    code, out, _ = run_cli(capsys, "models", "vit_base_patch16_224", "--pretrained")
    rows = table(out)
    assert code == 0 and rows and all(name.startswith("vit_base_patch16_224.") for name in rows)
    assert not set(rows) & set(ARCHITECTURES)
    code, out, _ = run_cli(capsys, "models", "deit_*_distilled_*")
    assert code == 0 and set(table(out)) == set(list_models("deit_*_distilled_*"))

    code, _, err = run_cli(capsys, "models", "vit_tinny_patch16_224")
    assert code == 2 and "no model matches 'vit_tinny_patch16_224'" in error_line(err, "models")


# -- 4. bad input: one line naming the argument or file, exit 2 ------------------------------------------------------
@pytest.fixture()
def files(tmp_path):
    folder = tmp_path / "a_folder.jpg"
    folder.mkdir()
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    return {"dir": str(folder), "text": str(text), "clip": write_clip(tmp_path / "clip.mp4"),
            "out": str(tmp_path / "out"), "mp4": str(tmp_path / "out.mp4"), "tmp": str(tmp_path)}


CONVERT = ["convert", "deit_tiny_patch16_224.fb_in1k", "--output", "{out}"]
BAD = {
    "set-unknown-field": (CONVERT + ["--set", "depht=2"],
                          ["--set depht=2", "unknown ViTConfig field 'depht'", "did you mean 'depth'",
                           "valid fields: img_size, patch_size, embed_dim, depth"]),
    "set-wrong-type": (CONVERT + ["--set", "depth=2.5"], ["--set depth=2.5", "depth takes int"]),
    "img-size-negative": (CONVERT + ["--img-size", "-16"], ["argument --img-size", "at least 1, got -16"]),
    "img-size-zero": (CONVERT + ["--img-size", "0"], ["argument --img-size", "at least 1, got 0"]),
    "img-size-not-multiple": (CONVERT + ["--img-size", "100"],
                              ["--img-size 100", "not a multiple of the patch size 16", "96 or 112"]),
    "eval-limit-negative": (["eval", "--model", "{model}", "--data", "{tmp}", "--limit", "-2"],
                            ["argument --limit", "at least 1"]),
    "eval-limit-zero": (["eval", "--model", "{model}", "--data", "{tmp}", "--limit", "0"], ["argument --limit"]),
    "eval-batch-size": (["eval", "--model", "{model}", "--data", "{tmp}", "--batch-size", "0"],
                        ["argument --batch-size", "at least 1, got 0"]),
    "eval-output-folder": (["eval", "--model", "{model}", "--data", "{tmp}", "--output", "{dir}"],
                           ["--output", "a_folder.jpg", "is a folder"]),
    "distance-batch-size": (["distance", "{tmp}", "--model", "{model}", "--out", "{out}", "--batch-size", "0"],
                            ["argument --batch-size"]),
    "probe-dpi": (["probe", "--model", "{model}", "--out", "{out}", "--dpi", "0"], ["argument --dpi"]),
    "probe-block": (["probe", "--model", "{model}", "--out", "{out}", "--block", "2"],
                    ["--block 2", "out of range", "2 blocks"]),
    "probe-token": (["probe", "--model", "{model}", "--out", "{out}", "--token", "dist"],
                    ["--token dist", "no distillation token"]),
    "video-block": (["video", "{clip}", "--model", "{model}", "--out", "{mp4}", "--block", "99"],
                    ["--block 99", "out of range for", "tiny_vit", "2 blocks"]),
    "video-head": (["video", "{clip}", "--model", "{model}", "--out", "{mp4}", "--head", "3"],
                   ["--head 3", "3 heads"]),
    "video-out-suffix": (["video", "{clip}", "--model", "{model}", "--out", "{out}"], ["--out", ".mp4"]),
    "misspelled-model": (["probe", "--model", "vit_tinny_patch16_224", "--out", "{out}"],
                         ["unknown model 'vit_tinny_patch16_224'", "did you mean 'vit_tiny_patch16_224'"]),
    "folder-as-image": (["probe", "{dir}", "--model", "{model}", "--out", "{out}"],
                        ["a_folder.jpg", "is a folder, not an image file"]),
    "unreadable-image": (["probe", "{text}", "--model", "{model}", "--out", "{out}"],
                         ["notes.jpg", "not a readable image"]),
    "missing-checkpoint": (["probe", "--model", "vit_tiny_patch16_224", "--checkpoint", "{tmp}/nope.npz",
                            "--out", "{out}"], ["checkpoint not found", "nope.npz"]),
    "file-as-image-folder": (["distance", "{text}", "--model", "{model}", "--out", "{out}"],
                             ["notes.jpg", "is a file"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, capsys, files, tiny_dir):
    argv, words = BAD[case]
    argv = [a.format(model=tiny_dir, **files) for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2, err
    line = error_line(err, argv[0])
    for word in words:
        assert word in line, line
    assert not os.path.exists(files["out"]) and not os.path.exists(files["mp4"])
    assert leftovers(files["tmp"]) == []


def test_distillation_token_needs_a_distilled_model():
    from types import SimpleNamespace

    registers = SimpleNamespace(head_type="token", num_prefix_tokens=5, depth=12)  # DINOv2 with 4 registers
    with pytest.raises(ValueError, match="--token dist: m has no distillation token"):
        common.check_token(registers, "dist", "m")
    common.check_token(SimpleNamespace(head_type="distilled", num_prefix_tokens=2), "dist", "m")
    common.check_token(registers, "cls", "m")


def test_debug_shows_the_traceback(capsys, files, tiny_dir):
    with pytest.raises(IsADirectoryError):
        cli.main(["probe", files["dir"], "--model", tiny_dir, "--out", files["out"], "--debug"])
    with pytest.raises(KeyError, match="did you mean 'vit_tiny_patch16_224'"):
        cli.main(["--debug", "probe", "--model", "vit_tinny_patch16_224", "--out", files["out"]])


def test_unexpected_errors_are_one_line_with_exit_1(capsys, monkeypatch, tiny_dir, tmp_path):
    import vit_tf.commands.probe as probe_command

    def broken(args):
        raise RuntimeError("something inside broke\nsecond line")

    monkeypatch.setattr(probe_command, "run", broken)
    code, _, err = run_cli(capsys, "probe", "--model", tiny_dir, "--out", tmp_path / "o")
    assert code == 1
    line = error_line(err, "probe")
    assert "unexpected RuntimeError: something inside broke" in line and "--debug" in line
    assert "second line" not in err


# -- 5. nothing half-written -----------------------------------------------------------------------------------------
def test_distance_without_readable_images_leaves_no_output(capsys, tmp_path, tiny_dir):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_text("text")
    out = tmp_path / "results" / "out"
    code, _, err = run_cli(capsys, "distance", junk, "--model", tiny_dir, "--out", out)
    assert code == 2 and "no readable images" in error_line(err, "distance")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk"]  # not even the parent folder


def test_video_block_out_of_range_after_loading_leaves_no_file(capsys, monkeypatch, tmp_path, tiny_dir):
    import vit_tf.commands.video as video_command

    clip = write_clip(tmp_path / "clip.mp4")
    monkeypatch.setattr(video_command, "model_config", lambda model: None)  # only the loaded model can tell
    code, _, err = run_cli(capsys, "video", clip, "--model", tiny_dir, "--out", tmp_path / "out.mp4", "--block", "99")
    assert code == 2 and "--block 99: out of range for" in error_line(err, "video")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_attention_video_writes_nothing_on_failure(tmp_path, monkeypatch):
    import vit_tf.video as V
    from vit_tf.registry import Recipe

    model, recipe = tiny_model(img_size=32), Recipe(input_size=(32, 32))
    clip = write_clip(tmp_path / "clip.mp4", frames=5)
    with pytest.raises(ValueError, match="block 99"):
        V.attention_video(clip, tmp_path / "a.mp4", model, recipe, block=99)
    real, calls = V.frame_heatmaps, []

    def fails_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(V, "frame_heatmaps", fails_on_second_batch)
    with pytest.raises(RuntimeError):
        V.attention_video(clip, tmp_path / "b.mp4", model, recipe, batch_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]
    monkeypatch.setattr(V, "frame_heatmaps", real)
    info = V.attention_video(clip, tmp_path / "c.mp4", model, recipe, batch_size=2)
    assert info["frames"] == 5 and sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4", "clip.mp4"]


def interrupt_after(monkeypatch, n, error):
    real, saved = P.save_figure, []

    def save(fig, path, dpi=P.DEFAULT_DPI):
        if len(saved) == n:
            raise error
        saved.append(path)
        return real(fig, path, dpi)

    monkeypatch.setattr(P, "save_figure", save)
    return saved


def test_interrupted_probe_leaves_no_partial_folder(capsys, monkeypatch, tmp_path, tiny_dir):
    image = write_image(tmp_path / "photo.png", (40, 36))
    saved = interrupt_after(monkeypatch, 3, KeyboardInterrupt())
    code, _, err = run_cli(capsys, "probe", image, "--model", tiny_dir, "--out", tmp_path / "out")
    assert code == 130 and "interrupted" in err and len(saved) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_failed_probe_into_an_existing_folder_keeps_it_as_it_was(capsys, monkeypatch, tmp_path, tiny_dir):
    image = write_image(tmp_path / "photo.png", (40, 36))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    interrupt_after(monkeypatch, 4, OSError("No space left on device"))
    code, _, err = run_cli(capsys, "probe", image, "--model", tiny_dir, "--out", out)
    assert code == 2 and "No space left on device" in error_line(err, "probe")
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    monkeypatch.undo()
    code, _, err = run_cli(capsys, "probe", image, "--model", tiny_dir, "--out", out, "--dpi", "20")
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert "keep.txt" in names and "summary.json" in names and "heatmaps.png" in names
    assert leftovers(out) == [] and (out / "keep.txt").read_text() == "mine"


def test_eval_output_is_written_whole_or_not_at_all(capsys, tmp_path, tiny_dir):
    from vit_tf.evaluation import imagenet_synsets

    data = tmp_path / "val"
    for i, label in enumerate((3, 7)):
        (data / imagenet_synsets()[label]).mkdir(parents=True)
        write_image(data / imagenet_synsets()[label] / f"img{i}.JPEG", (40, 36), seed=i)
    output = tmp_path / "results" / "eval.json"
    code, stdout, err = run_cli(capsys, "eval", "--model", tiny_dir, "--data", data, "--output", output, "--quiet")
    assert code == 0, err
    assert json.loads(output.read_text()) == json.loads(stdout) and json.loads(stdout)["images"] == 2
    assert leftovers(output.parent) == []

    empty = tmp_path / "empty"
    (empty / imagenet_synsets()[0]).mkdir(parents=True)
    failed = tmp_path / "elsewhere" / "eval.json"
    code, _, err = run_cli(capsys, "eval", "--model", tiny_dir, "--data", empty, "--output", failed, "--quiet")
    assert code == 2, err
    error_line(err, "eval")
    assert not failed.parent.exists()


# -- 6. figures a reader can trust -----------------------------------------------------------------------------------
def titles(fig):
    """Every title of a figure: suptitle, axes titles, colorbar labels."""
    texts = [fig._suptitle.get_text()] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.title.get_text(), ax.get_ylabel() if ax.get_label() == "<colorbar>" else ""]
    return [" ".join(t.split()) for t in texts if t]  # titles are wrapped to the figure's width


def record_figures(monkeypatch):
    real, figures = P.save_figure, {}

    def save(fig, path, dpi=P.DEFAULT_DPI):
        figures[os.path.basename(path)[:-4]] = (fig, dpi)
        return real(fig, path, dpi)

    monkeypatch.setattr(P, "save_figure", save)
    return figures


def test_random_weights_are_seeded_and_say_so():
    first = common.load_for_analysis("vit_tiny_patch16_224", random_weights=True)
    again = common.load_for_analysis("vit_tiny_patch16_224", random_weights=True)
    other = common.load_for_analysis("vit_tiny_patch16_224", random_weights=True, seed=1)
    for a, b in zip(first[0].get_weights(), again[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first[0].get_weights(), other[0].get_weights()))
    assert "random weights" in first[2]["source"] and "RANDOM WEIGHTS" in common.figure_label(first[2])
    assert common.figure_label({"name": "x", "source": "official weights"}) == "x"


def test_random_weight_probe_is_repeatable_and_titled(capsys, monkeypatch, tmp_path):
    from vit_tf import analysis as A
    from vit_tf.commands.probe import sample_image

    figures = record_figures(monkeypatch)
    code, _, err = run_cli(capsys, "probe", "--model", "vit_tiny_patch16_224", "--random-weights", "--dpi", "10",
                           "--out", tmp_path / "a")
    assert code == 0, err
    assert len(figures) == 9
    for name, (fig, _) in figures.items():
        assert "RANDOM WEIGHTS" in " ".join(titles(fig)), (name, titles(fig))
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert "random weights" in summary["weights"]
    # A second build with the default seed predicts the same classes with the same probabilities.
    net, recipe, _ = common.load_for_analysis("vit_tiny_patch16_224", random_weights=True)
    x, _ = A.prepare(sample_image(), recipe, 16)
    again = A.top_k(A.KerasSource(net)(x)[0]["logits"], 5)[0]
    assert [p["index"] for p in again] == [p["index"] for p in summary["prediction"]]
    np.testing.assert_allclose([p["probability"] for p in again], [p["probability"] for p in summary["prediction"]],
                               rtol=1e-5)


def test_figures_dpi_colorbars_and_query_token(capsys, monkeypatch, tmp_path, distilled_dir):
    image = write_image(tmp_path / "photo.png", (40, 36))
    figures = record_figures(monkeypatch)
    code, _, err = run_cli(capsys, "probe", image, "--model", distilled_dir, "--out", tmp_path / "o", "--token", "dist")
    assert code == 0, err
    with_colorbar = {name for name, (fig, _) in figures.items()
                     if any(ax.get_label() == "<colorbar>" for ax in fig.axes)}
    assert {"heatmaps", "attention_grid", "rollout", "position_similarity", "position_cosine"} <= with_colorbar
    for name in ("heatmaps", "attention_grid", "rollout", "masks"):
        assert "distillation token" in " ".join(titles(figures[name][0])), name
    fig, dpi = figures["heatmaps"]
    assert dpi == 150
    with Image.open(tmp_path / "o" / "heatmaps.png") as im:
        assert abs(im.size[0] - fig.get_figwidth() * 150) < 1 and abs(im.size[1] - fig.get_figheight() * 150) < 1
    figures.clear()
    assert run_cli(capsys, "probe", image, "--model", distilled_dir, "--out", tmp_path / "c", "--dpi", "20")[0] == 0
    assert "class token" in " ".join(titles(figures["heatmaps"][0]))


def vit_b8_result():
    """A ProbeResult shaped like ViT-B/8 at 224: 28 x 28 grid, 12 blocks of 12 heads, long weight name."""
    from vit_tf.analysis.probe import ProbeResult

    rng = np.random.RandomState(0)
    g, heads, blocks, p = 28, 12, 12, 8
    grid = rng.rand(blocks, heads, g, g)
    return ProbeResult(
        name="vit_base_patch8_224.augreg_in21k_ft_in1k", image=(rng.rand(224, 224, 3) * 255).astype(np.uint8),
        outputs={}, attention={}, patch_size=p, num_prefix_tokens=1, grid_size=(g, g),
        mean_distance=rng.rand(blocks, heads) * 100, uniform_distance=80.0, rollout=rng.rand(g, g),
        rollout_settings={"token": "cls", "head_fusion": "mean", "discard_ratio": 0.9, "start_block": 0},
        heatmap_block=11, heatmaps=grid[-1], masks=grid[-1] > 0.5, mask_keep=0.6, grid=grid,
        filters=rng.rand(128, p, p, 3), filter_pca=(rng.rand(28, p, p, 3), np.linspace(0.2, 0.01, 28)),
        pos_similarity=rng.rand(g * g, g * g), pos_cosine=rng.rand(g, g, g, g) * 2 - 1, predictions=None)


def test_titles_do_not_overlap_at_vit_b8_sizes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figures = P.render_probe_figures(vit_b8_result(), label="vit_base_patch8_224.augreg_in21k_ft_in1k [RANDOM WEIGHTS]")
    assert len(figures) == 9
    for name, fig in figures.items():
        fig.set_dpi(40)  # layout is in inches; a low dpi keeps the test quick
        FigureCanvasAgg(fig).draw()
        renderer = fig.canvas.get_renderer()
        page = fig.bbox
        texts = ([fig._suptitle] if fig._suptitle is not None else []) + [ax.title for ax in fig.axes] + \
            [ax.yaxis.label for ax in fig.axes] + [ax.xaxis.label for ax in fig.axes]
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts if t.get_text()]
        assert boxes, name
        for text, box in boxes:  # on the canvas
            assert box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y0 >= page.y0 - 1 \
                and box.y1 <= page.y1 + 1, (name, text)
        for i, (a, box_a) in enumerate(boxes):  # no two titles overlap
            for b, box_b in boxes[i + 1:]:
                assert not box_a.overlaps(box_b), (name, a, b)
        panels = [ax.get_window_extent(renderer) for ax in fig.axes]
        for text, box in boxes:  # no title runs into a panel (its own sits above it)
            for panel in panels:
                overlap = min(box.x1, panel.x1) - max(box.x0, panel.x0), min(box.y1, panel.y1) - max(box.y0, panel.y0)
                assert min(overlap) <= 1, (name, text)
