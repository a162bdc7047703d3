"""`vit-tf similarity DATA --model A [--model B] --out DIR`: layer x layer CKA between two models (or a model and
itself) over a folder of images, as in Raghu et al. 2021, Fig. 1.

Streams the folder in batches (constant memory: the minibatch CKA estimator of Nguyen et al. 2021 keeps only
(layers x layers) sums), one forward pass per batch per model, with a progress bar; unreadable files are reported and
skipped. Writes cka.csv, cka.json and one heatmap per token choice into --out once everything is computed.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools

from .common import (add_analysis_arguments, check_output_dir, figure_label, load_for_analysis, model_config,
                     non_negative_int, positive_int)
from .folders import Skipped, check_image_folder, check_models, progress_bar, write_results

DEFAULT_DPI = 150
MIN_BATCH = 4  # vit_tf.analysis.cka.MIN_BATCH (not imported: it loads NumPy)
TOKENS = ("cls", "mean", "all", "patches", "dist", "registers")  # vit_tf.analysis.cka.TOKEN_CHOICES


def batch_size(text) -> int:
    value = positive_int(text)
    if value < MIN_BATCH:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_BATCH} (the unbiased HSIC of a batch needs "
                                         f"n >= 4 images), got {value}")
    return value


def add_parser(subparsers):
    p = subparsers.add_parser(
        "similarity", help="layer x layer CKA between two models (or one model and itself) over a folder",
        description="Minibatch linear CKA (Nguyen, Raghu & Kornblith 2021; unbiased HSIC per batch) between every "
                    "layer of --model A and every layer of the second --model B (default: A itself), over a "
                    "folder of images searched recursively in sorted order. Layers: the tokens entering block 0 "
                    "(embedding), every block's output and the final norm. Writes cka.csv, cka.json and "
                    "cka_<tokens>.png (Raghu et al. 2021, Fig. 1) into --out.")
    p.add_argument("image_dir", help="folder of images")
    add_analysis_arguments(p, "output folder", multiple=True)
    p.add_argument("--tokens", action="append", choices=TOKENS, default=None,
                   help="representation of each layer: class token, mean of the patch tokens, all tokens "
                        "(concatenated per image), the patch tokens, the distillation token or the register "
                        "tokens (concatenated); repeat for several, all from the same forward passes "
                        "(default: cls)")
    p.add_argument("--num-images", type=non_negative_int, default=1024,
                   help="use the first N readable images in sorted order (0: all)")
    p.add_argument("--batch-size", type=batch_size, default=32,
                   help="images per forward pass and per CKA minibatch (at least 4; a shorter last batch is "
                        "joined to the one before)")
    p.add_argument("--biased", action="store_true",
                   help="average biased per-batch HSICs instead (shrinks with the batch size; for comparison)")
    p.add_argument("--dpi", type=positive_int, default=DEFAULT_DPI, help="figure resolution (pixels per inch)")
    p.set_defaults(func=run, check=check)
    return p


def _tokens(args):
    return list(dict.fromkeys(args.tokens or ["cls"]))


def check(args):
    """Everything that can be checked before TensorFlow is loaded."""
    check_image_folder(args.image_dir)
    if len(args.model) > 2:
        raise ValueError(f"give one --model (compared with itself) or two, got {len(args.model)}")
    check_models(args)
    for model in args.model:
        config = model_config(model)
        if config is None:
            continue
        registers = getattr(config, "num_register_tokens", 0)
        for t in _tokens(args):
            if t == "dist" and config.num_prefix_tokens - 1 - registers < 1:
                raise ValueError(f"--tokens dist: {model} has no distillation token (only distilled DeiT has one)")
            if t == "registers" and not registers:
                raise ValueError(f"--tokens registers: {model} has no register tokens")
    check_output_dir(args.out)


def _paired_batches(paths, recipes, patch_size, size, limit, on_skip, on_item):
    """Yield tuples of batches (one per recipe) of the same images; a file that fails for any recipe is skipped."""
    import numpy as np

    from ..analysis import prepare

    batch, used = [], 0
    for path in paths:
        if limit is not None and used >= limit:
            break
        try:
            xs = [prepare(path, recipe, patch_size)[0][0] for recipe in recipes]
        except (ValueError, OSError) as e:
            on_skip(path, str(e))
            continue
        finally:
            on_item()
        batch.append(xs)
        used += 1
        if len(batch) == size:
            yield tuple(np.stack(col) for col in zip(*batch))
            batch = []
    if batch:
        yield tuple(np.stack(col) for col in zip(*batch))


def run(args) -> int:
    from .. import plotting as rplot
    from ..analysis import list_images
    from ..analysis.cka import layer_cka

    tokens = _tokens(args)
    paths = list_images(args.image_dir)
    limit = args.num_images or None
    loaded = [load_for_analysis(m, args.checkpoint, args.random_weights, args.seed) for m in args.model]
    nets = [net for net, _, _ in loaded]
    recipes = [recipe for _, recipe, _ in loaded]
    infos = [info for _, _, info in loaded]
    # One decode per image when both models preprocess alike; else each gets its own recipe's batch.
    distinct = [recipes[0]] if len(recipes) == 1 or recipes[1] == recipes[0] else recipes
    patch = max(net.config.patch_size for net in nets)
    skipped = Skipped()
    label = " vs ".join(info["name"] for info in infos) if len(infos) > 1 else infos[0]["name"]
    with progress_bar(paths, limit, label) as bar:
        pairs = _paired_batches(paths, distinct, patch, args.batch_size, limit, skipped, lambda: bar.update(1))
        if len(distinct) == 2:
            first, second = itertools.tee(pairs)
            batches, batches_b = (p[0] for p in first), (p[1] for p in second)
        else:
            batches, batches_b = (p[0] for p in pairs), None
        try:
            result = layer_cka(nets[0], batches, nets[1] if len(nets) > 1 else None, batches_b=batches_b,
                               tokens=tokens, unbiased=not args.biased)
        except ValueError as e:
            if "images in all" in str(e) or "no images" in str(e):
                raise ValueError(f"{e} (readable images in {args.image_dir}: fewer than 4; {len(skipped)} files "
                                 f"skipped)") from None
            raise
    names = [info["name"] for info in infos] * (2 if len(infos) == 1 else 1)
    labels = [figure_label(info) for info in infos] * (2 if len(infos) == 1 else 1)
    estimator = ("minibatch linear CKA: per-batch " + ("biased" if args.biased else "unbiased (U-centred)") +
                 " HSIC averaged over batches, normalised at the end (Nguyen, Raghu & Kornblith 2021)")

    rows = io.StringIO()
    w = csv.writer(rows)
    w.writerow(["tokens", "model_a", "layer_a", "model_b", "layer_b", "cka"])
    figures, per_token = {}, {}
    for t in tokens:
        sel = result.select(t)
        per_token[t] = sel
        for i, la in enumerate(sel.layers_a):
            for j, lb in enumerate(sel.layers_b):
                w.writerow([t, names[0], la, names[1], lb, f"{sel.cka[i, j]:.6f}"])
        title = (f"CKA, {_token_words(t)}: {labels[0]}" + (f" vs {labels[1]}" if len(infos) > 1 else "") +
                 f" ({result.images} images, batches of {args.batch_size})")
        figures[t] = (f"cka_{t}.png", rplot.cka_figure(
            sel.cka, sel.layers_a, sel.layers_b, labels[0], labels[1] if len(infos) > 1 else None, title=title,
            constant_a=sel.constant_a, constant_b=sel.constant_b))
    report = {
        "image_dir": args.image_dir, "num_images": limit, "images": result.images, "batches": result.batches,
        "batch_size": args.batch_size, "estimator": estimator, "tokens": tokens,
        "models": [{"name": info["name"], "weights": info["source"], "input_size": list(recipe.input_size)}
                   for info, recipe in zip(infos, recipes)],
        "layers_a": per_token[tokens[0]].layers_a, "layers_b": per_token[tokens[0]].layers_b,
        "cka": {t: s.cka.round(6).tolist() for t, s in per_token.items()},
        "constant": {t: {"a": [s.layers_a[i] for i in s.constant_a], "b": [s.layers_b[j] for j in s.constant_b]}
                     for t, s in per_token.items()},
        "skipped": skipped.report(),
        "figures": {t: filename for t, (filename, _) in figures.items()},
    }
    # the folder is made only now: a failure before leaves nothing behind
    write_results(args.out, {"cka.csv": rows.getvalue()}, figures.values(), "cka.json", report, args.dpi)
    print(f"{label}: {result.images} images in {result.batches} batches; {len(skipped)} skipped; results in "
          f"{args.out}")
    return 0


def _token_words(t: str) -> str:
    return {"cls": "class token", "mean": "mean of patch tokens", "all": "all tokens", "patches": "patch tokens",
            "dist": "distillation token", "registers": "register tokens"}[t]
