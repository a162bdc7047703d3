"""Bad checkpoints give clear errors naming the file and keys, and leave no output directory behind; `.pth`
pickles that run code are refused; without torch, `.pth` asks for the extra while the other formats still load."""

import os
import pickle
import sys

import numpy as np
import pytest
from conftest import extra

import vit_tf
from conversion.convert import convert
from vit_tf.formats import read_checkpoint
from vit_tf.checkpoints import load_checkpoint
from conversion_helpers import TINY, google_npz, timm_layout

torch = extra("torch")
from safetensors.numpy import save_file  # noqa: E402

NPZ_NAME = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
DEIT_NAME = "deit_tiny_patch16_224.fb_in1k"


def tiny_config(name, **changes):
    return vit_tf.create_model(name, **{**TINY, **changes}).config


def assert_refused(tmp_path, name, checkpoint, match, **overrides):
    out = tmp_path / "out"
    with pytest.raises(vit_tf.CheckpointError, match=match) as info:
        convert(name, out, checkpoint=checkpoint, parity=False, progress=False, **{**TINY, **overrides})
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temporary directory either
    return str(info.value)


def test_truncated_files(tmp_path):
    config = tiny_config(NPZ_NAME)
    google_npz(tmp_path / "full.npz", config)
    save_file(timm_layout(config), str(tmp_path / "full.safetensors"))
    torch.save({"model": {k: torch.from_numpy(v) for k, v in timm_layout(config).items()}}, tmp_path / "full.pth")
    for ext, name in (("npz", NPZ_NAME), ("safetensors", NPZ_NAME), ("pth", DEIT_NAME)):
        data = (tmp_path / f"full.{ext}").read_bytes()
        cut = tmp_path / f"cut.{ext}"
        cut.write_bytes(data[: len(data) // 2])
        message = assert_refused(tmp_path, name, str(cut), "cut")
        assert str(cut) in message


def test_wrong_family(tmp_path):
    resnet = {"conv1.weight": torch.zeros(64, 3, 7, 7), "bn1.weight": torch.ones(64),
              "layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1), "fc.weight": torch.zeros(1000, 2048)}
    torch.save(resnet, tmp_path / "resnet50.pth")
    message = assert_refused(tmp_path, DEIT_NAME, str(tmp_path / "resnet50.pth"), "not? hold a Vision Transformer")
    assert "conv1.weight" in message

    distilled = tiny_config("deit_tiny_distilled_patch16_224.fb_in1k")
    sd = {k: torch.from_numpy(v) for k, v in timm_layout(distilled).items()}
    torch.save({"model": sd}, tmp_path / "distilled.pth")
    message = assert_refused(tmp_path, DEIT_NAME, str(tmp_path / "distilled.pth"), "unexpected keys")
    assert "dist_token" in message and "head_dist.weight" in message and "pos_embed" in message

    np.savez(tmp_path / "other.npz", **{"conv_root/kernel": np.zeros((7, 7, 3, 64), np.float32)})
    assert_refused(tmp_path, NPZ_NAME, str(tmp_path / "other.npz"), "not a Google ViT checkpoint")


def test_missing_and_extra_keys(tmp_path):
    config = tiny_config(NPZ_NAME)
    sd = timm_layout(config)
    del sd["blocks.1.mlp.fc2.bias"]
    sd["blocks.1.ls1.gamma"] = np.ones(48, np.float32)
    save_file(sd, str(tmp_path / "model.safetensors"))
    message = assert_refused(tmp_path, NPZ_NAME, str(tmp_path / "model.safetensors"), "missing keys")
    assert "blocks.1.mlp.fc2.bias" in message and "unexpected keys" in message and "blocks.1.ls1.gamma" in message

    w = google_npz(tmp_path / "ref.npz", config)
    del w["Transformer/encoderblock_1/LayerNorm_2/bias"]
    w["Transformer/encoderblock_1/extra/kernel"] = np.zeros(3, np.float32)
    np.savez(tmp_path / "broken.npz", **w)
    message = assert_refused(tmp_path, NPZ_NAME, str(tmp_path / "broken.npz"), "missing keys")
    assert "Transformer/encoderblock_1/LayerNorm_2/bias" in message
    assert "Transformer/encoderblock_1/extra/kernel" in message

    # A model deeper than the checkpoint: the missing blocks are named.
    google_npz(tmp_path / "shallow.npz", config)
    message = assert_refused(tmp_path, NPZ_NAME, str(tmp_path / "shallow.npz"), "missing keys", depth=3)
    assert "blocks.2.attn.qkv.weight" in message


def test_wrong_shapes(tmp_path):
    wide = tiny_config(NPZ_NAME, embed_dim=96, num_heads=3, mlp_dim=96)
    save_file(timm_layout(wide), str(tmp_path / "wide.safetensors"))
    message = assert_refused(tmp_path, NPZ_NAME, str(tmp_path / "wide.safetensors"), "mis-shaped keys")
    assert "blocks.0.attn.qkv.weight" in message and "cls_token" in message

    w = google_npz(tmp_path / "ref.npz", tiny_config(NPZ_NAME))
    w["Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel"] = np.zeros((48, 48), np.float32)
    np.savez(tmp_path / "flat_query.npz", **w)
    message = assert_refused(tmp_path, NPZ_NAME, str(tmp_path / "flat_query.npz"), "mis-shaped keys")
    assert "MultiHeadDotProductAttention_1/query/kernel" in message

    # timm-layout error on an npz file names the npz keys it came from.
    w = google_npz(tmp_path / "ref2.npz", tiny_config(NPZ_NAME))
    w["Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel"] = np.zeros((48, 40), np.float32)
    w["Transformer/encoderblock_0/MlpBlock_3/Dense_0/bias"] = np.zeros((40,), np.float32)
    np.savez(tmp_path / "narrow_mlp.npz", **w)
    message = assert_refused(tmp_path, NPZ_NAME, str(tmp_path / "narrow_mlp.npz"), "blocks.0.mlp.fc1.weight")
    assert "MlpBlock_3/Dense_0/kernel" in message


def test_nan_weights(tmp_path):
    sd = timm_layout(tiny_config(NPZ_NAME))
    sd["blocks.0.attn.proj.weight"][3, 4] = np.nan
    sd["norm.bias"][0] = np.inf
    save_file(sd, str(tmp_path / "nan.safetensors"))
    message = assert_refused(tmp_path, NPZ_NAME, str(tmp_path / "nan.safetensors"), "NaN or Inf")
    assert "blocks.0.attn.proj.weight" in message and "norm.bias" in message


def test_declared_format_mismatch(tmp_path):
    torch.save({k: torch.from_numpy(v) for k, v in timm_layout(tiny_config(NPZ_NAME)).items()},
               tmp_path / "bare.pth")
    with pytest.raises(vit_tf.CheckpointError, match="declared deit_pth but holds a timm checkpoint"):
        read_checkpoint(tmp_path / "bare.pth", "deit_pth")


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_code_running_pickle_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "deit_tiny_patch16_224-evil.pth"
    payload = {"model": {"cls_token": _RunsCode(marker)}}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    message = assert_refused(tmp_path, DEIT_NAME, str(path), "weights_only=True")
    assert str(path) in message
    assert not marker.exists()


def test_without_torch_pth_asks_for_extra_and_other_formats_load(tmp_path, monkeypatch):
    config = tiny_config(NPZ_NAME)
    sd = timm_layout(config)
    torch.save({"model": {k: torch.from_numpy(v) for k, v in sd.items()}}, tmp_path / "deit.pth")
    save_file(sd, str(tmp_path / "model.safetensors"))
    google_npz(tmp_path / "model.npz", config)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ImportError, match=r"vit_tf\[torch\]"):
        read_checkpoint(tmp_path / "deit.pth")
    model = vit_tf.VisionTransformer(config)
    assert "blocks.1.mlp.fc2.weight" in load_checkpoint(model, tmp_path / "model.safetensors").loaded
    np.testing.assert_array_equal(model.get_layer("norm").beta.numpy(), sd["norm.bias"])
    assert "head.weight" in load_checkpoint(model, tmp_path / "model.npz").loaded


def test_truncated_or_corrupt_keras_file_is_named(tmp_path):
    """A converted directory (or a bare `.keras` file) whose model.keras was cut short or damaged is reported as a
    truncated or corrupt .keras file with what to do, not as Keras's "File not found" about a file that exists."""
    import json
    import zipfile

    model = vit_tf.create_model(DEIT_NAME, **TINY)
    directory = tmp_path / "converted"
    directory.mkdir()
    model.save(directory / "model.keras")
    (directory / "config.json").write_text(json.dumps({"name": DEIT_NAME, "config": model.config.to_dict(),
                                                      "preprocessing": model.recipe.to_dict()}))
    assert isinstance(vit_tf.load(directory), vit_tf.VisionTransformer)
    full = (directory / "model.keras").read_bytes()
    copy = tmp_path / "copy.keras"
    copy.write_bytes(full)
    assert vit_tf.load(copy).config == model.config  # a bare .keras file opens too

    (directory / "model.keras").write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt .keras file") as info:
        vit_tf.load(directory)
    message = str(info.value)
    assert str(directory / "model.keras") in message and "vit-tf convert" in message and "--overwrite" in message
    assert "File not found" not in message

    cut = tmp_path / "cut.keras"
    cut.write_bytes(full[:-100])  # only the end (the zip's directory) missing
    with pytest.raises(ValueError, match=f"truncated or corrupt .keras file {cut}.*not a complete zip archive"):
        vit_tf.load(cut)

    with zipfile.ZipFile(copy) as archive:  # damage the weights inside an intact archive
        info_h5 = archive.getinfo("model.weights.h5")
    data = bytearray(full)
    start = info_h5.header_offset + 30 + len(info_h5.filename) + len(info_h5.extra)
    middle = start + info_h5.compress_size // 2
    data[middle:middle + 16] = bytes(255 - b for b in data[middle:middle + 16])
    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"truncated or corrupt .keras file .*'model.weights.h5' fails its CRC"):
        vit_tf.load(damaged)
