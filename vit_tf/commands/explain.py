"""`vit-tf explain IMAGE... --model M --method gae,rollout,... [--target CLASS] --out DIR`: class-specific
explanation maps, one figure per image with every method side by side, and explain.json."""

from __future__ import annotations

import json
import os
import re

from .common import (add_analysis_arguments, check_image, check_model, check_output_dir, check_token,
                     figure_label, load_for_analysis, model_config, non_negative_int, output_directory,
                     positive_int, unit_interval, write_text)

# vit_tf.analysis.explain.METHODS, repeated so that parsing loads neither NumPy nor TensorFlow.
METHODS = ("attention", "rollout", "grad_rollout", "gae", "transformer_attribution", "gradcam_attention",
           "gradcam_tokens", "integrated_gradients", "smoothgrad")
DEFAULT_METHODS = "attention,rollout,grad_rollout,gae,transformer_attribution,gradcam_attention,gradcam_tokens"
DEFAULT_DPI = 150


def method_list(text: str):
    """"gae,rollout" -> ["gae", "rollout"]; "all" -> every method; unknown names are an argparse error."""
    import argparse

    names = list(METHODS) if text.strip() == "all" else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown or [text]}; choose from {', '.join(METHODS)} "
                                         f"(comma-separated) or 'all'")
    return list(dict.fromkeys(names))


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
    }
    return options[method]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "explain", help="class-specific explanation maps (GAE, transformer attribution, Grad-CAM, ...) per image",
        description="Explain a model's prediction on each image with several methods side by side (rollout, "
                    "gradient rollout, GAE, transformer attribution, attention and token Grad-CAM, integrated "
                    "gradients, SmoothGrad). Writes explain_<image>.png per image and explain.json (targets, "
                    "top-5 predictions, every map at patch resolution) into --out.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_analysis_arguments(p, "output folder")
    p.add_argument("--method", type=method_list, default=DEFAULT_METHODS,
                   help=f"comma-separated methods, or 'all' ({', '.join(METHODS)})")
    p.add_argument("--target", type=non_negative_int, default=None,
                   help="class index to explain in every image (default: each image's top-1 class)")
    add_method_arguments(p)
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


def check(args):
    for image in args.images:
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


def run(args) -> int:
    import numpy as np

    from .. import plotting
    from ..plotting import explanations as plotting_explain
    from ..analysis import imagenet_class_names, prepare, top_k
    from ..analysis.explain import explain

    net, recipe, info = load_for_analysis(args.model, args.checkpoint, args.random_weights, args.seed)
    check_options(args, net.config, info["name"])
    names = imagenet_class_names() if net.config.num_classes == 1000 else None
    label = figure_label(info)
    figures, records = [], []
    for path, figure_name in zip(args.images, _figure_names(args.images)):
        x, display = prepare(path, recipe, net.config.patch_size)
        logits = np.asarray(net(x, return_attention=False)[0], np.float64)
        prediction = top_k(logits, 5, names)[0] if net.config.num_classes else []
        maps = {}
        target = args.target if args.target is not None else (int(logits[0].argmax()) if len(prediction) else None)
        for method in args.method:
            maps[method] = explain(net, x, method, target=target, **method_options(args, method))[0]
        if target is not None:
            z = logits[0] - logits[0].max()
            p = float(np.exp(z[target]) / np.exp(z).sum())
            class_name = names[target] if names else f"class {target}"
            what = f"{class_name!r} (class {target}, p = {p:.1%})"
            target_record = {"index": target, "label": class_name, "probability": p}
        else:
            what, target_record = "(no classifier)", None
        title = f"{label}: explanations of {what} for {os.path.basename(path)}"
        figures.append((figure_name, plotting_explain.explain_figure(display, maps, title=title)))
        records.append({"image": path, "figure": figure_name, "target": target_record, "prediction": prediction,
                        "grid": list(maps[args.method[0]].shape),
                        "maps": {m: np.round(v, 8).tolist() for m, v in maps.items()}})
    report = {"model": info["name"], "weights": info["source"], "methods": args.method,
              "options": {m: method_options(args, m) for m in args.method},
              "maps": "at patch resolution (gh, gw), row-major, float64 as computed (not normalised)",
              "images": records}
    with output_directory(args.out) as tmp:
        for figure_name, fig in figures:
            plotting.save_figure(fig, os.path.join(tmp, figure_name), args.dpi)
        write_text(os.path.join(tmp, "explain.json"), json.dumps(report, indent=2) + "\n")
    print(f"{info['name']}: {len(args.method)} methods on {len(records)} image(s); figures and explain.json in "
          f"{args.out}")
    return 0
