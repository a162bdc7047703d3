"""DINOv2 (Oquab et al. 2023) with and without registers (Darcet et al. 2024) on random weights: parity with timm
for every variant, the official `interpolate_pos_encoding` (written here in torch after facebookresearch/dinov2, whose
package is not on PyPI) and the official checkpoint layout.

Tolerances (float32): outputs <= 1e-4, attention <= 1e-5, position embeddings <= 1e-5 max abs difference.
"""

import numpy as np
import pytest
from conftest import extra

extra("timm", reason="parity tests need the test extra: pip install -e '.[test]'")
import torch  # noqa: E402

import vit_tf  # noqa: E402
from helpers import (max_abs, official_interpolate, random_images, timm_forward,  # noqa: E402  (Keras first)
                     timm_reference)
from vit_tf import registry  # noqa: E402
from vit_tf.formats import read_checkpoint  # noqa: E402
from vit_tf.layers import resample_grid  # noqa: E402
from vit_tf.weights import timm_state_dict  # noqa: E402

OUT_TOL, ATTN_TOL, POS_TOL = 1e-4, 1e-5, 1e-5
SMALL = dict(depth=2, img_size=56, embed_dim=48, num_heads=3)  # 4x4 grid of 14-px patches
DINOV2 = [a for a in registry.ARCHITECTURES if a.endswith("_dinov2")]


def small(arch):
    """Overrides for timm and for us; timm's giant keeps its SwiGLU mlp_ratio, which gives fc1 2 * 128 wide."""
    ours = dict(SMALL, mlp_dim=128 if "giant" in arch else 96)
    theirs = dict(SMALL) if "giant" in arch else dict(SMALL, mlp_ratio=2.0)
    return ours, theirs


def assert_parity(ours, reference, images, head=None):
    ref_out, ref_attention = timm_forward(reference, images)
    out, attention = ours(images)
    assert len(ref_attention) == len(attention) == ours.config.depth
    assert max_abs(out, ref_out if head is None else head) <= OUT_TOL
    for i, ref in enumerate(ref_attention):
        assert attention[f"transformer_block_{i}_att"].shape == ref.shape
        assert max_abs(attention[f"transformer_block_{i}_att"], ref) <= ATTN_TOL, f"block {i}"


def test_eight_architectures_with_timm_names():
    assert sorted(DINOV2) == sorted(f"vit_{s}_patch14{r}_dinov2" for s in ("small", "base", "large", "giant")
                                    for r in ("", "_reg4"))
    giant = registry.arch_config("vit_giant_patch14_reg4_dinov2")
    assert (giant.embed_dim, giant.depth, giant.num_heads, giant.mlp_dim, giant.mlp_type) == (1536, 40, 24, 4096,
                                                                                            "swiglu")
    assert giant.num_prefix_tokens == 5 and giant.num_pos_prefix_tokens == 0 and giant.img_size == (518, 518)
    entry = registry.WEIGHTS["vit_small_patch14_dinov2.lvd142m"]
    assert entry.sources[0].url == "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth"
    assert entry.config.pos_embed_interpolation == "bicubic_offset" and entry.top1 == 79.0
    reg = registry.WEIGHTS["vit_giant_patch14_reg4_dinov2.lvd142m"]
    assert reg.sources[0].url.endswith("dinov2_vitg14/dinov2_vitg14_reg4_pretrain.pth")
    assert reg.config.pos_embed_interpolation == "timm_antialias" and "87.1" in reg.notes


@pytest.mark.parametrize("arch", DINOV2)
@pytest.mark.parametrize("size", [(56, 56), (28, 84)], ids=["native", "non_square"])
def test_parity_with_timm(arch, size):
    ours_kw, timm_kw = small(arch)
    reference, state_dict = timm_reference(arch, **timm_kw)
    ours = vit_tf.create_model(arch, **ours_kw)
    assert vit_tf.load_timm_state_dict(ours, state_dict).loaded == set(state_dict)
    exported = timm_state_dict(ours)
    assert set(exported) == set(state_dict) and all(np.array_equal(exported[k], state_dict[k]) for k in state_dict)
    assert ours.config.num_prefix_tokens == reference.num_prefix_tokens
    assert_parity(ours, reference, random_images(2, *size))


@pytest.mark.parametrize("mode,offset,antialias", [("bicubic_offset", 0.1, False), ("bicubic", 0.0, False),
                                                  ("timm_antialias", 0.0, True)])
@pytest.mark.parametrize("new", [(16, 16), (16, 22), (37, 37), (40, 9), (6, 7)])
def test_resampling_matches_official_interpolation(mode, offset, antialias, new):
    pos = np.random.default_rng(0).normal(size=(1, 1 + 37 * 37, 8)).astype(np.float32)
    expected = official_interpolate(pos, *new, offset, antialias).numpy()
    grid = resample_grid(pos[:, 1:].reshape(1, 37, 37, 8), new, mode).numpy().reshape(1, -1, 8)
    assert max_abs(grid, expected[:, 1:]) <= POS_TOL


def test_offset_mode_differs_from_size_mode():
    """The 0.1 offset is not a no-op: without it the official non-register models would be mis-resampled."""
    pos = np.random.default_rng(1).normal(size=(1, 37, 37, 8)).astype(np.float32)
    assert max_abs(resample_grid(pos, (16, 16), "bicubic_offset"), resample_grid(pos, (16, 16), "bicubic")) > 1e-3


def official_layout(state_dict, swiglu=False, seed=3):
    """A timm-layout DINOv2 state dict in the official file layout: a mask token; with registers,
    `register_tokens` and the class position moved from the class token into `pos_embed` (a random class position,
    so that the fold is tested); with `swiglu` (ViT-g), `mlp.w12` / `mlp.w3`. Returns (torch state dict, class
    position or None)."""
    rng = np.random.default_rng(seed)
    width = state_dict["cls_token"].shape[-1]
    official = {k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}
    official["mask_token"] = torch.from_numpy(rng.normal(size=(1, width)).astype(np.float32))
    class_pos = None
    if "reg_token" in official:
        class_pos = torch.from_numpy(rng.normal(0, 0.2, size=(1, 1, width)).astype(np.float32))
        official["register_tokens"] = official.pop("reg_token")
        official["cls_token"] = official["cls_token"] - class_pos
        official["pos_embed"] = torch.cat([class_pos, official["pos_embed"]], dim=1)
    for key in [k for k in official if swiglu and ".mlp.fc" in k]:
        official[key.replace("mlp.fc1", "mlp.w12").replace("mlp.fc2", "mlp.w3")] = official.pop(key)
    return official, class_pos


@pytest.mark.parametrize("arch", ["vit_small_patch14_dinov2", "vit_giant_patch14_reg4_dinov2"])
def test_official_checkpoint_and_interpolation_end_to_end(arch, tmp_path, caplog):
    """An official-layout `.pth` (mask_token, register_tokens, class position in pos_embed, w12/w3 for ViT-g) read
    by our reader equals timm's own conversion of it, and the model with the official interpolation matches timm
    running the official `interpolate_pos_encoding` at other grids."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    ours_kw, timm_kw = small(arch)
    reference, state_dict = timm_reference(arch, **timm_kw)
    registers = "reg4" in arch
    official, class_pos = official_layout(state_dict, swiglu="giant" in arch)
    path = tmp_path / "dinov2_pretrain.pth"
    torch.save(official, path)
    with caplog.at_level("INFO", logger="vit_tf"):
        ckpt = read_checkpoint(path)
    assert ckpt.format == "dinov2_pth" and "dropped ['mask_token']" in caplog.text
    timm_converted = checkpoint_filter_fn({k: v.clone() for k, v in official.items()}, reference)
    assert set(ckpt.state_dict) == set(timm_converted)
    for key, value in timm_converted.items():
        assert max_abs(ckpt.state_dict[key], value.numpy()) <= 1e-6, key

    # An official file gives the official hub settings by itself, whatever the name's (timm's, for an architecture).
    ours = vit_tf.create_model(arch, checkpoint_path=path, **ours_kw)
    assert ours.config.pos_embed_interpolation == ("timm_antialias" if registers else "bicubic_offset")

    # The official model: class position in the table (and out of the token), registers inserted after the sum.
    table = torch.cat([class_pos, reference.pos_embed], dim=1) if registers else reference.pos_embed
    cls = reference.cls_token - class_pos if registers else reference.cls_token

    def official_pos_embed(x):  # replaces timm's _pos_embed; x (B, h, w, D) patch tokens
        b, h, w, d = x.shape
        pos = official_interpolate(table, h, w, 0.0 if registers else 0.1, registers)
        tokens = torch.cat([cls.expand(b, -1, -1), x.reshape(b, h * w, d)], dim=1) + pos
        if registers:
            tokens = torch.cat([tokens[:, :1], reference.reg_token.expand(b, -1, -1), tokens[:, 1:]], dim=1)
        return tokens

    reference._pos_embed = official_pos_embed
    for size in ((56, 56), (28, 84), (84, 42)):
        assert_parity(ours, reference, random_images(2, *size))


def test_dinov2_linear_classifiers_are_registered():
    """Every backbone has the hub's two ImageNet heads as weight names, with the URLs `dinov2.hub.classifiers`
    builds, the official eval recipe and the README's linear top-1 on the hub's default (4-layer) head."""
    for arch, model_name, _, linear in registry._DINOV2_FILES:
        folder = model_name.replace("_reg4", "")
        backbone = registry.WEIGHTS[f"{arch}.lvd142m"]
        for tag, head_type, layers in (("lvd142m_linear4", "dinov2_linear4", "4"), ("lvd142m_linear", "dinov2_linear",
                                                                                  "")):
            entry = registry.WEIGHTS[f"{arch}.{tag}"]
            assert [s.format for s in entry.sources] == ["dinov2_pth", "dinov2_linear_pth"]
            assert entry.sources[0] == backbone.sources[0]
            assert entry.sources[1].url == (f"https://dl.fbaipublicfiles.com/dinov2/{folder}/{model_name}_linear"
                                            f"{layers}_head.pth")
            c = entry.config
            assert (c.head_type, c.num_classes, c.img_size) == (head_type, 1000, (224, 224))
            assert c.pos_embed_interpolation == backbone.config.pos_embed_interpolation
            assert (entry.recipe.input_size, entry.recipe.crop_pct, entry.recipe.interpolation) == ((224, 224), 0.875,
                                                                                                   "bicubic")
            assert entry.recipe.mean == registry.IMAGENET_MEAN and entry.recipe.std == registry.IMAGENET_STD
            assert entry.top1 == (linear if layers else None)
        assert registry.default_entry(arch) is backbone  # pretrained=True on the architecture stays the backbone
    assert registry.WEIGHTS["vit_giant_patch14_reg4_dinov2.lvd142m_linear"].sources[1].url.endswith(
        "dinov2_vitg14/dinov2_vitg14_reg4_linear_head.pth")


@pytest.mark.parametrize("tag,n", [("lvd142m_linear", 1), ("lvd142m_linear4", 4)])
def test_official_dinov2_linear_heads(tmp_path, tag, n):
    """`dinov2.hub.classifiers`: 1 layer = [class token, patch mean]; 4 layers = the last 4 blocks' class tokens then
    the last block's patch mean (registers excluded), on timm's final-normed intermediate tokens. The weight name
    loads the official backbone + head files."""
    arch = "vit_small_patch14_reg4_dinov2"
    ours_kw, timm_kw = small(arch)
    reference, state_dict = timm_reference(arch, **dict(timm_kw, depth=5))
    rng = np.random.default_rng(2)
    weight = (0.05 * rng.standard_normal((1000, (1 + n) * 48))).astype(np.float32)
    bias = rng.standard_normal(1000).astype(np.float32)
    torch.save({"weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias)}, tmp_path / "head.pth")
    torch.save(official_layout(state_dict)[0], tmp_path / "backbone.pth")
    ours = vit_tf.create_model(f"{arch}.{tag}", **dict(ours_kw, depth=5),
                               checkpoint_path=[tmp_path / "backbone.pth", tmp_path / "head.pth"])
    assert ours.head_input_dim == (1 + n) * 48 and ours.config.pos_embed_interpolation == "timm_antialias"
    images = random_images(2, 56, 42)  # another grid than the file's: the official (antialiased) resampling
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2)
        inter = reference.get_intermediate_layers(x, n=n, return_prefix_tokens=True, norm=True)
        linear_input = torch.cat([prefix[:, 0] for _, prefix in inter] + [inter[-1][0].mean(dim=1)], dim=1)
        expected = torch.nn.functional.linear(linear_input, torch.from_numpy(weight), torch.from_numpy(bias))
    assert max_abs(ours(images)[0], expected.numpy()) <= OUT_TOL


@pytest.mark.parametrize("name,kwargs", [("LayerScale", dict(dim=12, init_values=0.5)),
                                         ("SwiGLUMlp", dict(dim=12, hidden_dim=16)),
                                         ("TransformerBlock", dict(dim=12, num_heads=3, mlp_dim=16, init_values=1e-5,
                                                                   mlp_type="swiglu"))])
def test_new_layers_pass_keras_run_layer_test(name, kwargs):
    from keras.src.testing import TestCase

    from vit_tf import layers

    TestCase(methodName="run_layer_test").run_layer_test(
        getattr(layers, name), init_kwargs=kwargs, input_shape=(2, 5, 12), supports_masking=False,
        run_training_check=True, run_mixed_precision_check=True)


def test_old_configs_still_load():
    """A config saved before the DINOv2 fields existed builds the same model (defaults: no registers, GELU MLP, no
    layer scale, timm's resampling)."""
    old = {"img_size": [32, 32], "patch_size": 8, "embed_dim": 48, "depth": 1, "num_heads": 3, "mlp_dim": 96,
           "num_classes": 2, "head_type": "token", "representation_size": None, "qkv_bias": True,
           "layer_norm_eps": 1e-6}
    model = vit_tf.VisionTransformer(old)
    assert model.config.num_prefix_tokens == 1 and model.reg_token is None
    assert model.get_layer("transformer_block_0").ls1 is None and model.pos_embed.shape == (1, 17, 48)


@pytest.mark.parametrize("arch,prefix", [("vit_small_patch14_dinov2", 1), ("vit_small_patch14_reg4_dinov2", 5)])
def test_token_norms_random_weights(arch, prefix):
    """(B, blocks, T) with T counting the registers; the norms are the hidden states' L2 norms; registers are never
    flagged, and a token planted far above the rest is, at its grid position."""
    from vit_tf.analysis.norms import high_norm_tokens, token_norms

    model = vit_tf.create_model(arch, depth=3, embed_dim=48, num_heads=3, mlp_dim=96, img_size=56)
    assert model.config.num_prefix_tokens == prefix
    images = random_images(2, 42, 56)  # a 3 x 4 grid
    norms = token_norms(model, images)
    assert norms.shape == (2, 3, prefix + 12) and norms.dtype == np.float32
    _, _, hidden = model.forward_features(images, return_hidden=True)
    np.testing.assert_allclose(norms[:, 1], np.linalg.norm(np.asarray(hidden[1]), axis=-1), rtol=1e-6)
    np.testing.assert_array_equal(token_norms(hidden, blocks=[-1]), norms[:, -1:])
    planted = norms.copy()
    planted[:, :, :prefix] = 1e6  # prefix tokens (class, registers) are not patches: never flagged
    planted[1, 2, prefix + 6] = 50 * np.median(norms[1, 2])
    mask, limit = high_norm_tokens(planted, num_prefix_tokens=prefix, grid_size=(3, 4))
    assert mask.shape == (2, 3, 3, 4) and limit.shape == (2, 3)
    assert mask.sum() == 1 and mask[1, 2, 1, 2]
    fixed, _ = high_norm_tokens(planted[:, -1], num_prefix_tokens=prefix, threshold=float(planted.max()) - 1)
    assert fixed.shape == (2, 12) and fixed.sum() == 0  # only the prefix reaches the threshold, and it is excluded
    with pytest.raises(ValueError, match="num_prefix_tokens=17 does not fit"):
        high_norm_tokens(norms, num_prefix_tokens=17)
