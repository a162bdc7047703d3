"""`vit-tf probe [IMAGE] --model M --out DIR`: every figure of the analysis toolkit as PNG, plus summary.json."""

from __future__ import annotations

import json
import os

from .common import (add_analysis_arguments, add_compute_arguments, check_block, check_image, check_model,
                     check_output_dir, check_token, figure_label, load_for_analysis, model_config, non_negative_int, output_directory,
                     positive_int, unit_interval, with_dtype, write_text)

SAMPLE_IMAGE = "china.jpg"  # scikit-learn's bundled sample photo
HEAD_FUSIONS = ("mean", "max", "min")  # vit_tf.analysis.rollout.HEAD_FUSIONS (not imported: it loads NumPy)
DEFAULT_DPI = 150


def sample_image():
    """scikit-learn's china.jpg as a uint8 (H, W, 3) array."""
    from sklearn.datasets import load_sample_image

    return load_sample_image(SAMPLE_IMAGE)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "probe", help="every attention/embedding figure for one image, plus summary.json",
        description="Run every probe of the analysis toolkit on one image: prediction (top-5), mean attention "
                    "distance, attention rollout, per-head heatmaps and DINO masks, the block x head grid, "
                    "patch-embedding filters and their PCA, position-embedding similarity. Writes PNGs and "
                    "summary.json into --out (created when everything is computed; files already there are kept "
                    "unless replaced).")
    p.add_argument("image", nargs="?", default=None,
                   help=f"image file (default: scikit-learn's sample photo {SAMPLE_IMAGE})")
    add_analysis_arguments(p, "output folder")
    p.add_argument("--token", choices=("cls", "dist"), default="cls",
                   help="query token of rollout and heatmaps: class token, or distillation token (distilled DeiT)")
    p.add_argument("--head-fusion", choices=HEAD_FUSIONS, default="mean", help="rollout head fusion")
    p.add_argument("--discard-ratio", type=unit_interval(high_open=True), default=0.0,
                   help="rollout: fraction of lowest attention entries dropped per block")
    p.add_argument("--start-block", type=non_negative_int, default=0, help="rollout: first block included")
    p.add_argument("--block", type=int, default=-1, help="block of the per-head heatmaps (-1: the last)")
    p.add_argument("--mask-keep", type=unit_interval(low_open=True), default=0.6,
                   help="attention mass kept by the DINO-style masks")
    p.add_argument("--dpi", type=positive_int, default=DEFAULT_DPI, help="figure resolution (pixels per inch)")
    add_compute_arguments(p)
    p.set_defaults(func=run, check=check)
    return p


def _check_options(args, config, name):
    check_block(config, args.block, name)
    check_block(config, args.start_block, name, "--start-block")
    check_token(config, args.token, name)


def check(args):
    """Everything that can be checked before TensorFlow is loaded."""
    if args.image is not None:
        check_image(args.image)
    check_model(args.model, args.checkpoint, args.random_weights)
    check_output_dir(args.out)
    _check_options(args, model_config(args.model), args.model)


def run(args) -> int:
    from .. import plotting
    from ..analysis import prepare, probe

    net, recipe, info = load_for_analysis(args.model, args.checkpoint, args.random_weights, args.seed)
    net = with_dtype(net, args.dtype)
    _check_options(args, net.config, info["name"])
    image = args.image if args.image is not None else sample_image()
    x, display = prepare(image, recipe, net.config.patch_size)
    result = probe(net, x, image=display, token=args.token, head_fusion=args.head_fusion,
                   discard_ratio=args.discard_ratio, start_block=args.start_block, heatmap_block=args.block,
                   mask_keep=args.mask_keep)
    figures = plotting.render_probe_figures(result, label=figure_label(info))
    summary = {"dtype": args.dtype, "image": args.image or f"sklearn.datasets.load_sample_image({SAMPLE_IMAGE!r})",
               "weights": info["source"], **result.summary(), "model": info["name"],
               "figures": {name: f"{name}.png" for name in figures}}
    with output_directory(args.out) as tmp:  # made only now: nothing is left behind by a failure before
        for name, fig in figures.items():
            plotting.save_figure(fig, os.path.join(tmp, f"{name}.png"), args.dpi)
        write_text(os.path.join(tmp, "summary.json"), json.dumps(summary, indent=2) + "\n")
    top = summary["prediction"][0] if summary["prediction"] else None
    print(f"{info['name']}: " + (f"top-1 {top['label']!r} ({top['probability']:.1%}); " if top else "")
          + f"{len(figures)} figures and summary.json in {args.out}")
    return 0
