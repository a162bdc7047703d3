"""`vit-tf explain IMAGE_OR_FOLDER... --model M --method gae,rollout,... [--target CLASS] --out DIR`:
class-specific explanation maps, one figure per image with every method side by side, and explain.json.

Images are decoded one batch ahead and explained in batches (`--batch-size`) by one compiled pass for all the
methods (`vit_tf.analysis.explanations.Explainer`), optionally split over the replicas of `--strategy`; figures
and the JSON records are written as each batch completes, so memory stays at one batch."""

from __future__ import annotations

import json
import os
import re

from .common import (add_analysis_arguments, add_compute_arguments, check_image, check_model, check_output_dir,
                     check_token, figure_label, load_for_analysis, model_config, name_list, non_negative_int,
                     output_directory, positive_int, unit_interval, with_dtype)

# vit_tf.analysis.explain.METHODS, repeated so that parsing loads neither NumPy nor TensorFlow.
METHODS = ("attention", "rollout", "grad_rollout", "gae", "transformer_attribution", "gradcam_attention",
           "gradcam_tokens", "integrated_gradients", "smoothgrad", "attnlrp")
DEFAULT_METHODS = "attention,rollout,grad_rollout,gae,transformer_attribution,gradcam_attention,gradcam_tokens"
DEFAULT_DPI = 150


def method_list(text: str):
    """"gae,rollout" -> ["gae", "rollout"]; "all" -> every method; unknown names are an argparse error."""
    return name_list(text, METHODS, "method", everything="all")


def add_method_arguments(p):
    """Options of the explanation methods, shared with `vit-tf faithfulness`."""
    p.add_argument("--token", choices=("cls", "dist"), default="cls",
                   help="readout token of the attention-based methods (dist: distilled DeiT only)")
    p.add_argument("--start-block", type=non_negative_int, default=0,
                   help="first block of rollout and transformer_attribution (Chefer et al.'s evaluation used 1)")
    p.add_argument("--discard-ratio", type=unit_interval(high_open=True), default=0.9,
                   help="grad_rollout: fraction of the lowest fused entries dropped per block")
    p.add_argument("--steps", type=positive_int, default=50, help="integrated_gradients: Riemann steps")
    p.add_argument("--samples", type=positive_int, default=50, help="smoothgrad: noisy samples")
    p.add_argument("--rule", choices=("attnlrp", "cp"), default="attnlrp",
                   help="attnlrp: AttnLRP's rules in the attention, or CP-LRP's (attention held constant)")


def method_options(args, method: str) -> dict:
    """The options `vit_tf.analysis.explain.explain` takes for `method`, from the parsed arguments."""
    options = {
        "attention": {"token": args.token},
        "rollout": {"token": args.token, "start_block": args.start_block},
        "grad_rollout": {"token": args.token, "discard_ratio": args.discard_ratio},
        "gae": {"token": args.token},
        "transformer_attribution": {"token": args.token, "start_block": args.start_block},
        "gradcam_attention": {"token": args.token},
        "gradcam_tokens": {},
        "integrated_gradients": {"steps": args.steps},
        "smoothgrad": {"samples": args.samples},
        "attnlrp": {"rule": getattr(args, "rule", "attnlrp")},
    }
    chosen = dict(options[method])
    if method in ("integrated_gradients", "smoothgrad") and getattr(args, "internal_batch_size", None):
        chosen["internal_batch_size"] = args.internal_batch_size
    return chosen


def merged_options(args, methods) -> dict:
    """One options dict for several methods asked for together (each option goes to the methods that take it;
    the values agree by construction, as they come from the same flags)."""
    merged = {}
    for method in methods:
        merged.update(method_options(args, method))
    return merged


def add_parser(subparsers):
    p = subparsers.add_parser(
        "explain", help="class-specific explanation maps (GAE, transformer attribution, Grad-CAM, ...) per image",
        description="Explain a model's prediction on each image with several methods side by side (rollout, "
                    "gradient rollout, GAE, transformer attribution, attention and token Grad-CAM, integrated "
                    "gradients, SmoothGrad). Writes explain_<image>.png per image and explain.json (targets, "
                    "top-5 predictions, every map at patch resolution) into --out.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders (every image under them)")
    add_analysis_arguments(p, "output folder")
    p.add_argument("--method", type=method_list, default=DEFAULT_METHODS,
                   help=f"comma-separated methods, or 'all' ({', '.join(METHODS)})")
    p.add_argument("--target", type=non_negative_int, default=None,
                   help="class index to explain in every image (default: each image's top-1 class)")
    add_method_arguments(p)
    p.add_argument("--batch-size", type=positive_int, default=8, help="images per compiled pass")
    p.add_argument("--internal-batch-size", type=positive_int, default=16,
                   help="integrated_gradients / smoothgrad: (step, image) rows per forward+backward")
    p.add_argument("--no-figures", action="store_true", help="write explain.json only (large folders)")
    add_compute_arguments(p, strategy=True)
    p.add_argument("--dpi", type=positive_int, default=DEFAULT_DPI, help="figure resolution (pixels per inch)")
    p.set_defaults(func=run, check=check)
    return p


def check_options(args, config, name: str):
    """Checks that need the architecture (before or after loading)."""
    if config is None:
        return
    check_token(config, args.token, name)
    if args.start_block >= config.depth:
        raise ValueError(f"--start-block {args.start_block}: out of range for {name}, which has {config.depth} "
                         f"blocks")
    target = getattr(args, "target", None)
    if target is not None and target >= config.num_classes:
        raise ValueError(f"--target {target}: {name} has {config.num_classes} classes (0..{config.num_classes - 1})")
    specific = [m for m in args.method if m not in ("attention", "rollout")]
    if not config.num_classes and specific:
        raise ValueError(f"{name} has no classifier; methods {specific} explain a class (use attention, rollout)")


def image_paths(items):
    """IMAGE or FOLDER arguments -> image paths (folders: every non-hidden file under them, sorted)."""
    from ..analysis.images import list_images

    paths = []
    for item in items:
        paths.extend(list_images(item) if os.path.isdir(item) else [item])
    return paths


def check(args):
    for image in args.images:
        if not os.path.isdir(image):
            check_image(image)
    check_model(args.model, args.checkpoint, args.random_weights)
    check_output_dir(args.out)
    check_options(args, model_config(args.model), args.model)


def _figure_names(paths):
    names, used = [], set()
    for path in paths:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.splitext(os.path.basename(path))[0]) or "image"
        name, i = stem, 2
        while name in used:
            name, i = f"{stem}_{i}", i + 1
        used.add(name)
        names.append(f"explain_{name}.png")
    return names


class _JsonRecords:
    """explain.json written as the batches come: the header fields, then one image record at a time."""

    def __init__(self, path: str, header: dict):
        self.f = open(path, "w", encoding="utf-8")
        self.f.write(json.dumps(header, indent=2)[:-2] + ',\n  "images": [\n')
        self.count = 0

    def add(self, record: dict):
        text = json.dumps(record, indent=2).replace("\n", "\n    ")
        self.f.write(("" if self.count == 0 else ",\n") + "    " + text)
        self.count += 1

    def close(self):
        self.f.write("\n  ]\n}\n")
        self.f.close()


def run(args) -> int:
    import sys

    import numpy as np
    from tqdm import tqdm

    from .. import plotting
    from ..analysis import display_images, imagenet_class_names
    from ..analysis.explanations import Explainer
    from ..analysis.images import iter_batches, prefetch
    from ..distribute import is_chief, make_strategy
    from ..plotting import explanations as plotting_explain

    strategy = make_strategy(args.strategy)  # first: a multi-worker strategy must precede other TensorFlow work
    net, recipe, info = load_for_analysis(args.model, args.checkpoint, args.random_weights, args.seed)
    check_options(args, net.config, info["name"])
    if args.dtype != "float32":
        net = with_dtype(net, args.dtype)
    paths = image_paths(args.images)
    names = imagenet_class_names() if net.config.num_classes == 1000 else None
    label = figure_label(info)
    explainer = Explainer(net, args.method, strategy=strategy, **merged_options(args, args.method))
    figure_names = dict(zip(paths, _figure_names(paths)))
    header = {"model": info["name"], "weights": info["source"], "dtype": args.dtype, "methods": args.method,
              "options": {m: method_options(args, m) for m in args.method},
              "maps": "at patch resolution (gh, gw), row-major, float64 as computed (not normalised)"}
    skipped = []

    def skip(path, reason):
        skipped.append(path)
        tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)

    chief = is_chief(strategy)
    with output_directory(args.out) as tmp:
        records = _JsonRecords(os.path.join(tmp, "explain.json"), header) if chief else None
        batches = prefetch(iter_batches(paths, recipe, net.config.patch_size, args.batch_size, on_skip=skip))
        with tqdm(total=len(paths), desc=f"{info['name']} explain", unit="img", file=sys.stderr,
                  disable=len(paths) < 2) as bar:
            for x, batch_paths in batches:
                maps, targets, logits = explainer(x, args.target)
                bar.update(len(batch_paths))
                if not chief:
                    continue
                display = display_images(x, recipe.mean, recipe.std)
                for i, path in enumerate(batch_paths):
                    image_maps = {m: v[i] for m, v in maps.items()}
                    target = int(targets[i]) if net.config.num_classes else None
                    record = _record(path, image_maps, target, np.asarray(logits[i], np.float64), names)
                    if not args.no_figures:
                        what = _what(record["target"])
                        title = f"{label}: explanations of {what} for {os.path.basename(path)}"
                        fig = plotting_explain.explain_figure(display[i], image_maps, title=title)
                        plotting.save_figure(fig, os.path.join(tmp, figure_names[path]), args.dpi)
                        record["figure"] = figure_names[path]
                    records.add(record)
        if not chief:
            return 0
        if records.count == 0:
            raise ValueError(f"no image could be read ({len(skipped)} skipped)")
        records.close()
    print(f"{info['name']}: {len(args.method)} methods on {records.count} image(s); "
          f"{'figures and ' if not args.no_figures else ''}explain.json in {args.out}")
    return 0


def _record(path, maps, target, logits, names) -> dict:
    """One image's JSON record: target (index, label, probability), top-5 prediction, grid and maps."""
    import numpy as np

    from ..analysis import top_k

    if target is None:  # no classifier: `logits` are features
        target_record, prediction = None, []
    else:
        z = logits - logits.max()
        p = float(np.exp(z[target]) / np.exp(z).sum())
        target_record = {"index": target, "label": names[target] if names else f"class {target}", "probability": p}
        prediction = top_k(logits[None], 5, names)[0]
    first = next(iter(maps.values()))
    return {"image": path, "figure": None, "target": target_record, "prediction": prediction,
            "grid": list(first.shape), "maps": {m: np.round(v, 8).tolist() for m, v in maps.items()}}


def _what(target_record) -> str:
    if target_record is None:
        return "(no classifier)"
    return f"{target_record['label']!r} (class {target_record['index']}, p = {target_record['probability']:.1%})"
