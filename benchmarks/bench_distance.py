"""Dataset-scale analysis: mean attention distance at the price of a forward pass, the input pipeline, and memory.

    python benchmarks/bench_distance.py [--models vit_base_patch16_224 vit_small_patch8_224] [--batch 8]
    python benchmarks/bench_distance.py --memory-only

In one process, same threads, random weights (speed does not depend on them), per model at batch 8:
  - bare forward: `tf.function` forward pass, outputs only (fused attention), images/s;
  - in-graph distance: `vit_tf.analysis.graph.GraphAnalysis` (forward + reduction in one tf.function, only
    (B, blocks, heads) leaves the device), images/s and its share of the bare forward (target >= 95%);
  - host distance: forward returning every map to NumPy, then `analysis.mean_attention_distance` (the old path).
Then the input pipeline (decode + preprocess of 224x224 JPEGs with the weights' recipe in `tf.data`, one worker and
AUTOTUNE) in images/s per core, and peak memory: `vit-tf distance` over 64 vs 512 images and `predict` with
`return_attention=False` over 64 vs 512 images, each in a fresh process (peak RSS). Reports only; no assertions.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def images_per_second(fn, batch, repeats):
    fn()  # tracing
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return batch * repeats / (time.perf_counter() - start)


def speed(models, batch, repeats):
    import tensorflow as tf

    import vit_tf
    from vit_tf import analysis
    from vit_tf.analysis.graph import GraphAnalysis

    tf.get_logger().setLevel("ERROR")
    for name in models:
        model = vit_tf.create_model(name)
        c = model.config
        x = tf.constant(np.random.RandomState(0).randn(batch, *c.img_size, 3).astype("float32"))
        bare = tf.function(lambda images: model(images, return_attention=False)[0])
        graph = GraphAnalysis(model, outputs=False)
        maps = tf.function(lambda images: model(images))

        def host():
            _, attention = maps(x)
            analysis.mean_attention_distance({k: v.numpy() for k, v in attention.items()},
                                             patch_size=c.patch_size, num_prefix_tokens=c.num_prefix_tokens)

        r_bare = images_per_second(lambda: bare(x).numpy(), batch, repeats)
        r_graph = images_per_second(lambda: graph(x), batch, repeats)
        r_host = images_per_second(host, batch, repeats)
        print(f"{name} batch {batch}: bare forward {r_bare:.2f} img/s; in-graph distance {r_graph:.2f} img/s "
              f"({100 * r_graph / r_bare:.0f}% of bare); maps to host + NumPy distance {r_host:.2f} img/s "
              f"({100 * r_host / r_bare:.0f}%)")


def write_jpegs(directory, n, size=(375, 500)):
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size[0], size[1], 3), dtype=np.uint8)
    for i in range(n):
        Image.fromarray(np.roll(base, i, axis=1)).save(os.path.join(directory, f"img_{i:04d}.jpg"), quality=90)


def pipeline(n=64):
    import tensorflow as tf

    from vit_tf.evaluation import make_dataset
    from vit_tf.registry import WEIGHTS

    recipe = WEIGHTS["vit_base_patch16_224.augreg_in21k_ft_in1k"].recipe
    with tempfile.TemporaryDirectory() as d:
        write_jpegs(d, n)
        files = sorted(os.path.join(d, f) for f in os.listdir(d))
        for label, parallel in (("1 worker", 1), ("AUTOTUNE", tf.data.AUTOTUNE)):
            ds = make_dataset(files, [0] * n, recipe, 8, num_parallel_calls=parallel)
            start = time.perf_counter()
            count = sum(int(images.shape[0]) for images, _ in ds)
            rate = count / (time.perf_counter() - start)
            per_core = rate if parallel == 1 else rate / os.cpu_count()
            print(f"input pipeline ({label}): {rate:.1f} img/s decode + preprocess ({per_core:.1f} img/s per core)")


# Peak RSS as VmHWM of /proc/self/status: getrusage's ru_maxrss survives exec, so a child would report its parent's
# high-water mark.
PEAK = "int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"

MEMORY_PREDICT = """
import sys
import numpy as np, tensorflow as tf, vit_tf
n = int(sys.argv[1])
model = vit_tf.create_model("vit_small_patch16_224", return_attention=False)
data = tf.data.Dataset.range(n).map(lambda i: tf.random.stateless_normal((224, 224, 3), (i, 0))).batch(8)
predictions, attention = model.predict(data, verbose=0)
assert predictions.shape == (n, 1000) and attention == {}
print(""" + PEAK + """)
"""


def peak_rss_child(argv):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run(argv, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    return run


def memory():
    with tempfile.TemporaryDirectory() as d:
        folder = os.path.join(d, "images")
        os.makedirs(folder)
        write_jpegs(folder, 512, size=(240, 320))
        peaks = {}
        for n in (64, 512):
            script = ("import sys; from vit_tf.cli import main; code = main(sys.argv[1:]); "
                      f"print({PEAK}, file=sys.stderr); sys.exit(code)")
            run = peak_rss_child([sys.executable, "-c", script, "distance", folder, "--model",
                                  "vit_small_patch16_224", "--random-weights", "--num-images", str(n),
                                  "--batch-size", "8", "--out", os.path.join(d, f"out{n}")])
            peaks[n] = int(run.stderr.strip().splitlines()[-1]) / 1024
        print(f"vit-tf distance peak RSS: 64 images {peaks[64]:.0f} MiB, 512 images {peaks[512]:.0f} MiB "
              f"(+{100 * (peaks[512] / peaks[64] - 1):.1f}%)")
    predict = {n: int(peak_rss_child([sys.executable, "-c", MEMORY_PREDICT, str(n)]).stdout.split()[-1]) / 1024
               for n in (64, 512)}
    print(f"predict(return_attention=False) peak RSS: 64 images {predict[64]:.0f} MiB, 512 images "
          f"{predict[512]:.0f} MiB (+{100 * (predict[512] / predict[64] - 1):.1f}%)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["vit_base_patch16_224", "vit_small_patch8_224"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-only", action="store_true")
    args = parser.parse_args()
    if not args.memory_only:
        speed(args.models, args.batch, args.repeats)
        pipeline()
    memory()


if __name__ == "__main__":
    main()
