"""Checkpoints behave like their source: at a size other than the file's, a model loaded from a file resamples its
position embeddings as the code the file comes from does (timm files as timm, official DeiT and DINO files as their
official code), unless the caller chooses; the registry's weight names agree with their files. Random weights in
each file layout, against that code written in torch (or timm itself). Hugging Face directories are tested against
transformers in test_hf.py, official DINOv2 files in test_dinov2.py.

Tolerances (float32): outputs <= 1e-4, attention and position embeddings <= 1e-5 max abs difference.
"""

import numpy as np
import pytest
from conftest import extra

extra("timm")
import torch  # noqa: E402

import vit_tf  # noqa: E402
from helpers import max_abs, official_interpolate, random_images, timm_forward, timm_reference  # noqa: E402
from vit_tf import registry  # noqa: E402
from vit_tf.formats import SOURCE_INTERPOLATION, source_interpolation  # noqa: E402

OUT_TOL, ATTN_TOL, POS_TOL = 1e-4, 1e-5, 1e-5
TINY = dict(depth=2, img_size=32, patch_size=8, embed_dim=48, num_heads=3, mlp_dim=96)  # a 4x4 grid
TIMM_TINY = dict(depth=2, img_size=32, patch_size=8, embed_dim=48, num_heads=3, mlp_ratio=2.0)


def assert_parity(ours, reference, images, head=None):
    ref_out, ref_attention = timm_forward(reference, images)
    out, attention = ours(images)
    assert max_abs(out, ref_out if head is None else head) <= OUT_TOL
    assert len(ref_attention) == len(attention) == ours.config.depth
    for i, ref in enumerate(ref_attention):
        assert max_abs(attention[f"transformer_block_{i}_att"], ref) <= ATTN_TOL, f"block {i}"


def test_registry_weight_names_follow_their_files():
    """A weight name resamples as its backbone file's code does, so `pretrained=True` and the bare name agree."""
    checked = set()
    for name, entry in registry.WEIGHTS.items():
        fmt = entry.sources[0].format if entry.sources else None
        if fmt not in SOURCE_INTERPOLATION:
            continue
        rule = source_interpolation(fmt, entry.config.num_register_tokens > 0) or "timm_antialias"
        assert entry.config.pos_embed_interpolation == rule, name
        checked.add(fmt)
    assert {"vit_npz", "deit_pth", "dino_pth", "dinov2_pth"} <= checked
    assert registry.WEIGHTS["deit_tiny_patch16_224.fb_in1k"].config.pos_embed_interpolation == "bicubic"
    assert registry.WEIGHTS["vit_small_patch16_224.dino"].config.pos_embed_interpolation == "bicubic_offset"


def test_timm_file_behaves_like_timm_under_an_official_name(tmp_path):
    """`vit_small_patch14_dinov2.lvd142m` follows the official offset rule, but a timm `.safetensors` loaded under
    it runs as timm runs it (antialiased bicubic) at other sizes; an explicit choice still wins."""
    from safetensors.numpy import save_file

    reference, state_dict = timm_reference("vit_small_patch14_dinov2", **dict(TIMM_TINY, patch_size=14, img_size=56))
    save_file(state_dict, str(tmp_path / "model.safetensors"))
    kw = dict(TINY, patch_size=14, img_size=56)
    ours = vit_tf.create_model("vit_small_patch14_dinov2.lvd142m", checkpoint_path=tmp_path / "model.safetensors",
                               **kw)
    assert ours.config.pos_embed_interpolation == "timm_antialias"
    for size in ((28, 84), (70, 70)):
        assert_parity(ours, reference, random_images(2, *size))
    chosen = vit_tf.create_model("vit_small_patch14_dinov2.lvd142m", pos_embed_interpolation="bicubic_offset",
                                 checkpoint_path=tmp_path / "model.safetensors", **kw)
    assert chosen.config.pos_embed_interpolation == "bicubic_offset"
    images = random_images(2, 28, 84)
    assert max_abs(chosen(images)[0], ours(images)[0]) > 5 * OUT_TOL  # the parity above would catch it


def test_official_deit_file_is_resampled_like_deit_main(tmp_path):
    """facebookresearch/deit fine-tunes at a new size after `F.interpolate(size, bicubic, align_corners=False)` of
    the patch grid (class and distillation rows kept): a 32-px file in a 48-px model gets exactly that table, and
    the model then equals timm holding it."""
    _, state_dict = timm_reference("deit_tiny_distilled_patch16_224", **TIMM_TINY, num_classes=5)
    torch.save({"model": {k: torch.from_numpy(v) for k, v in state_dict.items()}}, tmp_path / "deit.pth")
    ours = vit_tf.create_model("deit_tiny_distilled_patch16_224", checkpoint_path=tmp_path / "deit.pth",
                               **dict(TINY, img_size=48, num_classes=5))
    assert ours.config.pos_embed_interpolation == "bicubic"
    pos = torch.from_numpy(state_dict["pos_embed"])
    grid = pos[:, 2:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    grid = torch.nn.functional.interpolate(grid, size=(6, 6), mode="bicubic", align_corners=False)  # deit main.py
    expected = torch.cat([pos[:, :2], grid.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)
    assert max_abs(ours.pos_embed.numpy(), expected.numpy()) <= POS_TOL
    timm_rule = vit_tf.create_model("deit_tiny_distilled_patch16_224", checkpoint_path=tmp_path / "deit.pth",
                                    pos_embed_interpolation="timm_antialias", **dict(TINY, img_size=48, num_classes=5))
    assert max_abs(timm_rule.pos_embed.numpy(), expected.numpy()) > 1e-3  # timm's rule would not match DeiT's
    big, _ = timm_reference("deit_tiny_distilled_patch16_224", **dict(TIMM_TINY, img_size=48), num_classes=5)
    big.load_state_dict({**{k: torch.from_numpy(v) for k, v in state_dict.items()}, "pos_embed": expected})
    assert_parity(ours, big, random_images(2, 48, 48))


def test_official_dino_file_runs_like_interpolate_pos_encoding(tmp_path):
    """facebookresearch/dino resamples the table at every call with scale factors (n + 0.1) / M: a DINO backbone
    file run at other sizes equals timm whose position step is replaced by that code."""
    reference, state_dict = timm_reference("vit_small_patch16_224", **TIMM_TINY, num_classes=0)
    torch.save({k: torch.from_numpy(v) for k, v in state_dict.items()}, tmp_path / "dino.pth")  # bare backbone
    ours = vit_tf.create_model("vit_small_patch16_224", checkpoint_path=tmp_path / "dino.pth", num_classes=0,
                               **TINY)
    assert ours.config.pos_embed_interpolation == "bicubic_offset"

    def dino_pos_embed(x):  # replaces timm's _pos_embed; x (B, h, w, D) patch tokens
        b, h, w, d = x.shape
        tokens = torch.cat([reference.cls_token.expand(b, -1, -1), x.reshape(b, h * w, d)], dim=1)
        return tokens + official_interpolate(reference.pos_embed, h, w, 0.1, False)

    reference._pos_embed = dino_pos_embed
    for size in ((48, 48), (24, 40), (32, 32)):
        assert_parity(ours, reference, random_images(2, *size))
