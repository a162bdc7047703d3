"""The timm adapter: attention from a PyTorch timm model equals ours for the same weights, so every analysis runs
unchanged on it."""

import numpy as np
import pytest

from analysis_support import TINY, tiny_model
from vit_tf import analysis as A

timm = A.import_timm()  # after TensorFlow: hides triton, which would abort the process


@pytest.mark.parametrize("arch,img_size", [("vit_tiny_patch16_224", (32, 32)),
                                           ("deit_tiny_distilled_patch16_224", (32, 48))])
def test_timm_source_matches_our_model(arch, img_size):
    import torch

    from vit_tf import load_timm_state_dict

    torch.manual_seed(0)
    net = timm.create_model(arch, pretrained=False, img_size=img_size, patch_size=8, embed_dim=48, depth=2,
                            num_heads=3, mlp_ratio=2.0, num_classes=10)
    ours = tiny_model(arch, img_size=img_size)
    assert TINY["mlp_dim"] == 2 * TINY["embed_dim"]
    load_timm_state_dict(ours, {k: v.numpy() for k, v in net.state_dict().items()})

    source = A.attention_source(net)
    assert isinstance(source, A.TimmSource)
    assert source.patch_size == 8 and source.num_prefix_tokens == ours.config.num_prefix_tokens
    assert all(not m.fused_attn for m in net.modules() if hasattr(m, "fused_attn"))

    images = np.random.RandomState(0).randn(2, *img_size, 3).astype(np.float32)
    outputs, attention = source(images)
    ref_out, ref_att = A.KerasSource(ours)(images)
    assert sorted(attention) == sorted(ref_att)
    np.testing.assert_allclose(outputs["logits"], ref_out["logits"], atol=1e-4)
    for key in ref_att:
        np.testing.assert_allclose(attention[key], ref_att[key], atol=1e-5)
    np.testing.assert_allclose(source.patch_kernel(), A.KerasSource(ours).patch_kernel(), atol=1e-7)
    np.testing.assert_allclose(source.position_embedding(), A.KerasSource(ours).position_embedding(), atol=1e-7)

    r = A.probe(net, images)
    assert r.grid.shape == (2, 3, img_size[0] // 8, img_size[1] // 8)
    assert r.pos_cosine.shape == (img_size[0] // 8, img_size[1] // 8) * 2
    np.testing.assert_allclose(r.mean_distance, A.probe(ours, images).mean_distance, rtol=1e-4)
