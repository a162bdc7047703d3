"""`vit-tf convert` from the command line: timm .safetensors end to end, the SKIPPED and FAILED parity paths, and
refusals that leave nothing behind."""

import json
import sys

import numpy as np
import pytest
from conftest import extra

import vit_tf
from conversion import reference
from conversion.convert import ATTENTION_TOLERANCE, OUTPUT_TOLERANCE
from conversion_helpers import TINY, cli, random_timm_state_dict, saved_model_outputs, parity_images, timm_outputs

torch = extra("torch")
from safetensors.torch import save_file  # noqa: E402

NAME = "vit_small_patch16_224.augreg_in1k"
TINY_ARGS = ["--img-size", "32"] + [a for k, v in TINY.items() if k != "img_size" for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory):
    """A timm-layout .safetensors (the layout of timm's hub repos) with random weights, and its timm model."""
    config = vit_tf.create_model(NAME, **TINY).config
    state_dict = random_timm_state_dict(config, seed=5)
    path = tmp_path_factory.mktemp("timm") / "model.safetensors"
    save_file(state_dict, str(path))
    model = reference.build_timm_model(config)
    model.load_state_dict(state_dict)
    return path, model, config


def test_convert_safetensors_passes_and_matches_timm(tmp_path, timm_file, capsys):
    path, model, config = timm_file
    out = tmp_path / "out"
    assert cli(["convert", NAME, "--checkpoint", path, "--output", out, *TINY_ARGS]) == 0
    stdout = capsys.readouterr().out
    assert "parity check passed against timm" in stdout

    images = parity_images(config, seed=7)
    ref, ref_attention = timm_outputs(model, images)
    ours = saved_model_outputs(out, images)
    assert np.max(np.abs(ours["logits"] - ref)) <= OUTPUT_TOLERANCE
    for i, attention in enumerate(ref_attention):
        assert np.max(np.abs(ours[f"transformer_block_{i}_att"] - attention)) <= ATTENTION_TOLERANCE

    config_json = json.loads((out / "config.json").read_text())
    assert config_json["name"] == NAME
    assert config_json["preprocessing"]["input_size"] == [32, 32]
    assert config_json["sources"][0]["format"] == "timm"
    assert len(config_json["sources"][0]["sha256"]) == 64
    report = json.loads((out / "report.json").read_text())
    assert report["parity"]["top5_agreement"] == 1.0

    # the converted directory opens with vit_tf.load and gives the same outputs as the SavedModel
    loaded = vit_tf.load(out)
    logits, attention = loaded(images)
    assert loaded.recipe.input_size == (32, 32)
    np.testing.assert_allclose(np.asarray(logits), ours["logits"], atol=1e-5)
    assert sorted(attention) == sorted(k for k in ours if k.endswith("_att"))

    # an existing output is not replaced without --overwrite
    assert cli(["convert", NAME, "--checkpoint", path, "--output", out, *TINY_ARGS]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_without_timm_parity_is_skipped_not_passed(tmp_path, timm_file, capsys, monkeypatch):
    path, _, _ = timm_file
    monkeypatch.setitem(sys.modules, "timm", None)
    out = tmp_path / "out"
    assert cli(["convert", NAME, "--checkpoint", path, "--output", out, *TINY_ARGS]) == 0
    stdout = capsys.readouterr().out
    assert "SKIPPED" in stdout and "passed" not in stdout
    parity = json.loads((out / "report.json").read_text())["parity"]
    assert parity["status"] == "skipped" and "timm" in parity["reason"]


def test_parity_above_tolerance_fails_and_writes_nothing(tmp_path, timm_file, capsys, monkeypatch):
    path, _, _ = timm_file
    run_reference = reference.run_reference

    def off_by_a_little(model, head, images):
        outputs, attention = run_reference(model, head, images)
        attention["transformer_block_1_att"] = attention["transformer_block_1_att"] + 3e-5
        return outputs, attention

    monkeypatch.setattr(reference, "run_reference", off_by_a_little)
    out = tmp_path / "out"
    assert cli(["convert", NAME, "--checkpoint", path, "--output", out, *TINY_ARGS]) == 1
    summary = capsys.readouterr().err.splitlines()[0]
    assert "FAILED" in summary and "transformer_block_1_att 3" in summary  # only the perturbed block is named
    assert "transformer_block_0_att" not in summary and "logits" not in summary
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_checkpoint_from_cli_names_file_and_leaves_nothing(tmp_path, capsys):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    out = tmp_path / "out"
    assert cli(["convert", NAME, "--checkpoint", bad, "--output", out, *TINY_ARGS]) == 2
    assert str(bad) in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
