"""`vit-tf distance IMAGE_DIR --model M [--model M2 ...] --out DIR`: dataset-level mean attention distance.

Streams the folder in batches (constant memory: running float64 moments), shows a progress bar, reports and skips
unreadable files, and writes distances.csv, distances.json and one plot per model (plus a comparison plot when
several models are given), as in the keras.io example's 1000-image experiment.
"""

from __future__ import annotations

import csv
import io
import os
import re

from .common import (add_analysis_arguments, add_compute_arguments, check_output_dir, figure_label, load_for_analysis,
                     non_negative_int, positive_int, with_dtype)
from .folders import Skipped, check_image_folder, check_models, progress_bar, write_results

DEFAULT_DPI = 150


def add_parser(subparsers):
    p = subparsers.add_parser(
        "distance", help="mean attention distance over a folder of images (per block and head: mean, std)",
        description="Mean attention distance per block and head over a folder of images (searched "
                    "recursively, sorted), streamed in batches. Repeat --model to compare models. Writes "
                    "distances.csv, distances.json and the plots into --out once every model is done.")
    p.add_argument("image_dir", help="folder of images")
    add_analysis_arguments(p, "output folder", multiple=True)
    add_compute_arguments(p, strategy=True)
    p.add_argument("--num-images", type=non_negative_int, default=1000,
                   help="use the first N readable images in sorted order (0: all)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass")
    p.add_argument("--renormalize", action="store_true",
                   help="renormalise each query's attention over the patches (default: prefix-token attention "
                        "counts as distance 0, as in the keras.io example)")
    p.add_argument("--dpi", type=positive_int, default=DEFAULT_DPI, help="figure resolution (pixels per inch)")
    p.set_defaults(func=run, check=check)
    return p


def _slug(name: str, used: set) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.normpath(name))) or "model"
    base, i = slug, 2
    while slug in used:
        slug, i = f"{base}_{i}", i + 1
    used.add(slug)
    return slug


def check(args):
    check_image_folder(args.image_dir, hint="for one image use `vit-tf probe`")
    check_models(args)
    check_output_dir(args.out)


def run(args) -> int:
    from .. import plotting
    from ..analysis import RunningMoments, iter_batches, list_images
    from ..analysis.distance import patch_distance_matrix
    from ..analysis.graph import dataset_mean_distance
    from ..analysis.images import prefetch
    from ..distribute import is_chief, make_strategy

    strategy = make_strategy(args.strategy)  # first: a multi-worker strategy must precede other TensorFlow work

    paths = list_images(args.image_dir)
    limit = args.num_images or None
    skipped = Skipped()  # one report per file, however many models meet it
    results, used = [], set()

    for model_name in args.model:
        net, recipe, info = load_for_analysis(model_name, args.checkpoint, args.random_weights, args.seed)
        net = with_dtype(net, args.dtype)
        patch_size, num_prefix_tokens = net.config.patch_size, net.config.num_prefix_tokens
        with progress_bar(paths, limit, info["name"]) as bar:
            # Decoding runs a batch ahead in a thread; the forward pass and the reduction run in one tf.function
            # and only (B, blocks, heads) leaves the device.
            batches = prefetch(x for x, _ in iter_batches(paths, recipe, patch_size, args.batch_size, limit,
                                                          on_skip=skipped, on_item=lambda: bar.update(1)))
            if strategy is not None:
                import tensorflow as tf

                h, w = recipe.input_size
                batches = tf.data.Dataset.from_generator(
                    lambda b=batches: b, output_signature=tf.TensorSpec((None, h, w, 3), tf.float32))
            stats = dataset_mean_distance(net, batches, renormalize=args.renormalize, strategy=strategy,
                                          stats=RunningMoments())
        if stats.count == 0:
            raise skipped.no_images(args.image_dir)
        grid = tuple(s // patch_size for s in recipe.input_size)
        results.append({
            "name": info["name"], "label": figure_label(info), "slug": _slug(info["name"], used),
            "weights": info["source"], "images": stats.count, "patch_size": patch_size,
            "num_prefix_tokens": num_prefix_tokens, "dtype": args.dtype, "input_size": list(recipe.input_size),
            "uniform_attention": float(patch_distance_matrix(grid, patch_size).mean()),
            "mean": stats.mean, "std": stats.std})
        del net

    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["model", "block", "head", "mean_distance_px", "std_px", "images"])
    for r in results:
        for b, (row_mean, row_std) in enumerate(zip(r["mean"], r["std"])):
            for h, (m, s) in enumerate(zip(row_mean, row_std)):
                w.writerow([r["name"], b, h, f"{m:.6f}", f"{s:.6f}", r["images"]])
    figures = {}
    for r in results:
        figures[r["name"]] = (f"distance_{r['slug']}.png", plotting.mean_distance_figure(
            r["mean"], r["std"], uniform=r["uniform_attention"],
            title=f"{r['label']}: mean attention distance ({r['images']} images, mean and std)"))
    if len(results) > 1:
        figures["comparison"] = ("distance_comparison.png", plotting.distance_comparison_figure(
            {r["label"]: (r["mean"], r["std"]) for r in results}, title="Mean attention distance"))
    report = {
        "image_dir": args.image_dir, "num_images": limit, "renormalize": args.renormalize, "units": "pixels",
        "std": "population standard deviation over images (ddof=0)",
        "models": [{**{k: v for k, v in r.items() if k not in ("mean", "std", "slug", "label")},
                    "mean": r["mean"].round(6).tolist(), "std": r["std"].round(6).tolist()} for r in results],
        "skipped": skipped.report(),
        "figures": {k: filename for k, (filename, _) in figures.items()},
    }
    if not is_chief(strategy):  # every worker holds the global result; the chief writes it
        names = ", ".join(r["name"] for r in results)
        print(f"{names}: this worker's share is done; the chief worker writes {args.out}")
        return 0
    # the folder is made only now: nothing is left behind by a failure before
    write_results(args.out, {"distances.csv": rows.getvalue()}, figures.values(), "distances.json", report, args.dpi)
    counts = ", ".join(f"{r['name']}: {r['images']} images" for r in results)
    print(f"{counts}; {len(skipped)} skipped; results in {args.out}")
    return 0
