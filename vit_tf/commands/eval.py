"""`vit-tf eval`: ImageNet-1k top-1 / top-5 of a registry model or a converted directory, as JSON."""

from __future__ import annotations

import json

from .common import add_model_arguments, load_model


def add_parser(subparsers):
    p = subparsers.add_parser(
        "eval", help="top-1 / top-5 on the ImageNet-1k validation set",
        description="Evaluate with the weights' own eval recipe. --data is a class-folder directory "
                    "(n01440764/...), a flat directory of ILSVRC2012_val_*.JPEG with a label file, or "
                    "tfds[:DATA_DIR] for a prepared tensorflow-datasets imagenet2012.")
    add_model_arguments(p)
    p.add_argument("--data", required=True, help="validation images (see above)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--labels", default=None,
                   help="flat layout: ILSVRC2012_validation_ground_truth.txt (devkit IDs, needs meta.mat), a file "
                        "of wnids, 'FILE label' lines or LOC_val_solution.csv; found in DATA or its parent if "
                        "omitted")
    p.add_argument("--label-format", default="auto", choices=("auto", "devkit", "wnid", "index"),
                   help="how to read integer labels: devkit ILSVRC2012_IDs (1..1000) or class indices (0..999)")
    p.add_argument("--meta", default=None, help="the devkit's meta.mat (default: beside the label file)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (a quick check)")
    p.add_argument("--output", default=None, help="also write the JSON result to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..evaluation import evaluate_imagenet

    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    model, recipe, info = load_model(args.model, args.checkpoint)
    result = evaluate_imagenet(model, recipe, args.data, batch_size=args.batch_size, labels=args.labels,
                               label_format=args.label_format, meta=args.meta, limit=args.limit,
                               progress=not args.quiet)
    result = {"model": info["name"], "source": info["source"], **result}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0
