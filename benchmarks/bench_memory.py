"""Peak memory of `vit-tf faithfulness` and `vit-tf explain` over 64 and 512 images: a dataset run must stream
(target: the peak over 512 images at most 10 % above the peak over 64).

    python benchmarks/bench_memory.py                       # both commands, a tiny random model on small images
    python benchmarks/bench_memory.py --command faithfulness --model vit_tiny_patch16_224 --metrics deletion,saco

Each run is a fresh process (`python -c "vit_tf.cli.main(...)"`) whose peak RSS is read from VmHWM in
/proc/self/status (getrusage's ru_maxrss would report the parent's high-water mark across exec). The images are
random JPEGs in class folders; without --model the model is a 2-block distilled DeiT at --image-size written as a
converted directory, with --model a registry architecture with --random-weights (official input size). Reports
only; no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEAK = "int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
CLASSES = 8


def write_images(folder, n, size):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)
    for i in range(n):
        directory = os.path.join(folder, f"class_{i % CLASSES}")
        os.makedirs(directory, exist_ok=True)
        Image.fromarray(np.roll(base, 3 * i, axis=1)).save(os.path.join(directory, f"img_{i:04d}.jpg"), quality=90)


def write_tiny_model(directory, image_size):
    """A converted directory (config.json + model.keras, the layout `vit-tf convert` writes) of a random 2-block
    distilled DeiT with 8 classes."""
    import keras

    import vit_tf
    from vit_tf.registry import Recipe

    keras.utils.set_random_seed(0)
    model = vit_tf.create_model("deit_tiny_distilled_patch16_224", img_size=image_size, patch_size=8, embed_dim=64,
                                depth=2, num_heads=4, mlp_dim=128, num_classes=CLASSES)
    os.makedirs(directory)
    model.save(os.path.join(directory, "model.keras"))
    recipe = Recipe(input_size=model.config.img_size, crop_pct=0.875)
    with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"name": "tiny_deit", "preprocessing": recipe.to_dict(), "config": model.config.to_dict()}, f)
    return directory


def peak_rss_mib(argv):
    script = ("import sys; from vit_tf.cli import main; code = main(sys.argv[1:]); "
              f"print({PEAK}, file=sys.stderr); sys.exit(code)")
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-2000:])
    return int(run.stderr.strip().splitlines()[-1]) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="registry architecture (random weights); default: tiny model")
    parser.add_argument("--image-size", type=int, default=32, help="tiny model's input size (pixels, multiple of 8)")
    parser.add_argument("--method", default="gae")
    parser.add_argument("--metrics", default="perturbation,tokens,insertion,deletion,saco")
    parser.add_argument("--counts", type=int, nargs=2, default=(64, 512))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--command", choices=("faithfulness", "explain", "both"), default="both")
    parser.add_argument("--explain-methods", default="gae,rollout,grad_rollout,transformer_attribution")
    args = parser.parse_args()
    commands = ("faithfulness", "explain") if args.command == "both" else (args.command,)
    small, large = args.counts
    with tempfile.TemporaryDirectory() as d:
        model = ["--model", args.model, "--random-weights"] if args.model else \
            ["--model", write_tiny_model(os.path.join(d, "tiny_deit"), args.image_size)]
        folders = {}
        for n in args.counts:
            folders[n] = os.path.join(d, f"images{n}")
            write_images(folders[n], n, args.image_size + 8)
        for command in commands:
            peaks = {}
            for n in args.counts:
                out = os.path.join(d, f"{command}{n}")
                if command == "faithfulness":
                    argv = ["faithfulness", folders[n], *model, "--method", args.method, "--metrics", args.metrics,
                            "--batch-size", str(args.batch_size), "--out", out]
                    what = f"{args.method}, {args.metrics}"
                else:
                    argv = ["explain", folders[n], *model, "--method", args.explain_methods, "--no-figures",
                            "--batch-size", str(args.batch_size), "--out", out]
                    what = args.explain_methods
                peaks[n] = peak_rss_mib(argv)
            growth = 100 * (peaks[large] / peaks[small] - 1)
            print(f"vit-tf {command} ({args.model or f'tiny DeiT at {args.image_size} px'}, {what}) peak RSS: "
                  f"{small} images {peaks[small]:.0f} MiB, {large} images {peaks[large]:.0f} MiB ({growth:+.1f}%; "
                  f"target <= +10%: {'met' if growth <= 10 else 'NOT met'})", flush=True)


if __name__ == "__main__":
    main()
