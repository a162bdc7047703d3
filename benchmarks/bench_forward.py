"""Forward-pass time and peak memory of vit_tf against timm, measured in one run on this machine.

    python benchmarks/bench_forward.py [--model vit_base_patch16_224] [--batch 8] [--repeats 10]

Prints each implementation's median time per batch and the ratio ours / timm. Both return attention maps: timm
with fused attention off and AttentionExtract hooks (what a user needs for the same maps), and plain timm with
fused attention (the fastest reference, no maps). No assertions: these numbers are reports, not tests.
"""

import argparse
import os
import resource
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


def median_time(fn, repeats):
    fn()  # warm-up: tracing, allocation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vit_base_patch16_224")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()

    ref = timm.create_model(args.model, pretrained=False).eval()
    ours = vit_tf.create_model(args.model)
    vit_tf.load_timm_state_dict(ours, {k: v.numpy() for k, v in ref.state_dict().items()})
    size = ours.config.img_size
    images = np.random.RandomState(0).randn(args.batch, *size, 3).astype("float32")
    x_torch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    x_tf = tf.constant(images)

    forward = tf.function(lambda x: ours(x), jit_compile=False)
    t_ours = median_time(lambda: [v.numpy() for v in tf.nest.flatten(forward(x_tf))], args.repeats)

    with torch.no_grad():
        t_fused = median_time(lambda: ref(x_torch), args.repeats)
        for m in ref.modules():
            if hasattr(m, "fused_attn"):
                m.fused_attn = False
        extractor = AttentionExtract(ref, method="hook")
        t_maps = median_time(lambda: (extractor(x_torch), ref(x_torch)), args.repeats)

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model {args.model}, batch {args.batch}, {size[0]}x{size[1]}, threads: torch "
          f"{torch.get_num_threads()}, median of {args.repeats}")
    print(f"vit_tf (tf.function, returns attention):        {t_ours * 1000:8.1f} ms")
    print(f"timm, unfused + AttentionExtract (same maps):    {t_maps * 1000:8.1f} ms   ratio ours/timm "
          f"{t_ours / t_maps:.2f}")
    print(f"timm, fused attention (no maps):                 {t_fused * 1000:8.1f} ms   ratio ours/timm "
          f"{t_ours / t_fused:.2f}")
    print(f"peak resident memory of this process (both frameworks): {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
