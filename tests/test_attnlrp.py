"""explain(..., "attnlrp"): AttnLRP (Achtibat et al. 2024) and CP-LRP (Ali et al. 2022) as gradient x input under the
off-by-default relevance rules of vit_tf.layers.

- The switch: a default forward traced before or after it is the same graph (op types and names) with bitwise the
  same outputs, holds none of its ops, and the rules change gradients only.
- Conservation on tiny random models of every head type (token, distilled, pre_logits, dino_last4, dino_avgpool,
  dinov2_linear, dinov2_linear4, SwiGLU with registers): logit = pixel relevance + what the bias-like terms absorb
  (+ each softmax's bias term for "attnlrp"), within 1e-5 of the sum of the absolute terms (measured <= 1.5e-6); with
  no biases and "cp", the pixels receive the logit within 1e-5 (relative).
- The one-patch model of test_explain: the relevance sits on that patch.
- Against the published rules: the timm model with the same weights, its modules patched with detach-based rules
  as LXT (rachtibat/LRP-eXplains-Transformers, `lxt.efficient`) patches them, torch autograd in float64: relative
  error <= 1e-5 (max abs difference over the largest reference value) for ViT, distilled DeiT and a DINOv2-g style
  SwiGLU model with registers, both rules. Measured: <= 5e-7 for every class.
- Batches equal single images (SwiGLU with registers here; test_explain's batch test covers the distilled DeiT).
"""

from __future__ import annotations

import copy
import types

import numpy as np
import pytest
import tensorflow as tf

import vit_tf
from helpers import timm_reference
from test_explain import PATCH, one_patch_model
from vit_tf.analysis import explanations as E
from vit_tf.layers import relevance_rule, relevance_rules

RULES = ("attnlrp", "cp")
TINY = dict(depth=2, embed_dim=48, num_heads=3, mlp_dim=96, patch_size=8, num_classes=5)
BIAS_LIKE = ("bias", "beta", "pos_embed", "cls_token", "dist_token", "reg_token")  # variable names' last part


def tiny(arch="vit_tiny_patch16_224", seed=0, scale=None, **overrides):
    """A tiny random model; `scale`: every weight drawn again with this std (so that every layer matters)."""
    import keras

    keras.utils.set_random_seed(seed)
    m = vit_tf.create_model(arch, img_size=32, **{**TINY, **overrides})
    if scale is not None:
        rng = np.random.RandomState(seed)
        for v in m.weights:
            v.assign(rng.randn(*v.shape).astype(np.float32) * scale)
    return m


# -- the switch ------------------------------------------------------------------------------------------------------
def _trace(model, images):
    fn = tf.function(lambda x: model(x, return_attention=[0]))
    graph = fn.get_concrete_function(tf.TensorSpec((None, 32, 32, 3), tf.float32)).graph
    return [(op.type, op.name) for op in graph.get_operations()], fn(images)


def test_the_switch_changes_gradients_only_and_is_off_by_default():
    m = tiny(mlp_type="swiglu", representation_size=16)
    x = tf.constant(np.random.RandomState(0).randn(2, 32, 32, 3).astype(np.float32))
    ops, (out, att) = _trace(m, x)
    count = lambda kind, op_list: sum(t == kind for t, _ in op_list)  # noqa: E731
    assert count("StopGradient", ops) == 0
    with relevance_rules("attnlrp"):
        assert relevance_rule() == "attnlrp"
        rule_ops, (rule_out, rule_att) = _trace(m, x)
    assert relevance_rule() is None
    # a StopGradient per LayerNorm (2 per block, the final norm); a custom gradient (an IdentityN) per rule: Q, K, A,
    # V, SiLU and the gate product per block, and the pre-logits tanh (tf.nn.silu brings one of its own either way)
    assert count("StopGradient", rule_ops) == 2 * 2 + 1
    assert count("IdentityN", rule_ops) - count("IdentityN", ops) == 2 * 6 + 1
    with pytest.raises(ZeroDivisionError), relevance_rules("cp"):
        1 / 0
    assert relevance_rule() is None  # reset after an error too
    again, (out2, att2) = _trace(m, x)
    assert again == ops  # the same graph, op for op
    assert np.array_equal(out2, out) and np.array_equal(att2["transformer_block_0_att"], att["transformer_block_0_att"])
    np.testing.assert_allclose(rule_out, out, rtol=0, atol=1e-6)  # forward values unchanged by the rules
    with pytest.raises(ValueError, match="rule must be one of"):
        with relevance_rules("lrp"):
            pass


# -- conservation ----------------------------------------------------------------------------------------------------
def relevance_terms(model, images, target, rule):
    """The conservation identity's terms per image, from a tape under the rules: (logit, pixel relevance, absorbed
    by bias-like variables, softmax bias terms), each (B,) float64; the variables' terms are per batch (B = 1)."""
    x = tf.constant(images)
    with relevance_rules(rule), tf.GradientTape() as tape:
        tape.watch(x)
        outputs, records, _ = model.forward_intermediates(x, dtype="float32")
        y = outputs["logits"][:, target]
        total = tf.reduce_sum(y)
    biases = [v for v in model.weights if v.path.split("/")[-1] in BIAS_LIKE]
    inner = [[r["a"], r["q"], r["k"]] for r in records]
    grads = tape.gradient(total, [x] + biases + sum(inner, []), unconnected_gradients=tf.UnconnectedGradients.ZERO)
    f64 = lambda t: np.asarray(t, np.float64)  # noqa: E731
    pixels = (f64(x) * f64(grads[0])).sum(axis=(1, 2, 3))
    absorbed = sum((f64(v) * f64(g)).sum() for v, g in zip(biases, grads[1:1 + len(biases)]))
    sinks = 0.0
    rest = grads[1 + len(biases):]
    for i, (a, q, k) in enumerate(inner):
        ga, gq, gk = rest[3 * i:3 * i + 3]
        # what the softmax keeps: relevance at its output minus what reaches Q and K (= its input's, exactly)
        sinks += (f64(a) * f64(ga)).sum() - (f64(q) * f64(gq)).sum() - (f64(k) * f64(gk)).sum()
    return f64(y), pixels, absorbed, sinks


HEADS = {  # name -> (architecture, overrides)
    "token": ("vit_tiny_patch16_224", {}),
    "pre_logits": ("vit_tiny_patch16_224", {"representation_size": 16}),
    "distilled": ("deit_tiny_distilled_patch16_224", {}),
    "dino_last4": ("vit_tiny_patch16_224", {"head_type": "dino_last4", "depth": 4}),
    "dino_avgpool": ("vit_tiny_patch16_224", {"head_type": "dino_avgpool"}),
    "dinov2_linear": ("vit_small_patch14_dinov2", {"head_type": "dinov2_linear"}),
    "dinov2_linear4": ("vit_small_patch14_dinov2", {"head_type": "dinov2_linear4", "depth": 4}),
    "swiglu_registers": ("vit_giant_patch14_reg4_dinov2", {"mlp_dim": 64}),
}

EXPLAINED = ("distilled", "dino_last4", "dinov2_linear4", "swiglu_registers")  # through explain too (traces cost ~1 s)


@pytest.mark.parametrize("head", sorted(HEADS))
def test_conservation_for_every_head(head):
    arch, overrides = HEADS[head]
    m = tiny(arch, scale=0.2, **overrides)
    assert m.config.head_type == overrides.get("head_type", "distilled" if "distilled" in arch else "token")
    x = np.random.RandomState(1).randn(1, 32, 32, 3).astype(np.float32)
    for rule in RULES:
        logit, pixels, absorbed, sinks = relevance_terms(m, x, 3, rule)
        if rule == "cp":
            assert sinks == 0.0  # the attention is constant: nothing reaches Q and K
        scale = np.abs(logit) + np.abs(pixels) + abs(absorbed) + abs(sinks)
        assert np.abs(logit - (pixels + absorbed + sinks)).max() <= 1e-5 * scale.max(), (head, rule)
        if rule == "attnlrp" and head in EXPLAINED:  # explain's compiled pass gives the same relevance
            ours = E.explain(m, x, "attnlrp", target=3)
            assert ours.shape == (1, 4, 4)
            np.testing.assert_allclose(ours.sum(axis=(1, 2)), pixels, rtol=1e-5, atol=1e-6 * scale.max())


def test_cp_without_biases_gives_the_pixels_the_whole_logit():
    m = tiny("vit_giant_patch14_reg4_dinov2", scale=0.2, mlp_dim=64)
    for v in m.weights:
        if v.path.split("/")[-1] in BIAS_LIKE:
            v.assign(np.zeros(v.shape, np.float32))
    x = np.random.RandomState(2).randn(3, 32, 32, 3).astype(np.float32)
    logits = np.asarray(m(x)[0], np.float64)
    for target in range(5):
        maps = E.explain(m, x, "attnlrp", target=target, rule="cp")
        np.testing.assert_allclose(maps.sum(axis=(1, 2)), logits[:, target], rtol=1e-5,
                                   atol=1e-5 * np.abs(logits).max())
    lrp = E.explain(m, x, "attnlrp", target=0)  # AttnLRP's softmax keeps a part: not the whole logit here
    assert np.abs(lrp.sum(axis=(1, 2)) - logits[:, 0]).max() > 1e-3


# -- known answer ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", RULES)
def test_relevance_on_the_one_patch(rule):
    m = one_patch_model()
    x = np.random.RandomState(1).randn(4, 32, 32, 3).astype(np.float32)
    for target in range(5):
        maps = np.abs(E.explain(m, x, "attnlrp", target=target, rule=rule)).reshape(4, -1)
        total = maps.sum(-1)
        assert np.all(total > 0), target
        assert (maps[:, PATCH] / total).min() >= 1 - 1e-6, target


# -- against the published rules: timm with LXT-style patches, torch autograd, float64 --------------------------------
def _half(t):
    return t * 0.5 + (t * 0.5).detach()  # the value t, half its gradient (uniform rule)


def _identity(f, t):
    ratio = torch_where(t != 0, f(t) / t, 0.5)  # f(x) / x of GELU and SiLU tends to 1/2 at 0
    return t * ratio.detach()


def torch_where(cond, a, b):
    import torch

    return torch.where(cond, a, torch.full_like(a, b))


def patch_timm(net, rule):
    """A copy of a timm ViT in float64 whose LayerNorms, attention, activations and gated MLP compute their own
    values with the rules' gradients (detach / half-gradient tricks, as LXT's `efficient` patches)."""
    import torch
    import torch.nn.functional as F
    from timm.layers.mlp import GluMlp

    net = copy.deepcopy(net).double().eval()

    def layer_norm(self, x):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt().detach() * self.weight + self.bias

    def attention(self, x, attn_mask=None, is_causal=False):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        q = q * self.scale
        if rule == "attnlrp":
            q, k, v = _half(q), _half(k), _half(v)
        a = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        a = _half(a) if rule == "attnlrp" else a.detach()
        return self.proj((a @ v).transpose(1, 2).reshape(b, n, c))

    def glu(self, x):
        x1, x2 = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(_half(_identity(F.silu, x1) * x2))

    for module in net.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.forward = types.MethodType(layer_norm, module)
        elif isinstance(module, torch.nn.GELU):
            module.forward = lambda t: _identity(lambda u: F.gelu(u), t)
        elif isinstance(module, GluMlp):
            assert not module.gate_last
            module.forward = types.MethodType(glu, module)
        elif type(module).__name__ == "Attention":
            module.forward = types.MethodType(attention, module)
    return net


def torch_attnlrp(net, images, target, rule, patch):
    """(B, gh, gw) float64: sum over each patch's pixels and channels of x * grad of the patched timm model."""
    import torch

    x = torch.tensor(np.asarray(images, np.float64).transpose(0, 3, 1, 2), requires_grad=True)
    logits = patch_timm(net, rule)(x)
    logits[:, target].sum().backward()
    r = (x * x.grad).detach().numpy().sum(1)  # (B, H, W)
    b, h, w = r.shape
    return r.reshape(b, h // patch, patch, w // patch, patch).sum(axis=(2, 4))


CASES = {  # name -> (timm architecture, timm overrides, our overrides, image size)
    "vit": ("vit_tiny_patch16_224", dict(mlp_ratio=2.0), {}, (40, 32)),
    "deit_distilled": ("deit_tiny_distilled_patch16_224", dict(mlp_ratio=2.0), {}, (32, 48)),
    "dinov2_g_swiglu": ("vit_giant_patch14_reg4_dinov2", {}, dict(mlp_dim=128), (32, 40)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_the_published_rules_in_torch(case):
    arch, theirs, ours_kw, size = CASES[case]
    common = dict(img_size=size, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=5)
    net, state = timm_reference(arch, **common, **theirs)
    ours = vit_tf.create_model(arch, **{**TINY, **common, **ours_kw})
    vit_tf.load_timm_state_dict(ours, state)
    images = np.random.RandomState(3).randn(2, *size, 3).astype(np.float32)
    for rule in RULES:
        for target in (0, 4):
            ref = torch_attnlrp(net, images, target, rule, 8)
            got = E.explain(ours, images, "attnlrp", target=target, rule=rule)
            assert got.shape == ref.shape
            err = np.abs(got - ref).max() / np.abs(ref).max()
            assert err <= 1e-5, (case, rule, target, err)


# -- batches, options ------------------------------------------------------------------------------------------------
def test_batches_equal_single_images_in_float32():
    """On the SwiGLU model with registers (test_explain's batch test runs every method, this one included, on a
    distilled DeiT)."""
    m = tiny("vit_giant_patch14_reg4_dinov2", scale=0.2, mlp_dim=64)
    x = np.random.RandomState(4).randn(3, 32, 32, 3).astype(np.float32)
    targets = np.array([0, 2, 4])
    batch = E.explain(m, x, "attnlrp", target=targets)
    singles = np.concatenate([E.explain(m, x[i:i + 1], "attnlrp", target=int(targets[i])) for i in range(3)])
    assert np.abs(batch - singles).max() <= 1e-5 * np.abs(singles).max()
    # The pass runs in float32: a mixed-precision copy (float32 weights, bfloat16 blocks) gives the same map.
    mixed = vit_tf.VisionTransformer.from_config({**m.get_config(), "dtype": "mixed_bfloat16"})
    mixed.set_weights(m.get_weights())
    np.testing.assert_allclose(E.explain(mixed, x, "attnlrp", target=targets), batch, rtol=0,
                               atol=1e-6 * np.abs(batch).max())
    with pytest.raises(ValueError, match="rule must be one of"):
        E.explain(m, x, "attnlrp", rule="alpha_beta")
    with pytest.raises(ValueError, match="takes no option"):
        E.explain(m, x, "attnlrp", token="cls")
