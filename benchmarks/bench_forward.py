"""Forward-pass speed of vit_tf against timm, measured in one process with the same threads, each side doing the
same work once.

    python benchmarks/bench_forward.py [--model vit_base_patch16_224] [--batch 8] [--repeats 5]

Rows (random weights; speed does not depend on them):
  - vit_tf in graph mode (`tf.function`), XLA (`jit_compile=True`) and eager, each returning every block's map, the
    last block's map, or none (fused attention); bfloat16 in graph mode;
  - timm with fused attention (`F.scaled_dot_product_attention`, no maps): one forward;
  - timm unfused with `timm.utils.AttentionExtract` hooks (the same maps as ours): one forward — the extractor runs
    the model itself, so it is timed alone (timing it beside another forward would count timm twice);
  - a 2048x2048 float32 matmul in TensorFlow: the machine's reachable peak.
It prints images/s, GFLOP/s (analytic FLOPs of the forward pass) and each ratio, then the bfloat16 error of the
attention and of the mean attention distance against float32 on the same weights. No assertions: reports only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch  # before TensorFlow: see README, "Using torch and vit_tf in one process"
import torchvision  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import timm  # noqa: E402
from timm.utils import AttentionExtract  # noqa: E402

import vit_tf  # noqa: E402
from vit_tf import analysis  # noqa: E402


def median_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()  # tracing, compilation, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_flops(config, height, width) -> float:
    """Multiply-adds x 2 of one image's forward pass (patch embedding, blocks, head)."""
    d, m, p = config.embed_dim, config.mlp_dim, config.patch_size
    n = config.num_prefix_tokens + (height // p) * (width // p)
    patches = (height // p) * (width // p)
    per_block = 2 * n * d * 3 * d + 2 * 2 * n * n * d + 2 * n * d * d + 2 * 2 * n * d * m
    return 2 * patches * 3 * p * p * d + config.depth * per_block + 2 * d * max(config.num_classes, 0)


def matmul_peak(repeats) -> float:
    a = tf.random.normal((2048, 2048))
    mm = tf.function(lambda x: tf.matmul(x, x))
    t = median_time(lambda: mm(a).numpy(), repeats)
    return 2 * 2048 ** 3 / t / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vit_base_patch16_224")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    ref = timm.create_model(args.model, pretrained=False).eval()
    ours = vit_tf.create_model(args.model)
    vit_tf.load_timm_state_dict(ours, {k: v.numpy() for k, v in ref.state_dict().items()})
    c = ours.config
    h, w = c.img_size
    images = np.random.RandomState(0).randn(args.batch, h, w, 3).astype("float32")
    x_torch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    x_tf = tf.constant(images)
    flops = forward_flops(c, h, w) * args.batch

    def to_host(pair):
        return [v.numpy() for v in tf.nest.flatten(pair)]  # every returned array reaches the host, as users need

    rows = []
    requests = {"all maps": True, "last map": [-1], "no maps": False}
    for mode, jit in (("graph", False), ("XLA", True)):
        for label, request in requests.items():
            fn = tf.function(lambda x, r=request: ours(x, return_attention=r), jit_compile=jit)
            rows.append((f"vit_tf {mode}, {label}", median_time(lambda: to_host(fn(x_tf)), args.repeats)))
    for label, request in requests.items():
        rows.append((f"vit_tf eager, {label}", median_time(lambda r=request: to_host(ours(x_tf, return_attention=r)),
                                                          args.repeats)))
    low = vit_tf.factory.rebuild(ours, dtype="bfloat16")
    for label, request in requests.items():
        fn = tf.function(lambda x, r=request: low(x, return_attention=r))
        rows.append((f"vit_tf graph bfloat16, {label}", median_time(lambda: to_host(fn(x_tf)), args.repeats)))

    with torch.no_grad():
        t_fused = median_time(lambda: ref(x_torch), args.repeats)
        for module in ref.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = False
        extractor = AttentionExtract(ref, method="hook")
        t_maps = median_time(lambda: extractor(x_torch), args.repeats)  # one forward: the extractor runs the model
    peak = matmul_peak(args.repeats)

    print(f"model {args.model}, batch {args.batch}, {h}x{w}, median of {args.repeats}; threads: TF intra-op "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()}, torch "
          f"{torch.get_num_threads()}; forward {forward_flops(c, h, w) / 1e9:.1f} GFLOP/image")
    print(f"TF float32 2048^2 matmul: {peak:.0f} GFLOP/s (reachable peak)")
    print(f"{'':44s} {'ms/batch':>9s} {'img/s':>7s} {'GFLOP/s':>8s} {'% peak':>7s} {'/timm fused':>11s} "
          f"{'/timm maps':>10s}")
    rows += [("timm fused (no maps)", t_fused), ("timm unfused + AttentionExtract (all maps)", t_maps)]
    for label, t in rows:
        gflops = flops / t / 1e9
        # ratio = their time / our time: > 1 means we are faster
        print(f"{label:44s} {t * 1000:9.1f} {args.batch / t:7.2f} {gflops:8.1f} {100 * gflops / peak:6.0f}% "
              f"{t_fused / t:11.2f} {t_maps / t:10.2f}")
    times = dict(rows)
    print(f"bfloat16 speed-up over float32 (graph, no maps): "
          f"{times['vit_tf graph, no maps'] / times['vit_tf graph bfloat16, no maps']:.2f}x; "
          f"(graph, all maps): {times['vit_tf graph, all maps'] / times['vit_tf graph bfloat16, all maps']:.2f}x")

    _, att32 = ours(x_tf)
    _, att16 = low(x_tf)
    att_err = max(float(np.max(np.abs(att16[k].numpy() - att32[k].numpy()))) for k in att32)
    common = dict(patch_size=c.patch_size, num_prefix_tokens=c.num_prefix_tokens)
    d32 = analysis.mean_attention_distance(att32, **common)
    d16 = analysis.mean_attention_distance(att16, **common)
    print(f"bfloat16 vs float32 (same weights): max |d attention| {att_err:.2e}, max |d mean distance| "
          f"{np.max(np.abs(d16 - d32)):.3f} px (of up to {np.max(d32):.1f} px)")


if __name__ == "__main__":
    main()
