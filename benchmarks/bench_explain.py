"""Explanations, faithfulness and head importance at the cost of the passes they need: each measured against the
batched forward or forward+backward passes it cannot avoid, in one process, alternating blocks as
bench_forward.py does (an untimed call after each switch, the median of the timed calls per round, ratios within a
round, the median and range over rounds).

    python benchmarks/bench_explain.py [--model vit_small_patch16_224] [--batch 8] [--rounds 3] [--steps 16]

Targets of issue 16 (cost / reference, at most):
    gae, grad_rollout, gradcam_attention on a batch   2x   one batched forward+backward (input gradient of the
                                                            target logits, the same batch)
    the three together (`methods=[...]`, one pass)      2x   the same single forward+backward
    integrated gradients, n steps                      1.5x  ceil(n * B / rows) forward+backward passes of `rows`
                                                            images (rows = internal_batch_size)
    deletion / insertion, S steps                      1.5x  ceil((S + 1) * B / batch_size) forwards of batch_size
                                                            images
    head importance                                     2x   one forward+backward
Each cost includes what a user pays per call: input checks, the compiled step, the host copy of the maps. The
compiled functions are traced in the untimed first call. Reports only: no assertions.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vit_tf  # noqa: E402
from vit_tf.analysis import faithfulness, heads  # noqa: E402

from bench_forward import alternate, machine  # noqa: E402


def fwd_bwd_function(model):
    @tf.function(reduce_retracing=True)
    def fn(images, targets):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(images)
            logits = tf.cast(model(images, training=False, return_attention=False)[0], tf.float32)
            y = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
        return tape.gradient(y, images)
    return fn


def forward_function(model):
    @tf.function(reduce_retracing=True)
    def fn(images):
        return tf.cast(model(images, training=False, return_attention=False)[0], tf.float32)
    return fn


def report(title, times, ours, reference, target):
    r = [o / t for o, t in zip(times[ours], times[reference])]
    verdict = "met" if statistics.median(r) <= target else "NOT met"
    print(f"  {title:44s} {statistics.median(times[ours]) * 1000:8.0f} ms  cost {statistics.median(r):.2f}x "
          f"({min(r):.2f}-{max(r):.2f}) of {statistics.median(times[reference]) * 1000:.0f} ms reference; target "
          f"<= {target}x: {verdict}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--steps", type=int, default=16, help="integrated gradients steps")
    parser.add_argument("--rows", type=int, default=16, help="internal_batch_size of integrated gradients")
    parser.add_argument("--faithfulness-batch", type=int, default=64)
    args = parser.parse_args()
    print(f"machine: {machine()}; date {time.strftime('%Y-%m-%d')}")

    model = vit_tf.create_model(args.model)
    h, w = model.config.img_size
    b = args.batch
    rng = np.random.RandomState(0)
    images = rng.randn(b, h, w, 3).astype("float32")
    x = tf.constant(images)
    targets = np.arange(b) % model.config.num_classes
    t = tf.constant(targets)
    fwd_bwd = fwd_bwd_function(model)
    forward = forward_function(model)
    print(f"{args.model}, batch {b}, {h}x{w}: {args.rounds} rounds x {args.calls} timed calls")

    # -- attention-gradient methods --------------------------------------------------------------------------------
    sides = {"forward+backward": lambda: fwd_bwd(x, t).numpy()}
    for method in ("gae", "grad_rollout", "gradcam_attention"):
        sides[method] = lambda m=method: vit_tf.explain(model, images, m, target=targets)
    sides["gae + grad_rollout + gradcam_attention"] = lambda: vit_tf.explain(
        model, images, ["gae", "grad_rollout", "gradcam_attention"], target=targets)
    sides["head importance"] = lambda: heads.head_importance(model, [(images, targets)])
    times = alternate(sides, args.rounds, args.calls)
    for method in list(sides)[1:]:
        report(method, times, method, "forward+backward", 2.0)

    # -- integrated gradients ----------------------------------------------------------------------------------------
    rows = args.rows
    passes = math.ceil(args.steps * b / rows)
    chunk = tf.constant(np.resize(images, (rows, h, w, 3)))
    chunk_t = tf.constant(np.resize(targets, (rows,)))
    sides = {f"{passes} x forward+backward of {rows}": lambda: [fwd_bwd(chunk, chunk_t).numpy()
                                                               for _ in range(passes)],
             f"integrated_gradients, {args.steps} steps": lambda: vit_tf.explain(
                 model, images, "integrated_gradients", target=targets, steps=args.steps, internal_batch_size=rows)}
    times = alternate(sides, args.rounds, args.calls)
    names = list(sides)
    report(names[1], times, names[1], names[0], 1.5)

    # -- deletion / insertion ----------------------------------------------------------------------------------------
    maps = vit_tf.explain(model, images, "gae", target=targets)
    n = maps.shape[1] * maps.shape[2]
    step = max(1, n // 16)  # 16 steps of n/16 patches (plus the unperturbed input)
    steps = math.ceil(n / step)
    fb = args.faithfulness_batch
    forwards = math.ceil((steps + 1) * b / fb)
    full = tf.constant(np.resize(images, (fb, h, w, 3)))
    p = model.config.patch_size
    sides = {f"{forwards} x forward of {fb}": lambda: [forward(full).numpy() for _ in range(forwards)]}
    for mode in ("deletion", "insertion"):
        sides[f"{mode}, {steps} steps"] = lambda m=mode: faithfulness.insertion_deletion(
            model, images, maps, targets, mode=m, step=step * p * p, batch_size=fb)
    times = alternate(sides, args.rounds, args.calls)
    names = list(sides)
    for name in names[1:]:
        report(name, times, name, names[0], 1.5)


if __name__ == "__main__":
    main()
