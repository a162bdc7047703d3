"""`vit-tf eval`: ImageNet-1k top-1 / top-5 of a registry model or a converted directory, as JSON."""

from __future__ import annotations

import json
import os

from .common import (add_compute_arguments, add_model_arguments, check_input_file, check_model, check_output_file,
                     load_model, positive_int, with_dtype, write_text)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "eval", help="top-1 / top-5 on the ImageNet-1k validation set",
        description="Evaluate with the weights' own eval recipe. --data is a class-folder directory "
                    "(n01440764/...), a flat directory of ILSVRC2012_val_*.JPEG with a label file, or "
                    "tfds[:DATA_DIR] for a prepared tensorflow-datasets imagenet2012.")
    add_model_arguments(p)
    p.add_argument("--data", required=True, help="validation images (see above)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass")
    p.add_argument("--labels", default=None,
                   help="flat layout: ILSVRC2012_validation_ground_truth.txt (devkit IDs, needs meta.mat), a file "
                        "of wnids, 'FILE label' lines or LOC_val_solution.csv; found in DATA or its parent if "
                        "omitted")
    p.add_argument("--label-format", default="auto", choices=("auto", "devkit", "wnid", "index"),
                   help="how to read integer labels: devkit ILSVRC2012_IDs (1..1000) or class indices (0..999)")
    p.add_argument("--meta", default=None, help="the devkit's meta.mat (default: beside the label file)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images (a quick check)")
    p.add_argument("--output", default=None,
                   help="also write the JSON result to this file (under a temporary name, renamed when complete)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_compute_arguments(p, strategy=True)
    p.set_defaults(func=run, check=check)
    return p


def check(args):
    check_model(args.model, args.checkpoint)
    if not (args.data == "tfds" or args.data.startswith("tfds:")):
        if os.path.isfile(args.data):
            raise NotADirectoryError(f"--data {args.data}: is a file; give the folder of validation images "
                                     f"(or tfds[:DATA_DIR])")
        if not os.path.isdir(args.data):
            raise FileNotFoundError(f"--data {args.data}: folder not found (or use --data tfds[:DATA_DIR])")
    if args.labels is not None:
        check_input_file(args.labels, "label file", "--labels")
    if args.meta is not None:
        check_input_file(args.meta, "meta.mat", "--meta")
    if args.output is not None:
        check_output_file(args.output, "--output")


def run(args) -> int:
    from ..distribute import is_chief, make_strategy
    from ..evaluation import evaluate_imagenet

    strategy = make_strategy(args.strategy)  # first: a multi-worker strategy must precede other TensorFlow work
    model, recipe, info = load_model(args.model, args.checkpoint)
    model = with_dtype(model, args.dtype)
    result = evaluate_imagenet(model, recipe, args.data, batch_size=args.batch_size, labels=args.labels,
                               label_format=args.label_format, meta=args.meta, limit=args.limit,
                               progress=not args.quiet, strategy=strategy)
    result = {"model": info["name"], "source": info["source"], "dtype": args.dtype, **result}
    text = json.dumps(result, indent=2)
    if args.output and is_chief(strategy):
        write_text(args.output, text + "\n")
    print(text)
    return 0
