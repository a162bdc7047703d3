"""`vit_tf.loading`: the one model loader of the command line and the app: converted folders, seeded and labelled
random weights, and every error worded with the caller's own names for its inputs. (Registry names with a local
checkpoint are loaded through it by tests/test_app.py and tests/test_cli_analysis.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from analysis_support import tiny_model, write_converted_dir
from vit_tf import loading

FLAGS = loading.Fields(model="--model", checkpoint="--checkpoint", random_weights="--random-weights",
                       offline="use --checkpoint FILE")


def test_converted_directory(tmp_path):
    model = tiny_model(seed=5)
    folder = write_converted_dir(tmp_path / "tiny", model)
    net, recipe, info = loading.load_model_for_analysis(folder)
    assert info == {"name": "tiny", "source": folder, "random_weights": False}
    assert recipe is net.recipe and recipe.crop_pct == 0.875
    x = np.random.RandomState(0).rand(1, 32, 32, 3).astype(np.float32)
    np.testing.assert_array_equal(net(x)[0], model(x)[0])  # (1, 10) logits
    assert loading.figure_label(info) == "tiny" and not loading.is_random(info)


def test_random_weights_are_labelled():
    # Their seeding (same seed, same weights; another seed, others) is checked through the command line's wrapper in
    # tests/test_cli_hardening.py::test_random_weights_are_seeded_and_say_so.
    _, _, info = loading.load_model_for_analysis("vit_tiny_patch16_224", random_weights=True, seed=3)
    assert info["random_weights"] is True and "random weights, seed 3" in info["source"]
    assert loading.is_random(info) and loading.figure_label(info) == "vit_tiny_patch16_224 [RANDOM WEIGHTS]"
    assert loading.is_random({"name": "x", "source": "random weights, seed 0"})  # info written before the flag


def test_errors_name_the_callers_fields(tmp_path):
    folder = write_converted_dir(tmp_path / "tiny", tiny_model())
    for fields, words in ((loading.ARGUMENTS, "random_weights=True builds a registry architecture; it takes neither "
                                              "checkpoint nor"),
                          (FLAGS, "--random-weights builds a registry architecture; it takes neither --checkpoint")):
        with pytest.raises(ValueError, match=words):
            loading.load_model_for_analysis("vit_tiny_patch16_224", "w.pth", random_weights=True, fields=fields)
        with pytest.raises(ValueError, match=words):
            loading.load_model_for_analysis(folder, random_weights=True, fields=fields)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"--model .*empty: a directory passed as a model must be written by"):
        loading.load_model_for_analysis(str(tmp_path / "empty"), fields=FLAGS)
    (tmp_path / "w.pth").write_bytes(b"")
    with pytest.raises(ValueError, match=r"model .*w.pth: is a file; pass a registry name with checkpoint"):
        loading.load_model_for_analysis(str(tmp_path / "w.pth"))
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.pth"):
        loading.load_model_for_analysis("vit_tiny_patch16_224", str(tmp_path / "nope.pth"))
    for random_weights in (False, True):
        with pytest.raises(KeyError, match="did you mean 'vit_tiny_patch16_224'"):
            loading.load_model_for_analysis("vit_tyni_patch16_224", random_weights=random_weights)


def test_offline_says_what_to_do_instead():
    def offline(model, checkpoint):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    with pytest.raises(OSError) as raised:
        loading.load_model_for_analysis("vit_base_patch16_224", fields=FLAGS, load=offline)
    message = str(raised.value)
    assert message.startswith("could not get the official weights of vit_base_patch16_224 (<urlopen error")
    assert message.endswith("Offline, use --checkpoint FILE")
    with pytest.raises(OSError, match="Offline, pass local weights: checkpoint=FILE"):
        loading.load_model_for_analysis("vit_base_patch16_224", load=offline)

    def missing(model, checkpoint):  # a missing file is its own error, not a download failure
        raise FileNotFoundError("checkpoint not found: x")

    with pytest.raises(FileNotFoundError, match="^checkpoint not found: x$"):
        loading.load_model_for_analysis("vit_base_patch16_224", load=missing)
