"""Regenerate docs/representations.md's figures: docs/figures/cka.png and docs/figures/head_importance.png.

    PYTHONPATH=. MPLBACKEND=Agg python docs/make_representation_figures.py

The models have RANDOM weights (official weights cannot be downloaded where these figures are built), so the
figures show what `vit-tf similarity` and `vit-tf heads` draw, not what a trained ViT learned. The images are
random crops of scikit-learn's two sample photos. With weights, run e.g.
`vit-tf similarity DATA --model vit_base_patch16_224.augreg_in21k_ft_in1k --tokens mean --out DIR`.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_image

import vit_tf
from vit_tf import analysis
from vit_tf.analysis.cka import layer_cka
from vit_tf.analysis.heads import head_statistics
from vit_tf.plotting import save_figure
from vit_tf.plotting import cka_figure, heads_figure

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")
DPI = 72
NOTE = " [RANDOM WEIGHTS]"


def crops(count: int, seed: int = 0):
    """`count` random square crops (half to full height) of the two sample photos, as PIL images."""
    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(load_sample_image(name)) for name in ("china.jpg", "flower.jpg")]
    out = []
    for i in range(count):
        photo = photos[i % 2]
        w, h = photo.size
        side = int(rng.integers(h // 2, h + 1))
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        out.append(photo.crop((x, y, x + side, y + side)))
    return out


def batches(images, recipe, patch_size, size):
    x = np.concatenate([analysis.prepare(im, recipe, patch_size)[0] for im in images])
    return [x[i:i + size] for i in range(0, len(x), size)]


def save(fig, name):
    path = save_figure(fig, os.path.join(OUT, name), dpi=DPI)
    with Image.open(path) as im:  # a 256-colour palette keeps the repository small
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(path, os.path.getsize(path) // 1024, "KiB")


def main():
    os.makedirs(OUT, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = vit_tf.create_model("vit_tiny_patch16_224")  # random weights
    images = crops(64)
    sim = layer_cka(model, batches(images, model.recipe, 16, 16), tokens="cls")
    name = model.name + NOTE
    save(cka_figure(sim.cka, sim.layers_a, sim.layers_b, name, constant_a=sim.constant_a,
                    constant_b=sim.constant_b,
                    title=f"{name}: CKA of the class token between layers ({sim.images} images, "
                          f"minibatches of 16)"), "cka.png")

    keras.utils.set_random_seed(0)
    model = vit_tf.create_model("deit_tiny_patch16_224")  # random weights
    r = head_statistics(model, batches(crops(16, seed=1), model.recipe, 16, 8))
    save(heads_figure(r.importance, r.ablation, r.entropy, metric=r.metric, uniform_entropy=r.uniform_entropy,
                      title=f"{model.name}{NOTE}: attention heads ({r.images} images, no labels: agreement "
                            f"with the unmasked top-1)"), "head_importance.png")


if __name__ == "__main__":
    main()
