"""Parity with timm, the reference implementation, on random weights.

Tolerances (float32): logits <= 1e-4 and every block's attention <= 1e-5 max abs difference.
"""

import numpy as np
import pytest
from conftest import extra

extra("timm", reason="parity tests need the test extra: pip install -e '.[test]'")
import torch  # noqa: E402

import vit_tf  # noqa: E402
from vit_tf.weights import timm_state_dict  # noqa: E402
from helpers import max_abs, random_images, timm_forward, timm_reference  # noqa: E402

LOGITS_TOL, ATTN_TOL = 1e-4, 1e-5
SMALL = dict(depth=3, img_size=64, num_classes=10)

CASES = [  # (timm architecture, our name, overrides)
    ("vit_tiny_patch16_224", "vit_tiny_patch16_224", SMALL),
    ("vit_small_patch32_224", "vit_small_patch32_224", SMALL),
    ("deit_tiny_patch16_224", "deit_tiny_patch16_224", SMALL),
    ("deit_tiny_distilled_patch16_224", "deit_tiny_distilled_patch16_224", SMALL),
    # DINO weight names resample as the official DINO code; against timm, timm's rule
    ("vit_small_patch16_224", "vit_small_patch16_224.dino", dict(depth=3, img_size=64, num_classes=0)),
    ("vit_small_patch8_224", "vit_small_patch8_224.dino", dict(depth=2, img_size=32, num_classes=0)),
]
TIMM_RULE = {"vit_small_patch16_224.dino": dict(pos_embed_interpolation="timm_antialias"),
             "vit_small_patch8_224.dino": dict(pos_embed_interpolation="timm_antialias")}


def assert_parity(ours, reference, images):
    ref_logits, ref_attention = timm_forward(reference, images)
    logits, attention = ours(images)
    assert len(ref_attention) == len(attention) == ours.config.depth
    assert max_abs(logits, ref_logits) <= LOGITS_TOL
    for i, ref in enumerate(ref_attention):
        assert attention[f"transformer_block_{i}_att"].shape == ref.shape
        assert max_abs(attention[f"transformer_block_{i}_att"], ref) <= ATTN_TOL, f"block {i}"


@pytest.mark.parametrize("timm_name,ours_name,overrides", CASES, ids=[c[1] for c in CASES])
@pytest.mark.parametrize("size", [(64, 64), (32, 96)], ids=["native", "non_square"])
def test_parity_small(timm_name, ours_name, overrides, size):
    reference, state_dict = timm_reference(timm_name, **overrides)
    ours = vit_tf.create_model(ours_name, **overrides, **TIMM_RULE.get(ours_name, {}))
    consumed = vit_tf.load_timm_state_dict(ours, state_dict)
    assert consumed.loaded == set(state_dict)  # every key of the reference is used
    exported = timm_state_dict(ours)  # and written back, every array is exactly the reference's
    assert set(exported) == set(state_dict)
    assert all(np.array_equal(exported[k], state_dict[k]) for k in state_dict)
    assert_parity(ours, reference, random_images(2, *size))


def test_parity_full_size_vit_base():
    reference, state_dict = timm_reference("vit_base_patch16_224")
    ours = vit_tf.create_model("vit_base_patch16_224")
    vit_tf.load_timm_state_dict(ours, state_dict)
    assert_parity(ours, reference, random_images(1, 224, 224))


def test_checkpoint_resampled_at_load_matches_timm_filter():
    """A 64-px checkpoint loaded into a model built for 96x128 equals timm's own load-time resampling."""
    from timm.models.vision_transformer import checkpoint_filter_fn
    import timm

    reference, state_dict = timm_reference("vit_tiny_patch16_224", **SMALL)
    big = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=3, num_classes=10,
                            img_size=(96, 128)).eval()
    for m in big.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    big.load_state_dict(checkpoint_filter_fn({k: torch.from_numpy(v) for k, v in state_dict.items()}, big))
    ours = vit_tf.create_model("vit_tiny_patch16_224", depth=3, num_classes=10, img_size=(96, 128))
    vit_tf.load_timm_state_dict(ours, state_dict)
    assert ours.pos_embed.shape == (1, 1 + 6 * 8, 192)
    assert max_abs(ours.pos_embed.numpy(), big.pos_embed.detach().numpy()) <= 1e-5
    assert_parity(ours, big, random_images(1, 96, 128))


@pytest.mark.parametrize("name,n_last", [("vit_small_patch16_224.dino_linear", 4),
                                         ("vit_base_patch16_224.dino_linear", 1)])
def test_dino_linear_heads_follow_eval_linear(name, n_last):
    """DINO's eval_linear.py features, computed with torch on timm's intermediate layers, then the linear head."""
    depth = 5
    reference, state_dict = timm_reference(name.split(".")[0], depth=depth, img_size=64, num_classes=0)
    ours = vit_tf.create_model(name, depth=depth, img_size=64)
    dim = ours.config.embed_dim
    rng = np.random.RandomState(1)
    linear_w = rng.randn(1000, ours.head_input_dim).astype("float32") * 0.05
    linear_b = rng.randn(1000).astype("float32")
    vit_tf.load_timm_state_dict(ours, {**state_dict, "head.weight": linear_w, "head.bias": linear_b})
    images = random_images(2, 64, 64)
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2)
        inter = reference.get_intermediate_layers(x, n=n_last, return_prefix_tokens=True, norm=True)
        # timm returns (patch tokens, prefix tokens) per block; DINO's code works on the full token sequence.
        full = [torch.cat([prefix, patches], dim=1) for patches, prefix in inter]
        out = torch.cat([t[:, 0] for t in full], dim=-1)
        if n_last == 1:  # --avgpool_patchtokens true, exactly as in eval_linear.py
            out = torch.cat((out.unsqueeze(-1), torch.mean(full[-1][:, 1:], dim=1).unsqueeze(-1)), dim=-1)
            out = out.reshape(out.shape[0], -1)
        assert out.shape[-1] == ours.head_input_dim == (4 * dim if n_last == 4 else 2 * dim)
        expected = torch.nn.functional.linear(out, torch.from_numpy(linear_w), torch.from_numpy(linear_b))
    logits, _ = ours(images)
    assert max_abs(logits, expected.numpy()) <= LOGITS_TOL


@pytest.mark.parametrize("timm_name", ["vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224"])
def test_head_mask_matches_timm_with_heads_scaled_by_hooks(timm_name):
    """`head_mask` against timm whose attention probabilities are multiplied by the same mask in forward hooks on
    each block's `attn_drop` (the identity in eval mode, applied right before the maps mix the values)."""
    reference, state_dict = timm_reference(timm_name, **SMALL)
    ours = vit_tf.create_model(timm_name, **SMALL)
    vit_tf.load_timm_state_dict(ours, state_dict)
    mask = np.ones((ours.config.depth, ours.config.num_heads), np.float32)
    mask[0, 1], mask[1, 0], mask[2, 2], mask[2, 0] = 0.0, 0.0, 0.0, 0.5
    handles = [block.attn.attn_drop.register_forward_hook(
        lambda module, args, out, m=torch.from_numpy(mask[i]): out * m.view(1, -1, 1, 1))
        for i, block in enumerate(reference.blocks)]
    images = random_images(2, 64, 64)
    try:
        ref_logits, ref_attention = timm_forward(reference, images)  # its extraction hooks run after ours
    finally:
        for handle in handles:
            handle.remove()
    unmasked_logits, _ = timm_forward(reference, images)
    assert max_abs(ref_logits, unmasked_logits) > 1e-3  # the mask matters
    logits, attention = ours(images, head_mask=mask)
    assert max_abs(logits, ref_logits) <= LOGITS_TOL
    for i, ref in enumerate(ref_attention):
        assert max_abs(attention[f"transformer_block_{i}_att"], ref) <= ATTN_TOL, f"block {i}"
    fused, none = ours(images, head_mask=mask, return_attention=False)  # the fused path masks head outputs
    assert none == {} and max_abs(fused, ref_logits) <= LOGITS_TOL


def test_fused_path_and_selected_blocks_match_timm():
    reference, state_dict = timm_reference("vit_small_patch16_224", **SMALL)
    ours = vit_tf.create_model("vit_small_patch16_224", **SMALL)
    vit_tf.load_timm_state_dict(ours, state_dict)
    images = random_images(2, 32, 96)
    ref_logits, ref_attention = timm_forward(reference, images)
    logits, none = ours(images, return_attention=False)
    assert none == {} and max_abs(logits, ref_logits) <= LOGITS_TOL
    logits, some = ours(images, return_attention=[1])
    assert list(some) == ["transformer_block_1_att"] and max_abs(logits, ref_logits) <= LOGITS_TOL
    assert max_abs(some["transformer_block_1_att"], ref_attention[1]) <= ATTN_TOL
