"""Loading timm-layout weights: every key accounted for, clear errors, file formats."""

import numpy as np
import pytest
from safetensors.numpy import save_file

import vit_tf
from vit_tf.weights import timm_state_dict
from helpers import max_abs, random_images

TINY = dict(depth=2, img_size=32, patch_size=8, embed_dim=48, num_heads=3, mlp_dim=96, num_classes=4)


@pytest.fixture(scope="module")
def source():
    model = vit_tf.create_model("deit_tiny_distilled_patch16_224", **TINY)
    return model, timm_state_dict(model)


def test_round_trip_through_safetensors_and_pth(source, tmp_path):
    import torch
    model, sd = source
    images = random_images(2, 32, 32)
    expected, _ = model(images)
    save_file(sd, str(tmp_path / "w.safetensors"))
    torch.save({"model": {k: torch.from_numpy(v) for k, v in sd.items()}}, str(tmp_path / "w.pth"))
    for path in ("w.safetensors", "w.pth"):
        other = vit_tf.create_model("deit_tiny_distilled_patch16_224", **TINY,
                                    checkpoint_path=str(tmp_path / path))
        assert max_abs(other(images)[0], expected) == 0.0


def test_missing_unexpected_misshaped_and_nan_keys_are_listed(source):
    _, sd = source
    target = vit_tf.create_model("deit_tiny_distilled_patch16_224", **TINY)
    before = [w.numpy().copy() for w in target.weights]

    bad = dict(sd)
    del bad["blocks.1.mlp.fc2.bias"]
    bad["blocks.9.attn.qkv.weight"] = np.zeros((3, 3), np.float32)
    bad["head.weight"] = np.zeros((5, 48), np.float32)
    bad["norm.weight"] = np.full((48,), np.nan, np.float32)
    with pytest.raises(vit_tf.CheckpointError) as err:
        vit_tf.load_timm_state_dict(target, bad, source="bad.pth")
    msg = str(err.value)
    assert "bad.pth" in msg
    assert "missing keys: ['blocks.1.mlp.fc2.bias']" in msg
    assert "unexpected keys: ['blocks.9.attn.qkv.weight']" in msg
    assert "head.weight: checkpoint (5, 48)" in msg and "model expects (48, 4)" in msg
    assert "NaN or Inf values: ['norm.weight']" in msg
    # Nothing was assigned on failure.
    for b, w in zip(before, target.weights):
        np.testing.assert_array_equal(b, w.numpy())


def test_wrong_family_names_the_difference(source):
    _, sd = source  # distilled checkpoint into a plain DeiT
    plain = vit_tf.create_model("deit_tiny_patch16_224", **TINY)
    with pytest.raises(vit_tf.CheckpointError) as err:
        vit_tf.load_timm_state_dict(plain, sd)
    assert "unexpected keys: ['dist_token', 'head_dist.bias', 'head_dist.weight']" in str(err.value)
    assert "pos_embed: checkpoint (1, 18, 48) cannot be resampled" in str(err.value)


def test_ignore_list_allows_known_extras(source):
    _, sd = source
    target = vit_tf.create_model("deit_tiny_distilled_patch16_224", **TINY)
    consumed = vit_tf.load_timm_state_dict(target, {**sd, "extra.step": np.zeros(1, np.float32)},
                                           ignore={"extra.step"})
    assert "extra.step" not in consumed.loaded and consumed.loaded == set(sd) and consumed.ignored == {"extra.step"}


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        vit_tf.read_state_dict(str(tmp_path / "nope.safetensors"))
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(vit_tf.CheckpointError, match="cut.safetensors"):
        vit_tf.read_state_dict(str(truncated))
    other = tmp_path / "weights.h5"
    other.write_bytes(b"0")
    with pytest.raises(vit_tf.CheckpointError, match="unknown checkpoint extension"):
        vit_tf.read_state_dict(str(other))


def test_pickle_that_runs_code_is_refused(tmp_path):
    import pickle
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": Exploit()}, f)
    with pytest.raises(vit_tf.CheckpointError, match="weights_only=True"):
        vit_tf.read_state_dict(str(path))
    assert not marker.exists()
