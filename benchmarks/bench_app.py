"""`vit-tf app` response time: the page's handler functions called directly (no server, no browser).

    python benchmarks/bench_app.py [--model vit_base_patch16_224] [--repeats 5] [--official-weights]

For each repeat a new 224x224 photo (a crop of scikit-learn's china.jpg with fresh noise, so the forward-pass cache
misses) is written as PNG and given as an upload; then, in the order the page runs them:
  - new image: `analyze` (decode, the weights' recipe, forward pass, top-5, input picture) and every view the page
    refreshes after it (heatmaps, masks, rollout, grid, distance, patch), each timed, and their sum;
  - controls: the views again with other settings (another block, mass kept, discard ratio, patch), which reuse the
    cached forward pass.
The first call (model load and the forward pass's tracing) is reported apart. Random weights by default (speed
does not depend on them; no download). The page runs the views concurrently, so the sum is an upper bound.
Reports only; no assertions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

VIEWS = ("heatmaps", "masks", "rollout", "grid", "distance", "patch")


def photo(path: str, seed: int, size: int = 224) -> str:
    from PIL import Image
    from sklearn.datasets import load_sample_image

    base = load_sample_image("china.jpg")[100:100 + size, 200:200 + size].astype(np.int16)
    noise = np.random.RandomState(seed).randint(-12, 13, base.shape)
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path)
    return path


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    elapsed = time.perf_counter() - start
    last = out[-1]
    if isinstance(last, dict) and "error" in last:
        raise RuntimeError(f"{fn.__name__}: {last['error']}")
    return elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_base_patch16_224", help="registry name (default ViT-B/16)")
    parser.add_argument("--repeats", type=int, default=5, help="new images timed (median reported)")
    parser.add_argument("--official-weights", action="store_true",
                        help="download and use the official weights instead of random ones")
    args = parser.parse_args(argv)

    from vit_tf.app import CROP, UPLOAD, Explorer, Handlers

    random_weights = not args.official_weights
    explorer = Explorer([args.model], random_weights=random_weights)
    h = Handlers(explorer)
    print(f"model {args.model} ({'random' if random_weights else 'official'} weights), {os.cpu_count()} CPU cores "
          f"visible, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')!r}")

    with tempfile.TemporaryDirectory() as tmp:
        def fields(seed):
            return (UPLOAD, photo(os.path.join(tmp, f"photo_{seed}.png"), seed), args.model, "", random_weights,
                    CROP)

        def views(common, block, keep, discard, patch):
            return {"heatmaps": (h.heatmaps, *common, block, "class"),
                    "masks": (h.masks, *common, block, "class", keep),
                    "rollout": (h.rollout, *common, "class", "mean", discard, 0),
                    "grid": (h.grid, *common, "class"),
                    "distance": (h.distance, *common),
                    "patch": (h.patch, *common, block, *patch)}

        first = fields(args.repeats)
        start = time.perf_counter()
        timed(h.analyze, *first)
        for call in views(first, -1, 0.6, 0.0, (7, 7)).values():
            timed(*call)
        print(f"first call (load, trace, forward, every view): {time.perf_counter() - start:.2f} s")

        new_image = {name: [] for name in ("analyze",) + VIEWS + ("total",)}
        controls = {name: [] for name in VIEWS}
        for seed in range(args.repeats):
            common = fields(seed)
            times = {"analyze": timed(h.analyze, *common)}
            for name, call in views(common, -1, 0.6, 0.0, (7, 7)).items():
                times[name] = timed(*call)
            times["total"] = sum(times.values())
            for name, t in times.items():
                new_image[name].append(t)
            for name, call in views(common, 5, 0.3, 0.9, (3, 10)).items():
                controls[name].append(timed(*call))

    def line(label, values):
        return f"  {label:<10} {statistics.median(values) * 1000:8.0f} ms  (min {min(values) * 1000:.0f})"

    print(f"new 224x224 image, median of {args.repeats}:")
    for name, values in new_image.items():
        print(line(name, values))
    print("controls on the cached forward pass (another block / mass / discard ratio / patch), median:")
    for name, values in controls.items():
        print(line(name, values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
