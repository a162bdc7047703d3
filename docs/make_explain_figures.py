"""Regenerate docs/figures/explain.png: every explanation method on one photo, as `vit-tf explain` draws it.

    PYTHONPATH=. MPLBACKEND=Agg python docs/make_explain_figures.py

The model has RANDOM weights (official weights cannot be downloaded where this figure is built), so the maps show
what each method draws, not what a trained ViT attends to. With weights, run
`vit-tf explain IMAGE --model vit_base_patch16_224.augreg_in21k_ft_in1k --method all --out DIR` instead.
"""

from __future__ import annotations

import os

import keras
from PIL import Image
from sklearn.datasets import load_sample_image

import vit_tf
from vit_tf import analysis, plotting
from vit_tf.analysis.explanations import METHODS, explain

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")
DPI = 72
MODEL = "deit_tiny_distilled_patch16_224"  # class and distillation tokens


def main():
    keras.utils.set_random_seed(0)
    os.makedirs(OUT, exist_ok=True)
    model = vit_tf.create_model(MODEL)  # random weights
    x, shown = analysis.prepare(load_sample_image("china.jpg"), model.recipe, model.config.patch_size)
    logits = model(x, return_attention=False)[0].numpy()
    target = int(logits[0].argmax())
    options = {"integrated_gradients": {"steps": 32}, "smoothgrad": {"samples": 32}}
    maps = {m: explain(model, x, m, target=target, **options.get(m, {}))[0] for m in METHODS}
    name = analysis.imagenet_class_names()[target]
    fig = plotting.explain_figure(
        shown, maps, title=f"{MODEL} with RANDOM WEIGHTS (no learned structure): explanations of {name!r} "
                           f"(class {target}, its top-1)")
    path = plotting.save_figure(fig, os.path.join(OUT, "explain.png"), dpi=DPI)
    with Image.open(path) as im:  # a 256-colour palette keeps the repository small
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(path, os.path.getsize(path) // 1024, "KiB")


if __name__ == "__main__":
    main()
