"""Figures are written with the expected pixel sizes and are not blank."""

import numpy as np
import pytest
from PIL import Image

from analysis_support import tiny_model
from vit_tf import analysis as A
from vit_tf import plotting as P


def check_png(path, fig, dpi=P.DEFAULT_DPI):
    with Image.open(path) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB"), np.float64)
    w, h = fig.get_size_inches() * dpi
    assert abs(pixels.shape[0] - h) < 1 and abs(pixels.shape[1] - w) < 1  # matplotlib truncates fractions
    assert pixels.std() > 10  # not blank: a white canvas has std 0
    return pixels


@pytest.fixture(scope="module")
def image():
    yy, xx = np.mgrid[0:32, 0:48]
    return np.stack([xx * 5, yy * 7, (xx + yy) * 3], -1).astype(np.uint8)


def test_mean_distance_figures(tmp_path):
    mean = np.random.RandomState(0).rand(4, 3) * 100
    fig = P.mean_distance_figure(mean, std=mean * 0.1, uniform=50.0, title="t", figsize=(5.0, 4.0))
    check_png(P.save_figure(fig, tmp_path / "d.png", dpi=80), fig, dpi=80)
    assert fig.get_size_inches().tolist() == [5.0, 4.0]
    fig = P.distance_comparison_figure({"a": (mean, None), "b": (mean * 2, mean * 0.2)})
    check_png(P.save_figure(fig, tmp_path / "c.png"), fig)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError):
        P.distance_comparison_figure({})


def test_image_figures(tmp_path, image):
    rng = np.random.RandomState(1)
    maps = rng.rand(3, 4, 6)
    figs = {
        "rollout": P.rollout_figure(image, maps[0]),
        "heatmaps": P.heatmaps_figure(image, maps),
        "masks": P.masks_figure(image, A.attention_mass_mask(maps, 0.6), 0.6),
        "grid": P.attention_grid_figure(image, rng.rand(2, 3, 4, 6)),
        "filters": P.filters_figure(rng.rand(20, 8, 8, 3), ncols=8),
        "pca": P.filter_pca_figure(rng.rand(5, 8, 8, 3), np.linspace(0.3, 0.1, 5)),
        "pos_sim": P.position_similarity_figure(rng.rand(24, 24)),
        "pos_cos": P.position_cosine_figure(rng.rand(4, 6, 4, 6) * 2 - 1),
    }
    for name, fig in figs.items():
        check_png(P.save_figure(fig, tmp_path / f"{name}.png"), fig)
    assert figs["grid"].get_size_inches().tolist() == pytest.approx([1.3 * 4 + 0.9, 1.3 * 2 + 0.6])
    panels = [ax for ax in figs["heatmaps"].axes if ax.get_label() != "<colorbar>"]
    assert sum(ax.has_data() for ax in panels) == 3


def test_heatmap_shows_the_hot_patch(tmp_path):
    # A single hot patch in the lower right must come out brighter there than in the upper left.
    image = np.full((64, 64, 3), 128, np.uint8)
    heat = np.zeros((1, 4, 4))
    heat[0, 3, 3] = 1.0
    fig = P.heatmaps_figure(image, heat, ncols=1, tile=3.0)
    pixels = check_png(P.save_figure(fig, tmp_path / "hot.png", dpi=fig.dpi), fig, dpi=fig.dpi)
    ax = fig.axes[0].get_window_extent()
    h = pixels.shape[0]
    x0, x1, y0, y1 = int(ax.x0), int(ax.x1), int(h - ax.y1), int(h - ax.y0)
    panel = pixels[y0:y1, x0:x1].mean(-1)
    q = panel.shape[0] // 4
    assert panel[-q:, -q:].mean() > panel[:q, :q].mean() + 40


def test_probe_figures_for_a_tiny_model(tmp_path):
    model = tiny_model("deit_tiny_distilled_patch16_224", img_size=(32, 48))
    r = A.probe(model, np.random.RandomState(0).randn(1, 32, 48, 3).astype(np.float32))
    paths = P.probe_figures(r, tmp_path, dpi=50)
    assert set(paths) == {"mean_distance", "rollout", "heatmaps", "masks", "attention_grid", "filters",
                          "filter_pca", "position_similarity", "position_cosine"}
    for path in paths.values():
        with Image.open(path) as im:
            assert min(im.size) >= 50 and np.asarray(im.convert("L"), np.float64).std() > 10
