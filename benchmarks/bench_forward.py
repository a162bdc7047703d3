"""Forward-pass speed of vit_tf against timm, measured in one process, each side doing the same work once.

    python benchmarks/bench_forward.py [--models vit_small_patch16_224,vit_base_patch16_224] [--batches 8,32]
                                       [--rounds 5] [--calls 2] [--no-bf16] [--xla] [--eager]

For each model and batch, the sides run in alternating blocks: in every round each side is called once untimed
(the call after switching pays for the other framework's threads still spinning, and a first call's tracing), then
`--calls` timed calls whose median is the side's time in that round. Ratios are taken within a round (timm's time
/ ours: above 1 means vit_tf is faster); the report gives the median over rounds and the range (min-max), since
one ratio on a shared 2-core CPU swings by +-25 %.

Sides (random weights; speed does not depend on them):
  float32  vit_tf `tf.function`, every block's map / no maps  vs  timm + `AttentionExtract` (unfused attention, the
           same maps; the extractor runs the model itself, so it is timed alone) / timm fused (SDPA, no maps).
  bfloat16 vit_tf `dtype="bfloat16"`, every map / no maps  vs  the same timm sides under
           `torch.autocast("cpu", torch.bfloat16)` (only where the CPU has bfloat16 units, unless --bf16-anyway).
  --xla, --eager: vit_tf with `jit_compile=True` / called eagerly, against the same timm sides.
Every returned array reaches the host on both sides (`.numpy()`), as users need them.

Then the bfloat16 error against float32 on the same weights: logits, attention maps, mean attention distance.
Prints the machine (CPU model, flags that matter, TensorFlow / torch versions). Reports only: no assertions.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch  # before TensorFlow: see docs/troubleshooting.md, "Using torch and vit_tf in one process"
import torchvision  # noqa: F401

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import timm  # noqa: E402
from timm.utils import AttentionExtract  # noqa: E402

import vit_tf  # noqa: E402
from vit_tf import analysis, hardware  # noqa: E402


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    flags = sorted(f for f in hardware.cpu_flags() if f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16",
                                                             "avx512_vnni", "avx512_fp16"))
    return (f"{model}, {os.cpu_count()} logical CPUs; flags: {' '.join(flags) or 'none of avx2/avx512'}; bfloat16 "
            f"path: {hardware.bfloat16_path()}; TensorFlow {tf.__version__}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), timm {timm.__version__}")


def alternate(sides: dict, rounds: int, calls: int) -> dict:
    """{label: fn} -> {label: [seconds per call, one median per round]}; blocks alternate between sides."""
    times = {label: [] for label in sides}
    for _ in range(rounds):
        for label, fn in sides.items():
            fn()  # after switching: untimed
            per_call = []
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                per_call.append(time.perf_counter() - start)
            times[label].append(statistics.median(per_call))
    return times


def ratio_text(theirs, ours) -> str:
    r = [t / o for t, o in zip(theirs, ours)]
    return f"{statistics.median(r):.2f} ({min(r):.2f}-{max(r):.2f})"


def to_host(pair):
    # np.asarray views a CPU tensor's buffer, as torch's .numpy() does on the timm side; TensorFlow's .numpy()
    # would copy it (a second for ViT-B/16's 715 MB of maps at batch 32), a cost timm's side does not pay.
    return [np.asarray(v) for v in tf.nest.flatten(pair)]


def bench(name: str, batch: int, args) -> None:
    ref = timm.create_model(name, pretrained=False).eval()
    ours = vit_tf.create_model(name)
    vit_tf.load_timm_state_dict(ours, {k: v.numpy() for k, v in ref.state_dict().items()})
    h, w = ours.config.img_size
    images = np.random.RandomState(0).randn(batch, h, w, 3).astype("float32")
    x_torch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    x_tf = tf.constant(images)
    unfused = timm.create_model(name, pretrained=False).eval()
    unfused.load_state_dict(ref.state_dict())
    for module in unfused.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    extractor = AttentionExtract(unfused, method="hook")

    def timm_side(fn, bf16=False):
        def run():
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                out = fn(x_torch)
            return [v.float().numpy() for v in (out.values() if isinstance(out, dict) else [out])]
        return run

    def ours_side(model, request, jit=False, eager=False):
        if eager:
            return lambda: to_host(model(x_tf, return_attention=request))
        fn = tf.function(lambda x: model(x, return_attention=request), jit_compile=jit)
        return lambda: to_host(fn(x_tf))

    groups = [("float32", {"vit_tf, every map": ours_side(ours, True), "timm + AttentionExtract": timm_side(extractor),
                           "vit_tf, no maps": ours_side(ours, False), "timm fused": timm_side(ref)})]
    pairs = [("vit_tf, every map", "timm + AttentionExtract"), ("vit_tf, no maps", "timm fused")]
    low = None
    if not args.no_bf16 and (hardware.bfloat16_path() != "CPU, emulated" or args.bf16_anyway):
        low = vit_tf.factory.rebuild(ours, dtype="bfloat16")
        groups.append(("bfloat16", {"vit_tf bf16, every map": ours_side(low, True),
                                    "timm bf16 + AttentionExtract": timm_side(extractor, True),
                                    "vit_tf bf16, no maps": ours_side(low, False),
                                    "timm bf16 fused": timm_side(ref, True)}))
        pairs += [("vit_tf bf16, every map", "timm bf16 + AttentionExtract"),
                  ("vit_tf bf16, no maps", "timm bf16 fused")]
    if args.xla or args.eager:
        extra = {}
        if args.xla:
            extra["vit_tf XLA, every map"] = ours_side(ours, True, jit=True)
            extra["vit_tf XLA, no maps"] = ours_side(ours, False, jit=True)
            pairs += [("vit_tf XLA, every map", "timm + AttentionExtract"), ("vit_tf XLA, no maps", "timm fused")]
        if args.eager:
            extra["vit_tf eager, every map"] = ours_side(ours, True, eager=True)
            extra["vit_tf eager, no maps"] = ours_side(ours, False, eager=True)
            pairs += [("vit_tf eager, every map", "timm + AttentionExtract"),
                      ("vit_tf eager, no maps", "timm fused")]
        groups.append(("other", {**extra, "timm + AttentionExtract": timm_side(extractor),
                                 "timm fused": timm_side(ref)}))
    print(f"\n{name}, batch {batch}, {h}x{w}: {args.rounds} rounds x {args.calls} timed calls per side")
    print(f"  {'side':34s} {'ms/batch':>9s} {'img/s':>7s}   {'timm / vit_tf: median (range)':s}")
    for group, sides in groups:
        times = alternate(sides, args.rounds, args.calls)
        medians = {k: statistics.median(v) for k, v in times.items()}
        for label, t in medians.items():
            line = f"  {label:34s} {t * 1000:9.0f} {batch / t:7.2f}"
            for ours_label, theirs_label in pairs:
                if label == ours_label and theirs_label in times:
                    line += f"   vs {theirs_label}: {ratio_text(times[theirs_label], times[label])}"
            print(line, flush=True)
    if low is not None:
        logits32, att32 = ours(x_tf)
        logits16, att16 = low(x_tf)
        att_err = max(float(np.max(np.abs(att16[k].numpy() - att32[k].numpy()))) for k in att32)
        common = dict(patch_size=ours.config.patch_size, num_prefix_tokens=ours.config.num_prefix_tokens)
        d32 = analysis.mean_attention_distance(att32, **common)
        d16 = analysis.mean_attention_distance(att16, **common)
        top1 = float(np.mean(np.argmax(logits32, -1) == np.argmax(logits16, -1)))
        print(f"  bfloat16 vs float32, same weights: max |d logits| {np.max(np.abs(logits16 - logits32)):.3g} (of "
              f"max |logit| {np.max(np.abs(logits32)):.3g}), top-1 agreement {top1:.0%}, max |d attention| "
              f"{att_err:.2e}, max |d mean distance| {np.max(np.abs(d16 - d32)):.3f} px (of up to "
              f"{np.max(d32):.1f} px)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="vit_small_patch16_224,vit_base_patch16_224")
    parser.add_argument("--batches", default="8,32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--bf16-anyway", action="store_true", help="time bfloat16 even where it is emulated")
    parser.add_argument("--xla", action="store_true")
    parser.add_argument("--eager", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}; date {time.strftime('%Y-%m-%d')}")
    for name in args.models.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            bench(name, batch, args)


if __name__ == "__main__":
    main()
