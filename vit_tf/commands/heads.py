"""`vit-tf heads DATA --model M --out DIR`: per-head importance (Michel et al. 2019), the accuracy change when each
head alone is removed, and each head's attention entropy, over a folder of images.

Labels come from ImageNet layouts (class folders named by WordNet id, or flat ILSVRC2012_val_* files with a label
file; see `vit_tf.evaluation.find_images`); any other folder is used without labels: then the loss is the
cross-entropy against the unmasked model's top-1 and "accuracy" is agreement with that top-1. Streams the images
in batches with a progress bar; writes heads.csv (heads ranked by importance), heads.json and block x head heatmaps
into --out once everything is computed.
"""

from __future__ import annotations

import csv
import io
import sys

from .common import (add_analysis_arguments, check_model, check_output_dir, figure_label, load_for_analysis,
                     non_negative_int, positive_int)
from .folders import (Skipped, add_label_arguments, check_image_folder, check_labels, find_labelled, progress_bar,
                      write_results)

DEFAULT_DPI = 150
QUERIES = ("all", "patches", "cls")  # vit_tf.analysis.heads.QUERIES (not imported: it loads NumPy)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "heads", help="per-head importance, ablation and attention entropy over a folder of images",
        description="For every attention head: importance E|dL/d gate| through the head-mask gates (Michel et al. "
                    "2019, L2-normalised per block), the change in accuracy when the head alone is removed "
                    "(agreement with the unmasked top-1 when the folder has no ImageNet labels) and the mean "
                    "entropy of its attention rows in nats. Writes heads.csv (ranked), heads.json and heatmaps "
                    "into --out.")
    p.add_argument("image_dir", help="folder of images: ImageNet class folders or ILSVRC2012_val_* files for "
                                     "labels, or any folder of images")
    add_analysis_arguments(p, "output folder")
    p.add_argument("--num-images", type=non_negative_int, default=256,
                   help="use the first N readable images in sorted order (0: all)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per forward pass")
    add_label_arguments(p)
    p.add_argument("--no-ablation", action="store_true",
                   help="skip the ablation (it costs depth x heads extra forward passes per batch)")
    p.add_argument("--queries", choices=QUERIES, default="all",
                   help="query tokens whose attention rows enter the entropy")
    p.add_argument("--dpi", type=positive_int, default=DEFAULT_DPI, help="figure resolution (pixels per inch)")
    p.set_defaults(func=run, check=check)
    return p


def check(args):
    """Everything that can be checked before TensorFlow is loaded."""
    check_image_folder(args.image_dir)
    check_labels(args)
    check_model(args.model, args.checkpoint, args.random_weights)
    check_output_dir(args.out)


def run(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from .. import plotting as rplot
    from ..analysis import iter_batches
    from ..analysis.heads import HeadStatistics

    net, recipe, info = load_for_analysis(args.model, args.checkpoint, args.random_weights, args.seed)
    c = net.config
    paths, label_of, label_source = find_labelled(args.image_dir, args.labels, args.no_labels)
    classifier = bool(c.num_classes)
    if not classifier:
        tqdm.write(f"{info['name']} has no classifier: only the attention entropy is computed", file=sys.stderr)
    stats = HeadStatistics(net, importance=classifier, ablation=classifier and not args.no_ablation, entropy=True,
                           queries=args.queries)
    limit = args.num_images or None
    skipped = Skipped()
    with progress_bar(paths, limit, info["name"]) as bar:
        for x, names in iter_batches(paths, recipe, c.patch_size, args.batch_size, limit, on_skip=skipped,
                                     on_item=lambda: bar.update(1)):
            stats.update(x, None if label_of is None else np.asarray([label_of[n] for n in names]))
    if stats.count == 0:
        raise skipped.no_images(args.image_dir)
    r = stats.result()

    label = figure_label(info)
    metric = r.metric
    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["rank", "block", "head", "importance", "importance_raw", f"{metric}_change", "entropy_nats",
                "entropy_std_nats"])
    order = [(b, h) for b in range(c.depth) for h in range(c.num_heads)]
    if r.importance is not None:  # most important first; ties in block order
        order.sort(key=lambda bh: -r.importance[bh])
    for rank, (b, h) in enumerate(order, 1):
        w.writerow([rank, b, h] + [_cell(v, (b, h)) for v in (r.importance, r.importance_raw, r.ablation,
                                                                r.entropy, r.entropy_std)])
    figures = {"heads": ("heads.png", rplot.heads_figure(
        r.importance, r.ablation, r.entropy, metric=metric, uniform_entropy=r.uniform_entropy,
        title=f"{label}: attention heads ({r.images} images, {metric})"))}
    if r.importance is not None:
        figures["importance"] = ("head_importance.png", rplot.head_heatmap_figure(
            r.importance, "importance (unit L2 norm per block)", vmin=0.0, vmax=1.0,
            title=f"{label}: head importance E|dL/d gate| (Michel et al. 2019), {r.images} images"))
    if r.ablation is not None:
        figures["ablation"] = ("head_ablation.png", rplot.head_heatmap_figure(
            100.0 * r.ablation, f"{metric} change (points)", diverging=True, fmt="{:+.1f}",
            title=f"{label}: {metric} change with the head removed alone (baseline {100 * r.baseline:.1f}%)"))
    figures["entropy"] = ("attention_entropy.png", rplot.head_heatmap_figure(
        r.entropy, "entropy (nats)", vmin=0.0, vmax=r.uniform_entropy,
        title=f"{label}: mean attention entropy ({args.queries} queries; uniform = ln T = "
              f"{r.uniform_entropy:.2f})"))
    report = {
        "image_dir": args.image_dir, "model": info["name"], "weights": info["source"], "images": r.images,
        "num_images": limit, "batch_size": args.batch_size, "labels": label_source, "metric": metric,
        "baseline": r.baseline, "queries": r.queries, "uniform_entropy": r.uniform_entropy,
        "definitions": {
            "importance": "E_x |dL(x)/d gate_h| with every gate 1, L = cross-entropy (against the label, or the "
                          "unmasked top-1), divided by the L2 norm of the block's row (Michel et al. 2019)",
            "importance_raw": "E_x |dL(x)/d gate_h| before the per-block normalisation",
            f"{metric}_change": f"{metric} with the head's gate 0 minus {metric} with all heads (fraction of "
                                f"images)",
            "entropy": "mean over query tokens of -sum_k p log p of each attention row (nats), mean over images",
        },
        "importance": _matrix(r.importance), "importance_raw": _matrix(r.importance_raw),
        f"{metric}_change": _matrix(r.ablation), "entropy": _matrix(r.entropy),
        "entropy_std": _matrix(r.entropy_std),
        "skipped": skipped.report(),
        "figures": {k: filename for k, (filename, _) in figures.items()},
    }
    # the folder is made only now: a failure before leaves nothing behind
    write_results(args.out, {"heads.csv": rows.getvalue()}, figures.values(), "heads.json", report, args.dpi)
    base = "" if r.baseline is None else f"; {metric} {100 * r.baseline:.1f}%"
    print(f"{info['name']}: {r.images} images ({label_source}){base}; {len(skipped)} skipped; results in "
          f"{args.out}")
    return 0


def _cell(values, index) -> str:
    return "" if values is None else f"{values[index]:.6f}"


def _matrix(values):
    return None if values is None else values.round(6).tolist()
