"""Hugging Face transformers checkpoints: the files `save_pretrained` writes, read into our models, against the
transformers models themselves (eager attention, `output_attentions=True`) on random weights.

Tolerances (float32): outputs and final-norm tokens <= 1e-4, attention <= 1e-5 max abs difference.
"""

import logging

import numpy as np
import pytest
from conftest import extra

transformers = extra("transformers", reason="needs the test extra: pip install transformers")
import torch  # noqa: E402

import vit_tf  # noqa: E402
from vit_tf.formats import read_checkpoint  # noqa: E402
from vit_tf.hf import HF_UNUSED, config_from_hf, from_hf  # noqa: E402
from helpers import max_abs, random_images  # noqa: E402

OUT_TOL, ATTN_TOL = 1e-4, 1e-5
VIT = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=32,
           patch_size=8)
DINOV2 = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, mlp_ratio=2, image_size=32, patch_size=8)

CASES = {  # name -> (transformers class, config class, config kwargs)
    "ViTModel": ("ViTModel", "ViTConfig", VIT),
    "ViTForImageClassification": ("ViTForImageClassification", "ViTConfig", dict(VIT, num_labels=5)),
    "DeiTForImageClassificationWithTeacher": ("DeiTForImageClassificationWithTeacher", "DeiTConfig",
                                              dict(VIT, num_labels=5)),
    "Dinov2Model": ("Dinov2Model", "Dinov2Config", DINOV2),
    "Dinov2Model_swiglu": ("Dinov2Model", "Dinov2Config", dict(DINOV2, use_swiglu_ffn=True)),
    "Dinov2ForImageClassification": ("Dinov2ForImageClassification", "Dinov2Config", dict(DINOV2, num_labels=5)),
    "Dinov2WithRegistersModel": ("Dinov2WithRegistersModel", "Dinov2WithRegistersConfig",
                                 dict(DINOV2, num_register_tokens=4)),
}


def hf_checkpoint(name, directory, seed=0):
    """A transformers model of CASES[name] with N(0, 0.2) weights, saved with `save_pretrained`; returns it."""
    model_class, config_class, kwargs = CASES[name]
    config = getattr(transformers, config_class)(**kwargs)
    config._attn_implementation = "eager"  # the softmax probabilities are returned only on the eager path
    torch.manual_seed(seed)
    model = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    model.save_pretrained(directory)
    return model


def hf_forward(model, images):
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    kwargs = {} if "Dinov2" in type(model).__name__ else {"interpolate_pos_encoding": True}
    with torch.no_grad():
        return model(pixel_values=x, output_attentions=True, **kwargs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_parity_with_transformers(name, tmp_path, caplog):
    reference = hf_checkpoint(name, tmp_path)
    with caplog.at_level(logging.INFO, logger="vit_tf"):
        ckpt = read_checkpoint(tmp_path)  # a directory in the transformers layout is detected
    assert ckpt.format == "hf"
    dropped = [k for k in HF_UNUSED if k in caplog.text]
    assert dropped == (["pooler.dense.weight", "pooler.dense.bias"] if name == "ViTModel"
                       else ["embeddings.mask_token"] if "Dinov2" in name else [])
    ours = from_hf(tmp_path)
    assert ours.config.pos_embed_interpolation == ("timm_antialias" if "Registers" in name else "bicubic")
    for size in ((32, 32), (24, 40)):
        images = random_images(2, *size)
        ref = hf_forward(reference, images)
        outputs, attention = ours.forward_all(images)
        tokens, _ = ours.forward_features(images)
        if hasattr(ref, "last_hidden_state"):  # the backbones: every final-norm token and the class-token feature
            assert max_abs(tokens, ref.last_hidden_state.numpy()) <= OUT_TOL
            assert max_abs(outputs["features"], ref.last_hidden_state[:, 0].numpy()) <= OUT_TOL
        else:
            assert max_abs(outputs["logits"], ref.logits.numpy()) <= OUT_TOL
        if name.endswith("WithTeacher"):
            assert max_abs(outputs["cls_logits"], ref.cls_logits.numpy()) <= OUT_TOL
            assert max_abs(outputs["dist_logits"], ref.distillation_logits.numpy()) <= OUT_TOL
        assert len(ref.attentions) == len(attention) == 2
        for i, a in enumerate(ref.attentions):
            assert max_abs(attention[f"transformer_block_{i}_att"], a.numpy()) <= ATTN_TOL, (size, i)


def test_single_weight_file_and_pytorch_model_bin(tmp_path):
    """`model.safetensors` alone is recognised by its keys; `pytorch_model.bin` (torch.load weights_only) too."""
    reference = hf_checkpoint("ViTForImageClassification", tmp_path)
    ckpt = read_checkpoint(tmp_path / "model.safetensors")
    assert ckpt.format == "hf" and "blocks.1.attn.qkv.weight" in ckpt.state_dict
    assert "encoder.layer.1.attention.attention.query.weight" in ckpt.origin["blocks.1.attn.qkv.weight"]
    from safetensors.torch import load_file

    torch.save(load_file(str(tmp_path / "model.safetensors")), tmp_path / "pytorch_model.bin")  # the file layout
    from_bin = read_checkpoint(tmp_path / "pytorch_model.bin")
    assert from_bin.format == "hf" and set(from_bin.state_dict) == set(ckpt.state_dict)
    assert all(np.array_equal(from_bin.state_dict[k], ckpt.state_dict[k]) for k in ckpt.state_dict)
    # transformers >= 5 renames modules in memory (`layers.0.attention.q_proj`); that is not a file layout.
    torch.save(reference.state_dict(), tmp_path / "in_memory.bin")
    with pytest.raises(vit_tf.CheckpointError, match=r"unknown keys \['layers.0.attention.k_proj.bias'"):
        read_checkpoint(tmp_path / "in_memory.bin", format="hf")


def test_unknown_hf_key_is_an_error(tmp_path):
    from safetensors.numpy import load_file, save_file

    hf_checkpoint("ViTModel", tmp_path)
    sd = load_file(str(tmp_path / "model.safetensors"))
    save_file({**sd, "encoder.layer.0.attention.attention.extra.weight": np.zeros(3, np.float32)},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(vit_tf.CheckpointError, match=r"unknown keys \['encoder.layer.0.attention.attention.extra"):
        read_checkpoint(tmp_path)
    del sd["encoder.layer.1.attention.attention.key.bias"]
    save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(vit_tf.CheckpointError, match=r"block 1 qkv bias: has \['query', 'value'\]"):
        read_checkpoint(tmp_path)


def test_config_from_hf_fields():
    config = config_from_hf({"model_type": "vit", "hidden_size": 768, "num_hidden_layers": 12,
                             "num_attention_heads": 12, "intermediate_size": 3072, "image_size": 224,
                             "patch_size": 16, "layer_norm_eps": 1e-12, "qkv_bias": True,
                             "architectures": ["ViTForImageClassification"], "id2label": {str(i): i for i in range(7)}})
    assert (config.num_classes, config.layer_norm_eps, config.pos_embed_interpolation) == (7, 1e-12, "bicubic")
    giant = config_from_hf({"model_type": "dinov2", "hidden_size": 1536, "num_hidden_layers": 40,
                            "num_attention_heads": 24, "mlp_ratio": 4, "use_swiglu_ffn": True, "image_size": 518,
                            "patch_size": 14, "architectures": ["Dinov2Model"]})
    assert (giant.mlp_dim, giant.mlp_type, giant.num_classes, giant.init_values) == (4096, "swiglu", 0, 1.0)


# name -> (registry name the directory is loaded under, its layer_norm_eps in transformers)
UNDER = {"Dinov2Model": ("vit_small_patch14_dinov2.lvd142m", 1e-6),
         "Dinov2WithRegistersModel": ("vit_small_patch14_reg4_dinov2.lvd142m", 1e-6),
         "ViTModel": ("vit_tiny_patch16_224.augreg_in21k_ft_in1k", 1e-12)}


@pytest.mark.parametrize("name", sorted(UNDER))
def test_directory_behaves_like_transformers_at_other_sizes(name, tmp_path):
    """`vit_tf.load(dir)` and `create_model(name, checkpoint_path=dir)` run a saved transformers model as transformers
    does at sizes other than its own (its position interpolation and epsilon, not the registry name's official
    rules), unless the caller chooses another interpolation."""
    reference = hf_checkpoint(name, tmp_path)
    registry_name, eps = UNDER[name]
    loaded = vit_tf.load(tmp_path)
    assert isinstance(loaded, vit_tf.VisionTransformer)
    tiny = dict(depth=2, embed_dim=48, num_heads=3, mlp_dim=96, patch_size=8, img_size=32, num_classes=0)
    named = vit_tf.create_model(registry_name, checkpoint_path=tmp_path, **tiny)
    rule = "timm_antialias" if "Registers" in name else "bicubic"
    for ours in (loaded, named):
        assert (ours.config.pos_embed_interpolation, ours.config.layer_norm_eps) == (rule, eps)
    for size in ((48, 48), (24, 40)):
        images = random_images(2, *size)
        ref = hf_forward(reference, images)
        for ours in (loaded, named):
            tokens, _ = ours.forward_features(images)
            _, attention = ours.forward_all(images)
            assert max_abs(tokens, ref.last_hidden_state.numpy()) <= OUT_TOL, size
            for i, a in enumerate(ref.attentions):
                assert max_abs(attention[f"transformer_block_{i}_att"], a.numpy()) <= ATTN_TOL, (size, i)
    if name == "Dinov2Model":  # asked otherwise: the official offset rule, which transformers does not follow
        chosen = vit_tf.create_model(registry_name, checkpoint_path=tmp_path, pos_embed_interpolation="bicubic_offset",
                                     **tiny)
        assert chosen.config.pos_embed_interpolation == "bicubic_offset"
        images = random_images(2, 24, 40)
        tokens, _ = chosen.forward_features(images)
        assert max_abs(tokens, hf_forward(reference, images).last_hidden_state.numpy()) > 5 * OUT_TOL


def test_directory_is_not_taken_for_a_converted_one(tmp_path):
    hf_checkpoint("ViTModel", tmp_path)
    from vit_tf.saved import load_converted

    with pytest.raises(ValueError, match="is a Hugging Face checkpoint, not a directory written by `vit-tf convert`"):
        load_converted(tmp_path)


def test_command_line_models_open_a_hugging_face_directory(tmp_path):
    """`--model HF_DIR` (the loader the commands and the app share) opens the folder as `vit_tf.load` does."""
    from vit_tf.loading import load_model_for_analysis

    reference = hf_checkpoint("ViTForImageClassification", tmp_path)
    net, recipe, info = load_model_for_analysis(str(tmp_path))
    assert info["source"] == str(tmp_path) and not info["random_weights"] and recipe == net.recipe
    images = random_images(2, 32, 32)
    assert max_abs(net(images)[0], hf_forward(reference, images).logits.numpy()) <= OUT_TOL
