"""vit_tf.explain (vit_tf.analysis.explanations): every gradient method against an independent PyTorch autograd implementation of the
published rule on the timm model with the same weights; known answers on a hand-built model whose logits depend on
one patch only; batches equal single-image runs; non-square grids, distillation tokens, bfloat16/float16 models.

Parity tolerance: max |ours - reference| <= 1e-5 * max |reference| per batch of maps, for every target class (ours:
gradients through the TensorFlow float32 model, LRP on its float64 replica; reference: timm in float64 with torch
autograd). Measured: <= 2e-6 for every method. Transformer attribution runs the model's own blocks in float64 and
equals the float64 replica of tests/explain_oracle.py within 1e-4 (relative).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import vit_tf
from helpers import timm_reference
from vit_tf.analysis import explanations as E
from vit_tf.analysis.rollout import rollout_matrix

RTOL = 1e-5
TINY = dict(depth=2, embed_dim=48, num_heads=3, mlp_dim=96, patch_size=8, num_classes=5)
CASES = {  # name -> (architecture, image size (H, W)); both grids non-square for the distilled model
    "deit_distilled": ("deit_tiny_distilled_patch16_224", (32, 48)),
    "vit": ("vit_tiny_patch16_224", (40, 32)),
}


@pytest.fixture(scope="module")
def deit():
    """A tiny distilled DeiT on a 4 x 6 grid, shared so that its traced functions are reused across tests."""
    return tiny("deit_tiny_distilled_patch16_224", img_size=(32, 48))


def relative_error(ours, ref) -> float:
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(np.asarray(ours, np.float64) - ref)) / np.max(np.abs(ref)))


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request):
    """(timm model, our model with the same weights, images (3, H, W, 3), name)."""
    arch, size = CASES[request.param]
    net, state = timm_reference(arch, img_size=size, patch_size=8, embed_dim=48, depth=2, num_heads=3,
                                mlp_ratio=2.0, num_classes=5)
    ours = vit_tf.create_model(arch, img_size=size, **TINY)
    vit_tf.load_timm_state_dict(ours, state)
    images = np.random.RandomState(3).randn(3, *size, 3).astype(np.float32)
    return net, ours, images, request.param


# -- the reference: timm in float64, intermediates captured by hooks, gradients by torch autograd ------------------
class TorchRun:
    """One float64 forward/backward of a timm ViT on NHWC images, keeping every tensor the rules need."""

    def __init__(self, net, images, target=None):
        import torch

        net = copy.deepcopy(net).double().eval()
        self.net = net
        self.blocks = [dict() for _ in net.blocks]
        hooks = []

        def keep(store, name, grad=False):
            def hook(module, args, output=None):
                value = args[0] if output is None else output
                if grad:
                    value.retain_grad()
                store[name] = value
            return hook

        for store, blk in zip(self.blocks, net.blocks):
            hooks += [blk.norm1.register_forward_pre_hook(keep(store, "x", True)),
                      blk.norm1.register_forward_hook(keep(store, "n1", True)),
                      blk.attn.qkv.register_forward_hook(keep(store, "qkv")),
                      blk.attn.attn_drop.register_forward_hook(keep(store, "a", True)),
                      blk.attn.proj.register_forward_pre_hook(keep(store, "ctx")),
                      blk.attn.proj.register_forward_hook(keep(store, "y")),
                      blk.norm2.register_forward_pre_hook(keep(store, "mid")),
                      blk.mlp.fc1.register_forward_pre_hook(keep(store, "n2")),
                      blk.mlp.fc2.register_forward_pre_hook(keep(store, "g")),
                      blk.mlp.fc2.register_forward_hook(keep(store, "m"))]
        self.final = {}
        hooks.append(net.norm.register_forward_hook(keep(self.final, "tokens")))
        self.pixels = torch.tensor(np.asarray(images, np.float64).transpose(0, 3, 1, 2), requires_grad=True)
        logits = net(self.pixels)
        for h in hooks:
            h.remove()
        self.logits = logits.detach().numpy()
        self.targets = (logits.argmax(-1) if target is None else
                        torch.as_tensor(np.broadcast_to(np.asarray(target), (len(images),)).copy()))
        logits.gather(1, self.targets[:, None]).sum().backward()
        self.prefix = net.num_prefix_tokens

    def attention(self):
        return [b["a"].detach().numpy() for b in self.blocks]

    def gradients(self):
        return [b["a"].grad.numpy() for b in self.blocks]


def safe_div(a, b):
    import torch

    den = b + 1e-9
    den = torch.where(den == 0, torch.full_like(den, 1e-9), den)
    return torch.where(b != 0, a / den, torch.zeros_like(a))


def torch_lrp_attention(run: TorchRun):
    """Chefer et al.'s relevance of each block's attention, written with torch.autograd.grad for every step (the
    gradient-times-input form of layers_ours.py), on the timm model's captured tensors."""
    import torch
    import torch.nn.functional as F

    def linear(x, weight, r):  # LRP alpha=1 beta=0; weight (out, in)
        px = x.detach().clamp(min=0).requires_grad_()
        nx = x.detach().clamp(max=0).requires_grad_()
        pw, nw = weight.detach().clamp(min=0), weight.detach().clamp(max=0)
        z1, z2 = F.linear(px, pw), F.linear(nx, nw)
        s = safe_div(r, z1 + z2)
        return (px * torch.autograd.grad(z1, px, s)[0] + nx * torch.autograd.grad(z2, nx, s)[0]).detach()

    def product(equation, x0, x1, r):
        x0, x1 = x0.detach().requires_grad_(), x1.detach().requires_grad_()
        z = torch.einsum(equation, x0, x1)
        g0, g1 = torch.autograd.grad(z, (x0, x1), safe_div(r, z))
        return (x0 * g0).detach(), (x1 * g1).detach()

    def add(x0, x1, r):
        x0, x1 = x0.detach().requires_grad_(), x1.detach().requires_grad_()
        z = x0 + x1
        g0, g1 = torch.autograd.grad(z, (x0, x1), safe_div(r, z))
        a, b = (x0 * g0).detach(), (x1 * g1).detach()
        dims = tuple(range(1, r.dim()))
        sa, sb, sr = a.sum(dims, keepdim=True), b.sum(dims, keepdim=True), r.sum(dims, keepdim=True)
        fa = safe_div(sa.abs(), sa.abs() + sb.abs()) * sr
        fb = safe_div(sb.abs(), sa.abs() + sb.abs()) * sr
        return a * safe_div(fa, sa), b * safe_div(fb, sb)

    def clone(x, r0, r1):
        x = x.detach()
        return x * (safe_div(r0, x) + safe_div(r1, x))

    net = run.net
    tokens = run.final["tokens"].detach()
    b, t, d = tokens.shape
    r = torch.nn.functional.one_hot(run.targets, net.num_classes).double()
    if hasattr(net, "head_dist"):
        weight = torch.cat([net.head.weight, net.head_dist.weight], dim=1) / 2  # (classes, 2D)
        picked = tokens[:, :2]
        r_in = linear(picked.reshape(b, -1), weight, r).reshape(b, 2, d)
    else:
        picked = tokens[:, :1]
        r_in = linear(tokens[:, 0], net.head.weight, r)[:, None]
    r = torch.cat([picked * safe_div(r_in, picked), torch.zeros_like(tokens[:, picked.shape[1]:])], dim=1)
    heads = net.blocks[0].attn.num_heads
    out = [None] * len(net.blocks)
    for i in range(len(net.blocks) - 1, -1, -1):
        blk, s = net.blocks[i], {k: v.detach() for k, v in run.blocks[i].items()}
        q, k, v = s["qkv"].reshape(b, t, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        r_mid, r_mlp = add(s["mid"], s["m"], r)
        r_n2 = linear(s["n2"], blk.mlp.fc1.weight, linear(s["g"], blk.mlp.fc2.weight, r_mlp))
        r = clone(s["mid"], r_mid, r_n2)
        r_x, r_y = add(s["x"], s["y"], r)
        r_ctx = linear(s["ctx"], blk.attn.proj.weight, r_y).reshape(b, t, heads, d // heads).transpose(1, 2)
        r_a, r_v = product("bhij,bhjd->bhid", s["a"], v, r_ctx)
        r_a, r_v = r_a / 2, r_v / 2
        out[i] = r_a.numpy()
        r_q, r_k = product("bhid,bhjd->bhij", q, k, r_a)
        r_qkv = torch.stack([r_q / 2, r_k / 2, r_v]).permute(1, 3, 0, 2, 4).reshape(b, t, 3 * d)
        r = clone(s["x"], r_x, linear(s["n1"], blk.attn.qkv.weight, r_qkv))
    return out


def reference_map(run: TorchRun, method: str, grid, **options) -> np.ndarray:
    """The published rules, each written here from the papers / official code on the torch tensors."""
    import torch

    p = run.prefix
    att = [torch.as_tensor(a) for a in run.attention()]
    grads = [torch.as_tensor(g) for g in run.gradients()]
    b, t = att[0].shape[0], att[0].shape[-1]
    eye = torch.eye(t, dtype=torch.float64).expand(b, t, t)
    if method == "grad_rollout":  # vit-explain, each block with its own gradient, rows normalised with keepdim
        ratio = options.get("discard_ratio", 0.9)
        result = eye.clone()
        for a, g in zip(att, grads):
            fused = (a * g).mean(1).clamp(min=0)
            for i in range(b):
                flat = fused[i].reshape(-1)
                if options.get("protect", "entry") == "column":  # the readout column spared
                    outside = torch.arange(t * t)[torch.arange(t * t) % t != 0]
                    k = min(int(t * t * ratio), outside.numel())
                    low = torch.topk(flat[outside], k, largest=False, sorted=True).indices
                    flat[outside[low]] = 0
                else:  # vit-explain: the k smallest, flat index 0 (the class token's own entry) spared
                    low = torch.topk(flat, int(t * t * ratio), largest=False, sorted=True).indices
                    flat[low[low != 0]] = 0
            joint = (fused + eye) / 2
            result = (joint / joint.sum(-1, keepdim=True)) @ result
        row = result[:, 0, p:]
    elif method == "gae":
        r = eye.clone()
        for a, g in zip(att, grads):
            r = r + (g * a).clamp(min=0).mean(1) @ r
        row = r[:, 0, p:]
    elif method == "transformer_attribution":
        start = options.get("start_block", 0)
        cams = [(g * torch.as_tensor(rel)).clamp(min=0).mean(1)
                for rel, g in zip(torch_lrp_attention(run)[start:], grads[start:])]
        result = cams[0] + eye
        for cam in cams[1:]:
            result = (cam + eye) @ result
        row = result[:, 0, p:]
    elif method == "gradcam_attention":
        cam, g = att[-1][:, :, 0, p:], grads[-1][:, :, 0, p:]
        row = (cam * g.mean(-1, keepdim=True)).mean(1).clamp(min=0)
    elif method == "gradcam_tokens":  # pytorch-grad-cam: tokens as channels, weights = spatial mean of gradients
        key = "x" if options.get("site", "output") == "input" else "n1"
        act = run.blocks[-1][key]
        features, grad = act.detach()[:, p:], act.grad[:, p:]
        row = torch.relu((grad.mean(1, keepdim=True) * features).sum(-1))
    else:
        raise KeyError(method)
    return row.reshape(b, *grid).numpy()


def torch_pixel_gradient(net, images, targets):
    import torch

    x = torch.tensor(np.asarray(images, np.float64).transpose(0, 3, 1, 2), requires_grad=True)
    net(x).gather(1, torch.as_tensor(targets)[:, None]).sum().backward()
    return x.grad.numpy().transpose(0, 2, 3, 1)


def pool(values, p):
    b, h, w, c = values.shape
    return values.reshape(b, h // p, p, w // p, p, c).sum(axis=(2, 4, 5))


# -- parity ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,options", [
    ("grad_rollout", {}), ("grad_rollout", {"discard_ratio": 0.5}), ("grad_rollout", {"protect": "column"}), ("gae", {}),
    ("transformer_attribution", {}), ("transformer_attribution", {"start_block": 1}),
    ("gradcam_attention", {}), ("gradcam_tokens", {}), ("gradcam_tokens", {"site": "input"})])
def test_gradient_methods_match_torch_autograd(pair, method, options):
    net, ours, images, name = pair
    grid = (images.shape[1] // 8, images.shape[2] // 8)
    live = 0
    for target in (None, 0, 1, 2, 3, 4):
        run = TorchRun(net, images, target)
        ref = reference_map(run, method, grid, **options)
        got = E.explain(ours, images, method, target=target, **options)
        assert got.shape == ref.shape == (3, *grid)
        if np.max(np.abs(ref)) == 0:  # Grad-CAM's ReLU can zero a whole class: then ours must be zero as well
            assert np.max(np.abs(got)) == 0, (name, method, target)
            continue
        live += 1
        assert relative_error(got, ref) <= RTOL, (name, method, options, target, relative_error(got, ref))
    assert live >= 3, "degenerate references"


def test_pixel_methods_match_torch_autograd(pair):
    net, ours, images, name = pair
    import torch

    ref_net = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        targets = ref_net(torch.tensor(images.astype(np.float64).transpose(0, 3, 1, 2))).argmax(-1).numpy()
    # Integrated gradients: right Riemann sum over m = 6 steps from a constant baseline.
    steps, baseline = 6, 0.25
    grads = sum(torch_pixel_gradient(ref_net, baseline + (k / steps) * (images.astype(np.float64) - baseline),
                                     targets) for k in range(1, steps + 1)) / steps
    ref = pool((images - baseline) * grads, 8)
    got = E.explain(ours, images, "integrated_gradients", steps=steps, baseline=baseline)
    assert relative_error(got, ref) <= RTOL, relative_error(got, ref)
    # SmoothGrad x input with the documented noise: default_rng(seed), one pattern per sample for every image.
    rng = np.random.default_rng(7)
    x = images.astype(np.float64)
    sigma = 0.2 * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    total = 0
    for _ in range(3):
        noise = rng.standard_normal(x.shape[1:])
        noisy = (x + sigma[:, None, None, None] * noise).astype(np.float32)
        total = total + torch_pixel_gradient(ref_net, noisy, targets)
    ref = pool(np.abs(x * total / 3), 8)
    got = E.explain(ours, images, "smoothgrad", samples=3, noise_level=0.2, seed=7)
    assert relative_error(got, ref) <= RTOL, relative_error(got, ref)


def test_integrated_gradients_completeness():
    """The sum of the attributions approaches y(x) - y(baseline) as the steps grow (the right Riemann sum's error
    falls like 1/steps)."""
    ours = tiny()
    images = np.random.RandomState(0).randn(2, 32, 32, 3).astype(np.float32)
    logits = np.asarray(ours(images)[0], np.float64)
    base = np.asarray(ours(np.zeros_like(images))[0], np.float64)
    t = logits.argmax(-1)
    gap = logits[np.arange(2), t] - base[np.arange(2), t]
    errors = [np.abs(E.explain(ours, images, "integrated_gradients", steps=s, internal_batch_size=128).sum((1, 2))
                     - gap).max() for s in (16, 64, 256)]
    assert errors[0] > 2.5 * errors[1] > 6.0 * errors[2], errors
    assert errors[2] < 0.03 * np.abs(gap).max(), (errors, gap)


def test_forward_intermediates_are_the_models_own_pass():
    """`forward_intermediates` is the call's arithmetic (equal logits and attention); in float64 it agrees with the
    float32 model to float32 precision and with the independent float64 replica to float64 rounding, for class,
    distillation and register tokens, resampled grids and pre-logits."""
    import tensorflow as tf

    from explain_oracle import float64_forward

    cases = [tiny("deit_tiny_distilled_patch16_224", img_size=(32, 48), seed=1),
             tiny(num_register_tokens=2, no_embed_class=True), tiny(representation_size=16, init_values=0.1)]
    for model, size in zip(cases, [(32, 48), (24, 40), (32, 32)]):
        images = tf.constant(np.random.RandomState(0).randn(2, *size, 3).astype(np.float32))
        logits, attention = model(images)
        outputs, records, _ = model.forward_intermediates(images)
        np.testing.assert_array_equal(np.asarray(outputs["logits"]), np.asarray(logits))
        np.testing.assert_array_equal(np.asarray(records[-1]["a"]), np.asarray(attention["transformer_block_1_att"]))
        exact, records64, _ = model.forward_intermediates(images, dtype="float64")
        assert exact["logits"].dtype == tf.float64 and records64[0]["a"].dtype == tf.float64
        scale = max(1.0, float(np.abs(logits).max()))
        np.testing.assert_allclose(np.asarray(exact["logits"]), np.asarray(logits), rtol=0, atol=2e-5 * scale)
        replica = np.asarray(float64_forward(model, images)[0])
        np.testing.assert_allclose(np.asarray(exact["logits"]), replica, rtol=0, atol=1e-12 * scale)


def test_transformer_attribution_equals_the_float64_oracle(deit):
    from explain_oracle import oracle_attribution

    images = np.random.RandomState(4).randn(3, 32, 48, 3).astype(np.float32)
    for start in (0, 1):
        for target in (0, 3):
            got = E.explain(deit, images, "transformer_attribution", target=target, start_block=start)
            ref = oracle_attribution(deit, images, np.full(3, target), start)
            assert relative_error(got, ref) <= 1e-4, (start, target, relative_error(got, ref))


def test_class_agnostic_methods_are_the_attention_and_the_rollout(deit):
    ours = deit
    images = np.random.RandomState(0).randn(2, 32, 48, 3).astype(np.float32)
    _, attention = ours(images)
    last = np.asarray(attention["transformer_block_1_att"], np.float64)
    # The compiled pass and the eager call may round differently (grappler fuses ops): float32 precision.
    np.testing.assert_allclose(E.explain(ours, images, "attention"), last[:, :, 0, 2:].mean(1).reshape(2, 4, 6),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(E.explain(ours, images, "attention", token="dist"),
                               last[:, :, 1, 2:].mean(1).reshape(2, 4, 6), rtol=1e-5, atol=1e-7)
    for ratio, protect in ((0.0, "entry"), (0.5, "entry"), (0.5, "column")):
        joint = rollout_matrix(attention, start_block=1, discard_ratio=ratio, protect=protect)
        np.testing.assert_allclose(E.explain(ours, images, "rollout", start_block=1, target=3,
                                             discard_ratio=ratio, protect=protect),
                                   joint[:, 0, 2:].reshape(2, 4, 6), rtol=1e-5, atol=1e-7)


def test_several_methods_share_one_pass_and_equal_single_runs(deit):
    images = np.random.RandomState(2).randn(3, 32, 48, 3).astype(np.float32)
    methods = ["gae", "grad_rollout", "gradcam_attention", "gradcam_tokens", "attention", "rollout",
               "transformer_attribution", "integrated_gradients"]
    before = set(deit.__dict__.get("_vit_tf_compiled_functions", {}))
    together = E.explain(deit, images, methods, target=[0, 4, 2], steps=3)
    assert list(together) == methods
    new = set(deit.__dict__["_vit_tf_compiled_functions"]) - before
    assert len(new) == 1 and next(iter(new)).startswith("explain:step"), new  # one compiled step for all methods
    for m in methods:
        alone = E.explain(deit, images, m, target=[0, 4, 2], **({"steps": 3} if m == "integrated_gradients" else {}))
        # Another traced graph may fuse and order float32 ops differently: equal to float32 rounding.
        assert relative_error(together[m], alone) <= 1e-5, (m, relative_error(together[m], alone))
    with pytest.raises(ValueError, match=r"methods \['gae', 'rollout'\] take no option\(s\) \['steps'\]"):
        E.explain(deit, images, ["gae", "rollout"], steps=3)


# -- known answers ---------------------------------------------------------------------------------------------------
PATCH = 5  # (row 1, col 1) of the 4 x 4 grid


def one_patch_model(dtype=None, marker=10.0, sharpness=100.0, seed=0, head_marker=(2.0, 1.6, 1.2, 0.8, 0.4),
                    content_scale=0.3, class_key=0.0):
    """Depth 2, one head, width 12, patch 8, 32 x 32 input, 5 classes, built by hand so that the logits depend on
    patch PATCH only: block 0 and both MLPs output zero; in block 1 the class token's query reads its own marker
    dimension and only patch PATCH's key carries the patch marker (softmax logit margin about 100, so its attention
    is one-hot up to exp(-90)); the values copy the marker and the patch's 3 content dimensions into the class
    token, which the head reads. A large +/- pattern in two dimensions of every token keeps the LayerNorms
    well-conditioned. Every class's weight on the marker dimension (`head_marker`) is positive by default, so every
    class has positive evidence at that patch. `class_key` > 0 gives the class token a key of its own (a sink, a
    logit margin ~50 below the patch's), so that with the patch's token dropped it attends to itself."""
    kw = {} if dtype is None else {"dtype": dtype}
    m = vit_tf.create_model("vit_tiny_patch16_224", depth=2, embed_dim=12, num_heads=1, mlp_dim=24, patch_size=8,
                            img_size=32, num_classes=5, **kw)
    rng = np.random.RandomState(seed)
    d = 12
    for v in m.weights:
        v.assign(np.zeros(v.shape, "float32"))
    kernel = np.zeros((8, 8, 3, d), np.float32)
    kernel[..., 2:5] = rng.randn(8, 8, 3, 3) * 0.05  # content dimensions 2..4
    m.patch_embed.proj.kernel.assign(kernel)
    pos = np.zeros((1, 17, d), np.float32)
    pos[0, :, 5], pos[0, :, 6] = marker, -marker
    pos[0, 0, 1] = marker  # the class token's marker
    pos[0, 1 + PATCH, 0] = marker  # the patch marker
    m.pos_embed.assign(pos)
    for norm in [m.norm] + [b.norm1 for b in m.blocks] + [b.norm2 for b in m.blocks]:
        norm.gamma.assign(np.ones(d, np.float32))
    qkv = np.zeros((d, 3 * d), np.float32)
    qkv[1, 0] = sharpness  # query: class marker
    qkv[0, d] = 1.0  # key: patch marker
    qkv[1, d] = class_key  # key: class marker (a sink when the patch token is absent)
    proj = np.zeros((d, d), np.float32)
    for i in (0, 2, 3, 4):
        qkv[i, 2 * d + i] = 1.0  # values: marker and content
        proj[i, i] = 1.0
    m.blocks[1].attn.qkv.kernel.assign(qkv)
    m.blocks[1].attn.proj.kernel.assign(proj)
    head = np.zeros((d, 5), np.float32)
    head[0] = head_marker
    head[2:5] = rng.randn(3, 5) * content_scale
    m.head.kernel.assign(head)
    return m


@pytest.fixture(scope="module")
def one_patch():
    return one_patch_model()


def test_one_patch_model_depends_on_that_patch_only(one_patch):
    m = one_patch
    x = np.random.RandomState(1).randn(4, 32, 32, 3).astype(np.float32)
    logits = np.asarray(m(x)[0])
    other = x.copy()
    other[:, :8, :8] += 3.0  # patch 0
    other[:, 24:, 16:] -= 2.0  # patches 14, 15
    assert np.array_equal(np.asarray(m(other)[0]), logits)
    mine = x.copy()
    mine[:, 8:16, 8:16] += 1.0
    assert np.abs(np.asarray(m(mine)[0]) - logits).max() > 0.05


SPECIFIC = ["grad_rollout", "gae", "transformer_attribution", "gradcam_attention", "integrated_gradients",
            "smoothgrad"]


@pytest.mark.parametrize("method", SPECIFIC)
def test_class_specific_methods_put_the_relevance_on_the_one_patch(method, one_patch):
    m = one_patch
    x = np.random.RandomState(1).randn(4, 32, 32, 3).astype(np.float32)
    options = {"integrated_gradients": {"steps": 8}, "smoothgrad": {"samples": 4}}.get(method, {})
    for target in range(5):
        maps = np.abs(E.explain(m, x, method, target=target, **options)).reshape(4, -1)
        total = maps.sum(-1)
        assert np.all(total > 0), (method, target)
        share = maps[:, PATCH] / total
        assert share.min() >= 1 - 1e-6, (method, target, share)


def test_token_gradcam_on_the_one_patch_model(one_patch):
    """Grad-CAM's channel weights are shared by all patches, so other patches with similar features light up too
    (not a one-token attribution): the patch is the peak and holds most of the map on norm1's output (the
    pytorch-grad-cam layer). At norm1's input the map vanishes here, as grad x input of a LayerNorm's input is
    zero (scale invariance) and this model has no residual path from the patch to the class token."""
    m = one_patch
    x = np.random.RandomState(1).randn(4, 32, 32, 3).astype(np.float32)
    for target in range(5):
        maps = E.explain(m, x, "gradcam_tokens", target=target).reshape(4, -1)  # the default: norm1's output
        assert np.all(maps.argmax(-1) == PATCH)
        assert np.all(maps[:, PATCH] / maps.sum(-1) > 0.5)
        assert np.abs(E.explain(m, x, "gradcam_tokens", target=target, site="input")).max() < 1e-6


def test_rollout_type_rows_sum_to_one(deit):
    ours = deit
    images = np.random.RandomState(0).randn(2, 32, 48, 3).astype(np.float32)
    _, targets, attention, gradients = E.attention_gradients(ours, images)
    for ratio in (0.0, 0.9):
        for column in (0, 1):
            for protect in ("entry", "column"):
                joint = E.grad_rollout_matrix(attention, gradients, keep_token=column, discard_ratio=ratio,
                                              protect=protect)
                np.testing.assert_allclose(joint.sum(-1), 1.0, atol=1e-12)
                assert joint.min() >= 0
    np.testing.assert_allclose(rollout_matrix(attention).sum(-1), 1.0, atol=1e-12)
    # Zero gradients: grad rollout and GAE reduce to the identity (no patch relevance), attribution to I as well.
    zeros = [np.zeros_like(g) for g in gradients]
    np.testing.assert_allclose(E.grad_rollout_matrix(attention, zeros), np.broadcast_to(np.eye(26), (2, 26, 26)))
    assert not E.gae_map(attention, zeros, num_prefix_tokens=2, grid_size=(4, 6)).any()


@pytest.mark.parametrize("protect", ["entry", "column"])
def test_discard_rule_is_one_rule_in_numpy_and_in_the_graph(protect):
    """The one discard rule (rules.discard_lowest in the graph, rollout.discard_lowest in NumPy): "entry" zeroes the
    k smallest entries but the readout token's own; "column" the k smallest outside its column."""
    import tensorflow as tf

    from vit_tf.analysis.explanations import rules
    from vit_tf.analysis.rollout import discard_lowest

    rng = np.random.RandomState(0)
    fused = rng.rand(2, 5, 5)
    fused[0, 1, 1] = -1.0  # the readout's own entry is the smallest of image 0
    k = int(25 * 0.6)
    out = discard_lowest(fused, 0.6, keep=1, protect=protect)
    np.testing.assert_array_equal(rules.discard_lowest(tf.constant(fused), 0.6, 1, protect).numpy(), out)
    if protect == "column":
        np.testing.assert_array_equal(out[:, :, 1], fused[:, :, 1])
        assert np.all((out == 0).sum(axis=(1, 2)) == k)
        kept, dropped = np.delete(out, 1, axis=2).reshape(2, -1), np.delete(fused, 1, axis=2).reshape(2, -1)
    else:
        assert out[0, 1, 1] == -1.0 and (out[0] == 0).sum() == k - 1  # spared, so one fewer goes
        assert (out[1] == 0).sum() == k
        kept, dropped = out.reshape(2, -1), fused.reshape(2, -1)
        kept, dropped = np.delete(kept, 6, axis=1), np.delete(dropped, 6, axis=1)
    for i in range(2):  # the zeroed entries are the smallest of the candidates
        assert dropped[i][kept[i] == 0].max() <= dropped[i][kept[i] != 0].min()
    with pytest.raises(ValueError, match="protect"):
        E.explain(tiny(), np.zeros((1, 32, 32, 3), np.float32), "rollout", protect="row")


# -- batches, layouts, dtypes -----------------------------------------------------------------------------------------
def tiny(arch="vit_tiny_patch16_224", img_size=32, seed=0, **overrides):
    import keras

    keras.utils.set_random_seed(seed)
    return vit_tf.create_model(arch, img_size=img_size, **{**TINY, **overrides})


FAST = {"integrated_gradients": {"steps": 3}, "smoothgrad": {"samples": 2}}


def test_batch_of_eight_equals_single_images(deit):
    ours = deit
    images = np.random.RandomState(5).randn(8, 32, 48, 3).astype(np.float32)
    targets = np.arange(8) % 5
    options = {"steps": 3, "samples": 2}
    batch = E.explain(ours, images, E.METHODS, target=targets, **options)
    singles = [E.explain(ours, images[i:i + 1], E.METHODS, target=int(targets[i]), **options) for i in range(8)]
    for method in E.METHODS:
        alone = np.concatenate([single[method] for single in singles])
        assert batch[method].shape == (8, 4, 6)
        scale = max(np.abs(alone).max(), 1e-30)
        assert np.abs(batch[method] - alone).max() <= 1e-5 * scale, method


def test_registers_and_start_block_and_errors():
    ours = tiny(num_register_tokens=2, img_size=(24, 40))
    images = np.random.RandomState(0).randn(2, 24, 40, 3).astype(np.float32)
    for method in ("gae", "transformer_attribution", "grad_rollout", "gradcam_attention", "gradcam_tokens"):
        assert E.explain(ours, images, method).shape == (2, 3, 5)
    with pytest.raises(ValueError, match="unknown method"):
        E.explain(ours, images, "lime")
    with pytest.raises(ValueError, match="takes no option"):
        E.explain(ours, images, "gae", steps=3)
    for bad in (5, -1, [0, -1]):  # -1 must not become the last class
        with pytest.raises(ValueError, match=r"target .* out of range for 5 classes"):
            E.explain(ours, images, "gae", target=bad)
        with pytest.raises(ValueError, match=r"target .* out of range for 5 classes"):
            E.attention_gradients(ours, images, target=bad)
    with pytest.raises(ValueError, match="out of range"):
        E.explain(ours, images, "transformer_attribution", start_block=2)
    with pytest.raises(ValueError, match="num_classes=0"):
        E.explain(tiny(num_classes=0), images, "gae")
    assert E.explain(tiny(num_classes=0), images, "rollout").shape == (2, 3, 5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_reduced_precision_models(dtype, deit):
    """Same weights in bfloat16 / float16: finite maps of the right shape whose ranking agrees with float32's
    (Spearman correlation over all patches >= 0.8 for every method)."""
    from scipy.stats import spearmanr

    full = deit
    low = vit_tf.create_model("deit_tiny_distilled_patch16_224", img_size=(32, 48), dtype=dtype, **TINY)
    low.set_weights(full.get_weights())
    images = np.random.RandomState(0).randn(2, 32, 48, 3).astype(np.float32)
    targets = np.asarray(full(images)[0]).argmax(-1)
    every = E.explain(full, images, E.METHODS, target=targets, steps=4, samples=4)
    lows = E.explain(low, images, E.METHODS, target=targets, steps=4, samples=4)
    for method in E.METHODS:
        a, b = every[method], lows[method]
        assert b.shape == a.shape and np.all(np.isfinite(b)), method
        rho = spearmanr(a.ravel(), b.ravel()).statistic
        assert rho >= 0.8, (dtype, method, rho)


def test_docstring_example():
    import doctest

    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(E.explain, "explain", globs={}):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0 and runner.summarize(verbose=False).attempted == 5


def test_docs_explainer_example_streams_batches():
    """docs/explanations.md's Explainer example runs as written on a tiny model and two batches, each equal to
    `explain` on that batch alone."""
    import re
    from pathlib import Path

    from analysis_support import tiny_model

    page = Path(__file__).resolve().parents[1] / "docs" / "explanations.md"
    code = next(block for block in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
                if "Explainer(" in block)
    model = tiny_model()
    rng = np.random.RandomState(0)
    batches = [(rng.randn(3, 32, 32, 3).astype("float32"), np.array([1, 2, 3])) for _ in range(2)]
    namespace = {"vit_tf": vit_tf, "model": model, "batches": batches}
    exec(compile(code, str(page), "exec"), namespace)
    maps, targets = namespace["maps"], namespace["targets"]
    images, labels = batches[-1]
    assert sorted(maps) == ["gae", "grad_rollout", "integrated_gradients"] and targets.tolist() == [1, 2, 3]
    alone = vit_tf.explain(model, images, ["gae", "grad_rollout", "integrated_gradients"], target=labels, steps=32)
    for method in maps:
        assert maps[method].shape == (3, 4, 4)
        np.testing.assert_allclose(maps[method], alone[method], rtol=1e-5, atol=1e-9)
    assert namespace["logits"].shape == (3, 10)
