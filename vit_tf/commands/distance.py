"""`vit-tf distance IMAGE_DIR --model M [--model M2 ...] --out DIR`: dataset-level mean attention distance.

Streams the folder in batches (constant memory: running float64 moments), shows a progress bar, reports and skips
unreadable files, and writes distances.csv, distances.json and one plot per model (plus a comparison plot when
several models are given), as in the keras.io example's 1000-image experiment.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys

from .common import add_analysis_arguments, load_for_analysis


def add_parser(subparsers):
    p = subparsers.add_parser(
        "distance", help="mean attention distance over a folder of images (per block and head: mean, std)",
        description="Mean attention distance per block and head over a folder of images (searched "
                    "recursively, sorted), streamed in batches. Repeat --model to compare models.")
    p.add_argument("image_dir", help="folder of images")
    add_analysis_arguments(p, "output folder", multiple=True)
    p.add_argument("--num-images", type=int, default=1000,
                   help="use the first N readable images in sorted order (default 1000; 0 = all)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    p.add_argument("--renormalize", action="store_true",
                   help="renormalise each query's attention over the patches (default: prefix-token attention "
                        "counts as distance 0, as in the keras.io example)")
    p.add_argument("--dpi", type=int, default=100, help="figure resolution")
    p.set_defaults(func=run)


def _slug(name: str, used: set) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(os.path.normpath(name))) or "model"
    base, i = slug, 2
    while slug in used:
        slug, i = f"{base}_{i}", i + 1
    used.add(slug)
    return slug


def run(args) -> int:
    from tqdm import tqdm

    from .. import plotting
    from ..analysis import KerasSource, RunningMoments, accumulate_mean_distance, iter_batches, list_images
    from ..analysis.distance import patch_distance_matrix

    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    if args.num_images < 0:
        raise ValueError("--num-images must be 0 (all) or positive")
    if args.checkpoint is not None and len(args.model) > 1:
        raise ValueError("--checkpoint goes with a single --model; to compare checkpoints pass directories "
                         "written by `vit-tf convert` as --model")
    paths = list_images(args.image_dir)
    limit = args.num_images or None
    os.makedirs(args.out, exist_ok=True)
    skipped = {}
    results, used = [], set()

    for model_name in args.model:
        net, recipe, info = load_for_analysis(model_name, args.checkpoint, args.random_weights)
        source = KerasSource(net)

        def on_skip(path, reason):
            if path not in skipped:
                skipped[path] = reason
                tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)

        total = len(paths) if limit is None else min(limit, len(paths))
        with tqdm(total=total, desc=info["name"], unit="img", file=sys.stderr) as bar:
            batches = (x for x, _ in iter_batches(paths, recipe, source.patch_size, args.batch_size, limit,
                                                  on_skip=on_skip, on_item=lambda: bar.update(1)))
            stats = accumulate_mean_distance(source, batches, renormalize=args.renormalize,
                                             stats=RunningMoments())
        if stats.count == 0:
            raise ValueError(f"no readable images in {args.image_dir} ({len(skipped)} files skipped)")
        grid = tuple(s // source.patch_size for s in recipe.input_size)
        results.append({
            "name": info["name"], "slug": _slug(info["name"], used), "weights": info["source"],
            "images": stats.count, "patch_size": source.patch_size, "num_prefix_tokens": source.num_prefix_tokens,
            "input_size": list(recipe.input_size), "uniform_attention": float(patch_distance_matrix(
                grid, source.patch_size).mean()), "mean": stats.mean, "std": stats.std})
        del net, source

    with open(os.path.join(args.out, "distances.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["model", "block", "head", "mean_distance_px", "std_px", "images"])
        for r in results:
            for b, (row_mean, row_std) in enumerate(zip(r["mean"], r["std"])):
                for h, (m, s) in enumerate(zip(row_mean, row_std)):
                    w.writerow([r["name"], b, h, f"{m:.6f}", f"{s:.6f}", r["images"]])
    figures = {}
    for r in results:
        fig = plotting.mean_distance_figure(r["mean"], r["std"], uniform=r["uniform_attention"],
                                            title=f"{r['name']}: mean attention distance ({r['images']} images)")
        figures[r["name"]] = plotting.save_figure(fig, os.path.join(args.out, f"distance_{r['slug']}.png"),
                                                  args.dpi)
    if len(results) > 1:
        fig = plotting.distance_comparison_figure({r["name"]: (r["mean"], r["std"]) for r in results})
        figures["comparison"] = plotting.save_figure(fig, os.path.join(args.out, "distance_comparison.png"),
                                                     args.dpi)
    report = {
        "image_dir": args.image_dir, "num_images": limit, "renormalize": args.renormalize, "units": "pixels",
        "std": "population standard deviation over images (ddof=0)",
        "models": [{**{k: v for k, v in r.items() if k not in ("mean", "std", "slug")},
                    "mean": r["mean"].round(6).tolist(), "std": r["std"].round(6).tolist()} for r in results],
        "skipped": [{"path": p, "reason": why} for p, why in skipped.items()],
        "figures": {k: os.path.basename(v) for k, v in figures.items()},
    }
    with open(os.path.join(args.out, "distances.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    counts = ", ".join(f"{r['name']}: {r['images']} images" for r in results)
    print(f"{counts}; {len(skipped)} skipped; results in {args.out}")
    return 0
