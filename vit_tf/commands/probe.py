"""`vit-tf probe [IMAGE] --model M --out DIR`: every figure of the analysis toolkit as PNG, plus summary.json.

Also holds the model loading shared by the analysis commands (probe, distance, video).
"""

from __future__ import annotations

import json
import os

from .common import add_model_arguments, is_converted_dir, load_model

SAMPLE_IMAGE = "china.jpg"  # scikit-learn's bundled sample photo


def add_analysis_arguments(parser, out_help: str, multiple: bool = False):
    """--model/--checkpoint, --random-weights and --out, shared by probe, distance and video."""
    add_model_arguments(parser, multiple=multiple)
    parser.add_argument("--random-weights", action="store_true",
                        help="SMOKE TEST ONLY: build the architecture with random weights instead of loading "
                             "weights (no download); the figures then show no learned structure")
    parser.add_argument("--out", required=True, help=out_help)


def load_for_analysis(model: str, checkpoint=None, random_weights: bool = False):
    """`--model` / `--checkpoint` / `--random-weights` -> (VisionTransformer, recipe, info dict).

    Without a checkpoint the official weights are downloaded; when that fails (offline) the error says how to pass
    local weights instead.
    """
    if random_weights:
        from ..factory import create_model
        from ..registry import Recipe

        if checkpoint is not None or is_converted_dir(model):
            raise ValueError("--random-weights builds a registry architecture; it takes neither --checkpoint nor "
                             "a converted directory")
        net = create_model(model, pretrained=False)
        recipe = net.entry.recipe if net.entry is not None else Recipe(input_size=net.config.img_size)
        return net, recipe, {"name": net.name, "source": "random weights (smoke test, no learned structure)"}
    if checkpoint is not None or is_converted_dir(model):
        return load_model(model, checkpoint)
    try:
        return load_model(model, None)
    except (NotImplementedError, ConnectionError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise OSError(f"could not get the official weights of {model} ({e}). Offline, pass local weights: "
                      f"--checkpoint FILE (an official .npz/.pth or timm .safetensors) or --model DIR written by "
                      f"`vit-tf convert`; --random-weights runs a smoke test without weights") from None


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
