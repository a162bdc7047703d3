"""Every official format: a random checkpoint in the official layout, loaded by timm with timm's own loader,
converted by `convert`, the SavedModel reloaded and compared with timm (logits <= 1e-4, attention <= 1e-5)."""

import json
import os

import numpy as np
import pytest
from conftest import extra

import vit_tf
from conversion.convert import ATTENTION_TOLERANCE, OUTPUT_TOLERANCE, convert
from conversion.reference import build_timm_model
from conversion_helpers import (TINY, dinov2_official, google_npz, random_timm_state_dict, saved_model_outputs,
                                parity_images, timm_outputs)

torch = extra("torch")
extra("timm")
from timm.models.vision_transformer import _load_weights, checkpoint_filter_fn  # noqa: E402


def tiny_config(name, **changes):
    return vit_tf.create_model(name, **{**TINY, **changes}).config


def compare_with_timm(out_dir, config, timm_model, head=None, main="logits"):
    """The SavedModel in out_dir against timm on fresh inputs; also the report convert wrote."""
    images = parity_images(config)
    ref, ref_attention = timm_outputs(timm_model, images, head)
    ours = saved_model_outputs(out_dir, images)
    assert np.max(np.abs(ours[main] - ref)) <= OUTPUT_TOLERANCE
    assert len(ref_attention) == config.depth
    for i, attention in enumerate(ref_attention):
        assert ours[f"transformer_block_{i}_att"].shape == attention.shape
        assert np.max(np.abs(ours[f"transformer_block_{i}_att"] - attention)) <= ATTENTION_TOLERANCE
    with open(os.path.join(out_dir, "report.json")) as f:
        report = json.load(f)
    parity = report["parity"]
    assert parity["status"] == "passed"
    assert set(parity["attention_max_abs_diff"]) == {f"transformer_block_{i}_att" for i in range(config.depth)}
    assert max(parity["attention_max_abs_diff"].values()) <= ATTENTION_TOLERANCE
    assert parity["outputs_max_abs_diff"][main] <= OUTPUT_TOLERANCE
    return report


NPZ_CASES = {
    # 2020 release layout, no prefix.
    "vit_2020": dict(npz=dict(), timm=dict()),
    # AugReg with the optimizer-state prefix, checkpoint grid 2x2 resampled to the model's 4x4.
    "augreg_opt_target_resampled": dict(npz=dict(prefix="opt/target/", grid=(2, 2)), timm=dict(), grid=(2, 2)),
    # big_vision: params/ prefix, MultiHeadDotProductAttention_0 / MlpBlock_0 naming, blocks stacked over depth,
    # no position for the class token.
    "big_vision_scanned": dict(npz=dict(prefix="params/", style="big_vision", scanned=True, grid_only_pos=True),
                               timm=dict(no_embed_class=True)),
}


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_google_npz_matches_timm(tmp_path, case):
    spec = NPZ_CASES[case]
    name = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    config = tiny_config(name)
    path = tmp_path / "ckpt.npz"
    google_npz(path, config, **spec["npz"])
    report = convert(name, tmp_path / "out", checkpoint=str(path), progress=False, **TINY)
    assert report["sources"][0]["format"] == "vit_npz"

    if "grid" in spec:  # timm's own path for another grid: load natively, then checkpoint_filter_fn resamples
        native = build_timm_model(config, img_size=[g * config.patch_size for g in spec["grid"]])
        _load_weights(native, str(path))
        model = build_timm_model(config)
        model.load_state_dict(checkpoint_filter_fn(native.state_dict(), model))
    else:
        model = build_timm_model(config, **spec["timm"])
        _load_weights(model, str(path))
    compare_with_timm(tmp_path / "out", config, model)
    for f in ("saved_model/saved_model.pb", "model.keras", "config.json", "report.json"):
        assert (tmp_path / "out" / f).exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers


def test_pre_logits_kept_and_matches_reference(tmp_path):
    """The 2020 ImageNet-21k layout: tanh representation layer between class token and head is kept."""
    name = "vit_base_patch16_224.orig_in21k"
    config = tiny_config(name, representation_size=32)
    path = tmp_path / "i21k.npz"
    w = google_npz(path, config, pre_logits=32)
    convert(name, tmp_path / "out", checkpoint=str(path), progress=False, **TINY, representation_size=32)

    backbone = build_timm_model(config)  # timm no longer builds pre_logits: backbone only (num_classes=0)
    _load_weights(backbone, str(path))

    def head(x):
        cls = backbone(x).numpy()
        return torch.from_numpy(np.tanh(cls @ w["pre_logits/kernel"] + w["pre_logits/bias"]) @ w["head/kernel"]
                                + w["head/bias"])
    compare_with_timm(tmp_path / "out", config, backbone, head)


def test_pre_logits_refused_without_representation_layer(tmp_path):
    name = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
    config = tiny_config(name)
    path = tmp_path / "i21k.npz"
    google_npz(path, config, pre_logits=48)
    with pytest.raises(vit_tf.CheckpointError, match=r"pre_logits.*representation_size=48"):
        convert(name, tmp_path / "out", checkpoint=str(path), progress=False, parity=False, **TINY)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["deit_tiny_patch16_224.fb_in1k", "deit_tiny_distilled_patch16_224.fb_in1k"])
def test_deit_pth_matches_timm(tmp_path, name):
    config = tiny_config(name)
    state_dict = random_timm_state_dict(config)
    torch.save({"model": state_dict}, tmp_path / "deit.pth")
    report = convert(name, tmp_path / "out", checkpoint=str(tmp_path / "deit.pth"), progress=False, **TINY)
    assert report["sources"][0]["format"] == "deit_pth"
    model = build_timm_model(config)
    model.load_state_dict(state_dict)
    report = compare_with_timm(tmp_path / "out", config, model)
    if config.head_type == "distilled":
        assert {"cls_logits", "dist_logits"} <= set(report["parity"]["outputs_max_abs_diff"])


def test_dino_backbone_pth_matches_timm(tmp_path):
    name = "vit_small_patch16_224.dino"
    config = tiny_config(name, num_classes=0)
    state_dict = random_timm_state_dict(config)
    torch.save(state_dict, tmp_path / "dino.pth")  # bare state dict, no head
    report = convert(name, tmp_path / "out", checkpoint=str(tmp_path / "dino.pth"), progress=False,
                     **{**TINY, "num_classes": 0})
    assert report["sources"][0]["format"] == "dino_pth"
    model = build_timm_model(config)
    model.load_state_dict(state_dict)
    compare_with_timm(tmp_path / "out", config, model, main="features")


@pytest.mark.parametrize("name,n_last,avgpool", [("vit_small_patch16_224.dino_linear", 4, False),
                                                 ("vit_base_patch16_224.dino_linear", 1, True)])
def test_dino_linear_matches_eval_linear(tmp_path, name, n_last, avgpool):
    changes = dict(depth=4)
    config = tiny_config(name, **changes)
    backbone_sd = random_timm_state_dict(config)  # head_type dino_*: timm model has no head
    in_dim = config.embed_dim * (2 if avgpool else n_last)
    rng = np.random.default_rng(3)
    linear = {"module.linear.weight": torch.from_numpy(rng.normal(0, 0.2, (10, in_dim)).astype(np.float32)),
              "module.linear.bias": torch.from_numpy(rng.normal(0, 0.2, 10).astype(np.float32))}
    torch.save(backbone_sd, tmp_path / "backbone.pth")
    torch.save({"epoch": 100, "state_dict": linear, "best_acc": 77.0}, tmp_path / "linear.pth")
    report = convert(name, tmp_path / "out", checkpoint=[str(tmp_path / "backbone.pth"), str(tmp_path / "linear.pth")],
                     progress=False, **{**TINY, **changes})
    assert [s["format"] for s in report["sources"]] == ["dino_pth", "dino_linear_pth"]

    model = build_timm_model(config)
    model.load_state_dict(backbone_sd)

    def head(x):  # facebookresearch/dino eval_linear.py, via timm's DINO-compatible get_intermediate_layers
        layers = model.get_intermediate_layers(x, n_last, return_prefix_tokens=True, norm=True)
        output = torch.cat([prefix[:, 0] for _, prefix in layers], dim=-1)
        if avgpool:
            output = torch.cat((output.unsqueeze(-1), layers[-1][0].mean(dim=1).unsqueeze(-1)), dim=-1)
            output = output.reshape(output.shape[0], -1)
        return torch.nn.functional.linear(output, linear["module.linear.weight"], linear["module.linear.bias"])
    compare_with_timm(tmp_path / "out", config, model, head)


def test_dinov2_pth_matches_timm(tmp_path):
    """`vit-tf convert` of official DINOv2 files (ViT-g with registers: SwiGLU `w12`/`w3`, register tokens, the
    class position folded; and the hub's 4-layer ImageNet head) proven against timm's DINOv2 model loading the same
    files with timm's loader, per output and per block, at a grid other than the file's (5x5 from 4x4)."""
    name, changes, size = "vit_giant_patch14_reg4_dinov2.lvd142m_linear4", dict(depth=4, mlp_dim=64), 40
    config = tiny_config(name, **changes)
    backbone = dinov2_official(config, seed=4)
    torch.save(backbone, tmp_path / "backbone.pth")
    files = [str(tmp_path / "backbone.pth")]
    if config.num_classes:
        rng = np.random.default_rng(5)
        width = 5 * config.embed_dim  # 4 class tokens + the patch mean
        torch.save({"weight": torch.from_numpy(rng.normal(0, 0.05, (10, width)).astype(np.float32)),
                    "bias": torch.from_numpy(rng.normal(0, 0.2, 10).astype(np.float32))}, tmp_path / "head.pth")
        files.append(str(tmp_path / "head.pth"))
    report = convert(name, tmp_path / "out", checkpoint=files, progress=False, **{**TINY, **changes, "img_size": size})
    assert [s["format"] for s in report["sources"]] == ["dinov2_pth", "dinov2_linear_pth"][:len(files)]
    parity = report["parity"]
    assert parity["status"] == "passed" and parity["reference"].startswith("timm ")
    assert set(parity["attention_max_abs_diff"]) == {f"transformer_block_{i}_att" for i in range(config.depth)}
    assert max(parity["attention_max_abs_diff"].values()) <= ATTENTION_TOLERANCE
    assert parity["outputs_max_abs_diff"]["logits" if config.num_classes else "features"] <= OUTPUT_TOLERANCE
    rule = "timm_antialias" if config.num_register_tokens else "bicubic_offset"
    assert report["config"]["pos_embed_interpolation"] == rule and report["config"]["img_size"] == [size, size]

    # The converted model against timm on fresh inputs, timm holding the official file resampled by the official
    # rule (written in torch in conversion.reference).
    from conversion.reference import load_reference

    model, head = load_reference(tiny_config(name, **changes, img_size=size),
                                 list(zip(files, ["dinov2_pth", "dinov2_linear_pth"])))
    compare_with_timm(tmp_path / "out", tiny_config(name, **changes, img_size=size), model, head,
                      main="logits" if config.num_classes else "features")


@pytest.mark.parametrize("mode", ["bicubic_offset", "bicubic", "timm_antialias"])
def test_reference_resamples_by_the_source_rules(mode):
    """The reference's torch resampling (`resample_like_source`) is each source's own: the official DINO/DINOv2
    formula (`helpers.official_interpolate`), transformers' / DeiT's `F.interpolate(size=...)`, timm's
    `resample_abs_pos_embed`; prefix rows kept, the offset rule a no-op on the file's own grid."""
    from timm.layers import resample_abs_pos_embed

    from conversion.reference import resample_like_source
    from helpers import official_interpolate

    pos = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1 + 16, 8)).astype(np.float32))
    for new in ((6, 5), (3, 3), (4, 4)):
        ours = resample_like_source(pos, (4, 4), new, 1, mode)
        if mode == "timm_antialias":
            expected = resample_abs_pos_embed(pos, new_size=list(new), old_size=[4, 4], num_prefix_tokens=1)
        else:
            expected = official_interpolate(pos, *new, 0.1 if mode == "bicubic_offset" else 0.0, False)
        assert ours.shape == (1, 1 + new[0] * new[1], 8)
        assert float((ours - expected).abs().max()) <= 1e-6, new
