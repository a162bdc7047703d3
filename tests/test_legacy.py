"""`vit_tf.load` on saved artifacts: SavedModels like the keras.io example's (directory, zip, Google Drive id,
TF-Hub handle), our own export, and zips whose entries would escape the extraction directory."""

import os
import sys
import types
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import vit_tf
from vit_tf.saved import SavedModel, UnsafeArchiveError
from conversion_helpers import TINY

DRIVE_ID = "16_1oDm0PeCGJ_KGBG5UKVN7TsAtiRNrN"  # the keras.io example's DINO ViT-B/16 id (never fetched here)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_TF_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def keras_io_like_model():
    """A small Keras model returning [logits, {"transformer_block_{i}_att": softmax maps}] like the example's."""
    images = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(images)
    logits = keras.layers.Dense(5, name="head")(pooled)
    attention = {}
    for i in range(2):
        scores = keras.layers.Reshape((1, 1, 3))(keras.layers.Dense(3, name=f"scores_{i}")(pooled))
        scores = keras.layers.Lambda(lambda s: tf.tile(s, (1, 2, 3, 1)))(scores)  # (B, heads=2, N=3, N=3)
        attention[f"transformer_block_{i}_att"] = keras.layers.Softmax(axis=-1)(scores)
    return keras.Model(images, [logits, attention])


class CallableModule(tf.Module):
    """What a Keras-2 SavedModel restores to: a `__call__` returning the model's nested [outputs, dict]."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec((None, 32, 32, 3), tf.float32)])
    def __call__(self, images):
        return self.model(images)


@pytest.fixture(scope="module")
def legacy_saved_model(tmp_path_factory):
    """(SavedModel directory named like the example's, zip of it, the Keras model, test images)."""
    root = tmp_path_factory.mktemp("legacy")
    model = keras_io_like_model()
    directory = root / "vit_dino_base16"
    tf.saved_model.save(CallableModule(model), str(directory))
    archive = root / "vit_dino_base16.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for dirpath, _, files in os.walk(directory):
            for name in files:
                full = os.path.join(dirpath, name)
                z.write(full, os.path.relpath(full, root))
    images = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    return directory, archive, model, images


def assert_same_as_keras(loaded, model, images):
    outputs, attention = loaded(images)
    ref_logits, ref_attention = model(images)
    np.testing.assert_allclose(np.asarray(outputs), np.asarray(ref_logits), atol=1e-6)
    assert list(attention) == ["transformer_block_0_att", "transformer_block_1_att"]
    for key, value in attention.items():
        np.testing.assert_allclose(np.asarray(value), np.asarray(ref_attention[key]), atol=1e-6)
        np.testing.assert_allclose(np.asarray(value).sum(-1), 1.0, atol=1e-5)


def test_saved_model_directory_and_zip(home, legacy_saved_model):
    directory, archive, model, images = legacy_saved_model
    assert_same_as_keras(vit_tf.load(directory), model, images)

    loaded = vit_tf.load(archive)
    assert_same_as_keras(loaded, model, images)
    assert loaded.path.is_relative_to(home / "legacy") and loaded.path.name == "vit_dino_base16"
    extracted = sorted(p.name for p in (home / "legacy").iterdir())
    vit_tf.load(archive)  # extracted once, reused
    assert sorted(p.name for p in (home / "legacy").iterdir()) == extracted and len(extracted) == 1


def test_signature_only_saved_model_is_split_by_name(tmp_path):
    model = keras_io_like_model()

    class SignatureOnly(tf.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec((None, 32, 32, 3), tf.float32, name="input_1")])
        def serve(self, images):
            logits, attention = self.model(images)
            return {"output_0": logits, **{f"output_1_{k}": v for k, v in attention.items()}}

    module = SignatureOnly()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    loaded = vit_tf.load(tmp_path / "sm")
    assert isinstance(loaded, SavedModel) and loaded.signature is not None
    images = np.random.default_rng(1).standard_normal((3, 32, 32, 3)).astype(np.float32)
    assert_same_as_keras(loaded, model, images)


def test_our_export_loads_with_the_same_contract(tmp_path):
    net = vit_tf.create_model("deit_tiny_distilled_patch16_224", **TINY)
    vit_tf.export_saved_model(net, tmp_path / "sm")
    images = np.random.default_rng(2).standard_normal((2, 32, 32, 3)).astype(np.float32)
    logits, attention = vit_tf.load(tmp_path / "sm")(images)
    ref_logits, ref_attention = net(images)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), atol=1e-5)
    assert list(attention) == list(ref_attention) == ["transformer_block_0_att", "transformer_block_1_att"]
    assert attention["transformer_block_1_att"].shape == (2, 3, 18, 18)


def _zip_with(path, name, data=b"pwned", symlink=False):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model/saved_model.pb", b"")
        info = zipfile.ZipInfo(name)
        if symlink:
            info.external_attr = 0o120777 << 16
        z.writestr(info, data)


@pytest.mark.parametrize("entry,symlink", [("../escape.txt", False), ("model/../../escape.txt", False),
                                           ("/tmp/escape_abs.txt", False), ("model/link", True)])
def test_zip_entries_escaping_the_target_are_refused(home, tmp_path, entry, symlink):
    archive = tmp_path / "evil.zip"
    _zip_with(archive, entry, data=b"/etc" if symlink else b"pwned", symlink=symlink)
    with pytest.raises(UnsafeArchiveError, match="outside"):
        vit_tf.load(archive)
    assert not (home / "escape.txt").exists() and not (home / "legacy" / "escape.txt").exists()
    assert not os.path.exists("/tmp/escape_abs.txt")
    assert list((home / "legacy").iterdir()) == []  # nothing extracted, temporary directory removed


def test_google_drive_id_through_gdown(home, legacy_saved_model, monkeypatch):
    _, archive, model, images = legacy_saved_model
    calls = []

    def download(id=None, output=None, quiet=False, **kwargs):
        calls.append(id)
        with open(output, "wb") as f:
            f.write(archive.read_bytes())
        return output

    monkeypatch.setitem(sys.modules, "gdown", types.SimpleNamespace(download=download))
    assert_same_as_keras(vit_tf.load(DRIVE_ID), model, images)
    assert_same_as_keras(vit_tf.load(f"https://drive.google.com/file/d/{DRIVE_ID}/view?usp=sharing"), model, images)
    assert calls == [DRIVE_ID]  # the second load found the cached zip
    assert (home / "legacy" / "gdrive" / f"{DRIVE_ID}.zip").is_file()

    monkeypatch.setitem(sys.modules, "gdown", None)
    with pytest.raises(ImportError, match=r"vit_tf\[legacy\]"):
        vit_tf.load("gdrive:1ApOdYe4NXxhPhJABefgZ3KVvqsQzhCL7")


def test_tf_hub_handle(legacy_saved_model, monkeypatch):
    directory, _, model, images = legacy_saved_model
    handles = []

    def resolve(handle):
        handles.append(handle)
        return str(directory)

    monkeypatch.setitem(sys.modules, "tensorflow_hub", types.SimpleNamespace(resolve=resolve))
    handle = "https://tfhub.dev/sayakpaul/deit_tiny_patch16_224/1"
    assert_same_as_keras(vit_tf.load(handle), model, images)
    assert handles == [handle]

    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)
    with pytest.raises(ImportError, match=r"vit_tf\[legacy\]"):
        vit_tf.load(handle)


def test_unknown_handle(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an existing path"):
        vit_tf.load(str(tmp_path / "nothing_here"))
