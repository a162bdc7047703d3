"""Regenerate the random-weight figures of docs/analysis.md in docs/figures/.

    PYTHONPATH=. MPLBACKEND=Agg python docs/make_figures.py

The models have RANDOM weights (official weights cannot be downloaded where these figures are built), so the
figures show what each probe draws, not what a trained ViT learned. With weights, run
`vit-tf probe --model vit_base_patch16_224.augreg_in21k_ft_in1k --out DIR` instead.
"""

from __future__ import annotations

import os

import keras
from PIL import Image
from sklearn.datasets import load_sample_image

import vit_tf
from vit_tf import analysis, plotting

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")
DPI = 72


def main():
    keras.utils.set_random_seed(0)
    os.makedirs(OUT, exist_ok=True)
    model = vit_tf.create_model("deit_tiny_patch16_224")  # random weights
    recipe = model.recipe
    x, shown = analysis.prepare(load_sample_image("china.jpg"), recipe, model.config.patch_size)
    result = analysis.probe(model, x, image=shown)
    note = " (random weights)"
    figures = {
        "mean_distance": plotting.mean_distance_figure(result.mean_distance, uniform=result.uniform_distance,
                                                       title=model.name + note),
        "rollout": plotting.rollout_figure(result.image, result.rollout, title="Attention rollout" + note),
        "heatmaps": plotting.heatmaps_figure(result.image, result.heatmaps, title="Last block, per head" + note),
        "masks": plotting.masks_figure(result.image, result.masks, result.mask_keep),
        "attention_grid": plotting.attention_grid_figure(result.image, result.grid, title="Block x head" + note,
                                                         tile=1.0),
        "filters": plotting.filters_figure(result.filters[:64]),
        "filter_pca": plotting.filter_pca_figure(*result.filter_pca),
        "position_cosine": plotting.position_cosine_figure(result.pos_cosine, max_size=5.0),
    }
    # Dataset-level comparison, as `vit-tf distance` draws it, over scikit-learn's two sample photos.
    compared = {}
    for name in ("deit_tiny_patch16_224", "deit_tiny_distilled_patch16_224"):
        net = vit_tf.create_model(name)
        batches = (analysis.prepare(load_sample_image(f), net.recipe, 16)[0]
                   for f in ("china.jpg", "flower.jpg"))
        stats = analysis.accumulate_mean_distance(analysis.attention_source(net), batches)
        compared[name + note] = (stats.mean, stats.std)
    figures["distance_comparison"] = plotting.distance_comparison_figure(compared)
    for name, fig in figures.items():
        path = plotting.save_figure(fig, os.path.join(OUT, f"{name}.png"), dpi=DPI)
        with Image.open(path) as im:  # a 256-colour palette keeps the repository small
            im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        print(path, os.path.getsize(path) // 1024, "KiB")


if __name__ == "__main__":
    main()
