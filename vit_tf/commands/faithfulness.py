"""`vit-tf faithfulness DATA --model M --method gae,rollout,... --out DIR`: faithfulness scores of explanation
methods over a labelled image folder, streamed in batches with a progress bar; writes faithfulness.csv,
faithfulness.json and faithfulness.png.

Memory stays flat over any number of images: each batch's scores go into running means (`CurveMeans`) and the
batch is dropped. The perturbed variants of every test run in forward calls of `--internal-batch-size` images,
split over the replicas of `--strategy` (which gives the single-device numbers).

DATA: class folders (ImageNet wnids `n01440764/...`, or any names: sorted, indexed 0..C-1 as torchvision's
ImageFolder), or the flat ImageNet validation layout with a label file (`vit_tf.evaluation.find_images`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys

from .common import (add_analysis_arguments, add_compute_arguments, check_model, check_output_dir, load_for_analysis,
                     model_config, name_list, non_negative_int, output_directory, positive_int, with_dtype,
                     write_text)
from .explain import add_method_arguments, check_options, method_list, method_options

METRICS = ("perturbation", "tokens", "insertion", "deletion", "saco", "road")
DEFAULT_METRICS = "perturbation,tokens,insertion,deletion,saco"
CLASSES = ("predicted", "target")
DEFAULT_DPI = 150
_WNID = re.compile(r"^n\d{8}$")


def metric_list(text: str):
    return name_list(text, METRICS, "metric")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "faithfulness", help="faithfulness of explanation methods over a labelled folder (perturbation AUC, "
                             "insertion/deletion, SaCo, ROAD)",
        description="Score explanation methods on a labelled image folder: Chefer et al.'s positive/negative "
                    "perturbation test (pixels, and patch tokens dropped), RISE insertion/deletion AUC, SaCo and "
                    "optionally ROAD, each for the maps of the predicted and of the true class. Streams the "
                    "folder in batches; writes faithfulness.csv, faithfulness.json and faithfulness.png into --out.")
    p.add_argument("data", help="class folders (wnids or any names) or flat ILSVRC2012_val_* images with labels")
    add_analysis_arguments(p, "output folder")
    p.add_argument("--method", type=method_list, default="rollout,gae,transformer_attribution",
                   help="comma-separated explanation methods, or 'all'")
    p.add_argument("--metrics", type=metric_list, default=DEFAULT_METRICS,
                   help=f"comma-separated from {', '.join(METRICS)} (road solves a sparse system per image and "
                        f"step: slow)")
    p.add_argument("--classes", choices=("predicted", "target", "both"), default="both",
                   help="explain the predicted class, the true class, or both (Chefer et al.'s two rows)")
    p.add_argument("--fill", choices=("black", "zero"), default="black",
                   help="removed pixels: black (0 before normalisation, Chefer et al.) or zero after "
                        "normalisation (the mean colour)")
    p.add_argument("--upsample", choices=("nearest", "bilinear"), default="nearest",
                   help="patch map to pixels: patch blocks, or bilinear (Chefer et al.'s interpolate)")
    p.add_argument("--labels", default=None, help="label file for the flat ImageNet validation layout")
    p.add_argument("--label-format", choices=("auto", "devkit", "wnid", "index"), default="auto",
                   help="format of --labels")
    p.add_argument("--num-images", type=non_negative_int, default=0, help="use the first N images (0: all)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per batch (explained together)")
    p.add_argument("--internal-batch-size", type=positive_int, default=64,
                   help="images per forward call of the perturbed variants (every test's steps are stacked and run "
                        "in calls of this many images; captum's internal_batch_size)")
    add_compute_arguments(p, strategy=True)
    p.add_argument("--saco-groups", type=positive_int, default=10, help="SaCo: number of patch groups K")
    add_method_arguments(p)
    p.add_argument("--dpi", type=positive_int, default=DEFAULT_DPI, help="figure resolution (pixels per inch)")
    p.set_defaults(func=run, check=check)
    return p


def labelled_images(data: str, labels=None, label_format: str = "auto"):
    """-> (paths, class indices, {"layout", "labels", "classes"}): class folders with any names are indexed in
    sorted order (ImageFolder); wnid folders and the flat validation layout go through `find_images`."""
    from ..evaluation import IMAGE_EXTENSIONS, find_images

    if not os.path.isdir(data):
        raise FileNotFoundError(f"DATA {data}: not a folder")
    folders = sorted(n for n in os.listdir(data) if os.path.isdir(os.path.join(data, n)) and not n.startswith("."))
    flat = any(n.startswith("ILSVRC2012_val_") for n in os.listdir(data))
    if folders and not flat and not all(_WNID.match(f) for f in folders):
        files, classes = [], []
        for index, folder in enumerate(folders):
            for name in sorted(os.listdir(os.path.join(data, folder))):
                if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."):
                    files.append(os.path.join(data, folder, name))
                    classes.append(index)
        if not files:
            raise FileNotFoundError(f"no images found under {data}")
        return files, classes, {"layout": "class_folders", "labels": "sorted folder names", "classes": folders}
    files, classes, info = find_images(data, labels, label_format)
    return files, classes, {**info, "classes": None}


def check(args):
    if not os.path.isdir(args.data):
        raise FileNotFoundError(f"DATA {args.data}: not a folder")
    check_model(args.model, args.checkpoint, args.random_weights)
    check_output_dir(args.out)
    config = model_config(args.model)
    args.target = None
    check_options(args, config, args.model)
    if config is not None and not config.num_classes:
        raise ValueError(f"{args.model} has no classifier: faithfulness needs class predictions")
    if config is not None and "tokens" in args.metrics and config.head_type not in ("token", "distilled"):
        raise ValueError(f"--metrics tokens: {args.model} has head type {config.head_type!r}; dropping tokens "
                         f"supports 'token' and 'distilled' heads")


def _batches(paths, labels, recipe, patch_size, batch_size, on_skip, on_item):
    import numpy as np

    from ..analysis import prepare

    xs, ys = [], []
    for path, label in zip(paths, labels):
        try:
            x, _ = prepare(path, recipe, patch_size)
        except (ValueError, OSError) as e:
            on_skip(path, str(e))
            continue
        finally:
            on_item()
        xs.append(x[0])
        ys.append(label)
        if len(xs) == batch_size:
            yield np.stack(xs), np.asarray(ys, np.int64)
            xs, ys = [], []
    if xs:
        yield np.stack(xs), np.asarray(ys, np.int64)


def score_batch(net, images, labels, methods, metrics, classes, options, fill, upsample, saco_groups, stats,
                scorer=None, batch_size=64, strategy=None):
    """Every metric for every method and class choice on one batch, added to `stats` (a CurveMeans) under
    "{method}/{class}/{name}". Maps come from `vit_tf.explain` on `net`; the faithfulness forwards run on `scorer`
    (default `net`; a copy mirrored under `strategy`), `batch_size` images per call."""
    import numpy as np

    import vit_tf

    from ..analysis import faithfulness as F

    scorer = net if scorer is None else scorer
    run = dict(batch_size=batch_size, strategy=strategy)
    predicted = F.forward_logits(net, images).argmax(-1)
    stats.add("model/accuracy", 100.0 * (predicted == labels))
    for method in methods:
        for which in classes:
            target = predicted if which == "predicted" else labels
            maps = vit_tf.explain(net, images, method, target=target, **options[method])
            key = f"{method}/{which}"
            for mode in ("positive", "negative"):
                if "perturbation" in metrics:
                    r = F.perturbation_curves(scorer, images, maps, labels, mode=mode, fill=fill, upsample=upsample,
                                              **run)
                    stats.add(f"{key}/{mode}_pixels", 100.0 * r["correct"])
                if "tokens" in metrics:
                    r = F.perturbation_curves(scorer, images, maps, labels, mode=mode, removal="tokens", **run)
                    stats.add(f"{key}/{mode}_tokens", 100.0 * r["correct"])
                if "road" in metrics:
                    r = F.road(scorer, images, maps, labels, mode=mode, upsample=upsample, **run)
                    stats.add(f"{key}/road_{'morf' if mode == 'positive' else 'lerf'}", 100.0 * r["correct"])
            for game in ("deletion", "insertion"):
                if game in metrics:
                    substrate = fill if game == "deletion" else "blur"
                    stats.add(f"{key}/{game}_auc", F.insertion_deletion(scorer, images, maps, target, mode=game,
                                                                        substrate=substrate, upsample=upsample,
                                                                        **run)["auc"])
            if "saco" in metrics:
                stats.add(f"{key}/saco", F.saco(scorer, images, maps, target, groups=saco_groups, fill=fill,
                                                **run)["saco"])
    return np.asarray(predicted)


def check_labels(labels, classes: int, data: str, name: str, names=None):
    """Every class index of the data lies in 0..classes - 1: a class the model does not have (or a negative index,
    which would silently read the last class) is an error naming it and the number of classes."""
    for label in sorted({min(labels), max(labels)}):
        if not 0 <= label < classes:
            folder = f" (folder {names[label]!r})" if names and 0 <= label < len(names) else ""
            raise ValueError(f"{data}: class {label}{folder} is out of range for {name}, which has {classes} classes "
                             f"(0..{classes - 1})")


def summarize(stats, methods, classes, fractions):
    """CurveMeans -> (rows [method, class, metric, value, images], curves {method: {panel: (x, y)}})."""
    from ..analysis import faithfulness as F

    x = [0.0] + list(fractions)
    rows, curves = [], {}
    for method in methods:
        for which in classes:
            key = f"{method}/{which}"
            for name in stats.names():
                if not name.startswith(key + "/"):
                    continue
                metric = name[len(key) + 1:]
                mean, count = stats.mean(name), int(stats.count(name).min())
                if mean.ndim:  # an accuracy curve: its AUC, and the curve itself
                    rows.append([method, which, f"{metric}_auc", float(F.perturbation_auc(mean, x)), count])
                    panel = f"{metric.replace('_', ', ')} ({which} class)"
                    curves.setdefault(method, {})[panel] = (x, [float(v) for v in mean])
                else:
                    value = float(mean)
                    rows.append([method, which, metric, value if value == value else None, count])
    return rows, curves


def run(args) -> int:
    from tqdm import tqdm

    from .. import plotting
    from ..plotting import explanations as plotting_explain
    from ..analysis import faithfulness as F
    from ..analysis.images import prefetch
    from ..distribute import is_chief, make_strategy
    from .common import figure_label

    strategy = make_strategy(args.strategy)  # first: a multi-worker strategy must precede other TensorFlow work
    net, recipe, info = load_for_analysis(args.model, args.checkpoint, args.random_weights, args.seed)
    net = with_dtype(net, args.dtype)
    args.target = None
    check_options(args, net.config, info["name"])
    paths, labels, layout = labelled_images(args.data, args.labels, args.label_format)
    if not net.config.num_classes:
        raise ValueError(f"{info['name']} has no classifier: faithfulness needs class predictions")
    if args.num_images:
        paths, labels = paths[:args.num_images], labels[:args.num_images]
    check_labels(labels, net.config.num_classes, args.data, info["name"], layout.get("classes"))
    classes = list(CLASSES) if args.classes == "both" else [args.classes]
    fill = F.black_fill(recipe) if args.fill == "black" else "zero"
    options = {m: method_options(args, m) for m in args.method}
    stats, skipped = F.CurveMeans(), {}

    def on_skip(path, reason):
        skipped[path] = reason
        tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)

    scorer = F.on_strategy(net, strategy)  # the forwards' model, mirrored once
    with tqdm(total=len(paths), desc=f"{info['name']} faithfulness", unit="img", file=sys.stderr) as bar:
        # Decoding runs a batch ahead in a thread; nothing of a batch is kept once its scores are added.
        for images, y in prefetch(_batches(paths, labels, recipe, net.config.patch_size, args.batch_size, on_skip,
                                           lambda: bar.update(1))):
            score_batch(net, images, y, args.method, args.metrics, classes, options, fill, args.upsample,
                        args.saco_groups, stats, scorer=scorer, batch_size=args.internal_batch_size,
                        strategy=strategy)
    if not stats.names():
        raise ValueError(f"no readable images in {args.data} ({len(skipped)} skipped)")
    rows, curves = summarize(stats, args.method, classes, F.FRACTIONS)
    images = int(stats.count("model/accuracy"))
    accuracy = float(stats.mean("model/accuracy"))
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["method", "class", "metric", "value", "images"])
    writer.writerow(["model", "-", "accuracy", f"{accuracy:.6f}", images])
    for row in rows:
        writer.writerow(row[:3] + ["nan" if row[3] is None else f"{row[3]:.6f}", row[4]])
    report = {
        "model": info["name"], "weights": info["source"], "data": args.data, "layout": layout, "images": images,
        "accuracy": accuracy, "methods": args.method, "options": options, "metrics": args.metrics,
        "classes": classes, "fill": args.fill, "upsample": args.upsample, "fractions": list(F.FRACTIONS),
        "dtype": args.dtype, "strategy": args.strategy,
        "replicas": 1 if strategy is None else int(strategy.num_replicas_in_sync),
        "definitions": {
            "*_pixels_auc, *_tokens_auc, road_*_auc": "trapezoid of top-1 accuracy (%) against the true labels over "
                                                      "the removed fraction 0, 0.1, ..., 0.9 (max 90)",
            "positive / negative": "most / least relevant removed first (ROAD: MoRF / LeRF)",
            "insertion_auc, deletion_auc": "RISE normalised AUC of the explained class's softmax probability, one "
                                           "patch of pixels per step (deletion to the fill, insertion from the "
                                           "image blurred by RISE's gkern(11, 5), zero padding)",
            "saco": f"Wu et al. 2024 over {args.saco_groups} patch groups (NaN images skipped)"},
        "table": [dict(zip(["method", "class", "metric", "value", "images"], r)) for r in rows],
        "curves": {m: {k: {"fractions": x, "accuracy": y} for k, (x, y) in c.items()} for m, c in curves.items()},
        "skipped": [{"path": p, "reason": r} for p, r in skipped.items()],
    }
    if not is_chief(strategy):  # every worker holds the global result; the chief writes it
        print(f"{info['name']}: this worker's share is done; the chief worker writes {args.out}")
        return 0
    figure = plotting_explain.faithfulness_figure(
        curves, title=f"{figure_label(info)}: accuracy while removing by each method's maps ({images} images)") \
        if curves else None
    with output_directory(args.out) as tmp:
        write_text(os.path.join(tmp, "faithfulness.csv"), table.getvalue())
        write_text(os.path.join(tmp, "faithfulness.json"), json.dumps(report, indent=2, allow_nan=False) + "\n")
        if figure is not None:
            plotting.save_figure(figure, os.path.join(tmp, "faithfulness.png"), args.dpi)
    print(f"{info['name']}: {images} images, accuracy {accuracy:.2f}%; {len(rows)} scores in {args.out}")
    return 0
