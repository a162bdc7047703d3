"""`vit-tf probe [IMAGE] --model M --out DIR`: every figure of the analysis toolkit as PNG, plus summary.json.

Also holds the model loading shared by the analysis commands (probe, distance, video).
"""

from __future__ import annotations

import json
import os

from .common import add_analysis_arguments, load_for_analysis

SAMPLE_IMAGE = "china.jpg"  # scikit-learn's bundled sample photo


def sample_image():
    """scikit-learn's china.jpg as a uint8 (H, W, 3) array."""
    from sklearn.datasets import load_sample_image

    return load_sample_image(SAMPLE_IMAGE)


def add_parser(subparsers):
    from ..analysis.rollout import HEAD_FUSIONS

    p = subparsers.add_parser(
        "probe", help="every attention/embedding figure for one image, plus summary.json",
        description="Run every probe of the analysis toolkit on one image: prediction (top-5), mean attention "
                    "distance, attention rollout, per-head heatmaps and DINO masks, the block x head grid, "
                    "patch-embedding filters and their PCA, position-embedding similarity. Writes PNGs and "
                    "summary.json into --out.")
    p.add_argument("image", nargs="?", default=None,
                   help=f"image file (default: scikit-learn's sample photo {SAMPLE_IMAGE})")
    add_analysis_arguments(p, "output folder")
    p.add_argument("--token", choices=("cls", "dist"), default="cls",
                   help="query token for rollout and heatmaps (dist: distilled DeiT only)")
    p.add_argument("--head-fusion", choices=HEAD_FUSIONS, default="mean", help="rollout head fusion")
    p.add_argument("--discard-ratio", type=float, default=0.0,
                   help="rollout: fraction of lowest attention entries dropped per block")
    p.add_argument("--start-block", type=int, default=0, help="rollout: first block included")
    p.add_argument("--block", type=int, default=-1, help="block of the per-head heatmaps (default last)")
    p.add_argument("--mask-keep", type=float, default=0.6, help="attention mass kept by the DINO-style masks")
    p.add_argument("--dpi", type=int, default=100, help="figure resolution")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import plotting
    from ..analysis import prepare, probe

    net, recipe, info = load_for_analysis(args.model, args.checkpoint, args.random_weights)
    image = args.image if args.image is not None else sample_image()
    x, display = prepare(image, recipe, net.config.patch_size)
    result = probe(net, x, image=display, token=args.token, head_fusion=args.head_fusion,
                   discard_ratio=args.discard_ratio, start_block=args.start_block, heatmap_block=args.block,
                   mask_keep=args.mask_keep)
    os.makedirs(args.out, exist_ok=True)
    figures = plotting.probe_figures(result, args.out, dpi=args.dpi)
    summary = {"image": args.image or f"sklearn.datasets.load_sample_image({SAMPLE_IMAGE!r})",
               "weights": info["source"], **result.summary(), "model": info["name"],
               "figures": {k: os.path.basename(v) for k, v in figures.items()}}
    with open(os.path.join(args.out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    top = summary["prediction"][0] if summary["prediction"] else None
    print(f"{info['name']}: " + (f"top-1 {top['label']!r} ({top['probability']:.1%}); " if top else "")
          + f"{len(figures)} figures and summary.json in {args.out}")
    return 0
