"""Localisation metrics on hand-made maps with known answers; mask AUROC against scikit-learn."""

import itertools

import numpy as np
import pytest

from vit_tf.analysis import (mask_auroc, pointing_game, relevance_mass_accuracy, relevance_rank_accuracy,
                             resize_maps)

METRICS = (pointing_game, relevance_mass_accuracy, relevance_rank_accuracy, mask_auroc)


def box(shape, top, left, bottom, right):
    mask = np.zeros(shape, bool)
    mask[top:bottom, left:right] = True
    return mask


def peak(shape, *where, value=1.0):
    m = np.zeros(shape)
    for r, c in where:
        m[r, c] = value
    return m


# -- pointing game --------------------------------------------------------------------------------------------------
def test_pointing_game_hit_miss_and_tolerance_in_euclidean_pixels():
    shape = (20, 20)
    inside = peak(shape, (4, 5))
    corner = peak(shape, (0, 0))
    mask = box(shape, 3, 4, 8, 9)  # rows 3-7, cols 4-8
    far = box(shape, 3, 4, 4, 5)  # the single pixel (3, 4): distance 5 from (0, 0) (3-4-5 triangle)
    maps, masks = np.stack([inside, corner, corner, corner]), np.stack([mask, mask, far, far])
    assert pointing_game(maps, masks, tolerance=0).tolist() == [True, False, False, False]
    assert pointing_game(maps, masks, tolerance=4.99).tolist() == [True, False, False, False]
    assert pointing_game(maps, masks, tolerance=5).tolist() == [True, True, True, True]
    assert pointing_game(maps, masks).dtype == bool  # default tolerance 15


def test_pointing_game_ties_need_every_maximum_in_the_mask():
    shape = (30, 30)
    mask = box(shape, 0, 0, 5, 5)
    both_in = peak(shape, (1, 1), (3, 3))
    one_out = peak(shape, (1, 1), (29, 29))
    constant = np.zeros(shape)
    hits = pointing_game(np.stack([both_in, one_out, constant, constant]),
                         np.stack([mask, mask, mask, np.ones(shape, bool)]), tolerance=2)
    assert hits.tolist() == [True, False, False, True]  # a flat map hits only a mask that covers everything


def test_pointing_game_on_a_patch_map_resized_to_the_mask():
    patches = np.array([[[0.0, 0.2], [0.1, 1.0]]])  # the bottom-right patch is the maximum
    quadrant = box((16, 16), 8, 8, 16, 16)[None]
    assert pointing_game(patches, quadrant, tolerance=0).tolist() == [True]
    assert pointing_game(patches, ~quadrant, tolerance=0).tolist() == [False]
    assert pointing_game(patches, np.zeros((1, 16, 16), bool)).tolist() == [False]  # empty mask: a miss


# -- relevance mass -------------------------------------------------------------------------------------------------
def test_relevance_mass_accuracy_counts_positive_relevance_only():
    m = np.array([[3.0, -2.0], [1.0, 0.0]])
    mask = np.array([[True, False], [False, True]])
    assert relevance_mass_accuracy(m[None], mask[None]) == pytest.approx([0.75], abs=1e-12)  # 3 / (3 + 1)
    changed = m.copy()
    changed[0, 1] = -100.0  # negative relevance is ignored
    out = relevance_mass_accuracy(np.stack([10 * m, changed, m]), np.stack([mask, mask, ~mask]))
    assert out == pytest.approx([0.75, 0.75, 0.25], abs=1e-12)


def test_relevance_mass_accuracy_undefined_cases_are_nan():
    mask = box((4, 4), 0, 0, 2, 2)
    out = relevance_mass_accuracy(np.stack([np.zeros((4, 4)), -np.ones((4, 4)), np.ones((4, 4))]),
                                  np.stack([mask, mask, np.zeros((4, 4), bool)]))
    assert np.isnan(out).all()


# -- relevance rank -------------------------------------------------------------------------------------------------
def test_relevance_rank_accuracy_top_k():
    m = np.arange(16, dtype=float).reshape(4, 4)  # the top 4 values fill the last row
    last_row = box((4, 4), 3, 0, 4, 4)
    half = box((4, 4), 2, 2, 4, 4)  # 4 pixels: 14 and 15 are in the top 4, 10 and 11 are not
    out = relevance_rank_accuracy(np.stack([m, m, -m]), np.stack([last_row, half, last_row]))
    assert out == pytest.approx([1.0, 0.5, 0.0], abs=1e-12)
    assert relevance_rank_accuracy(m[None], np.ones((1, 4, 4), bool)) == pytest.approx([1.0])


def test_relevance_rank_accuracy_shares_ties_as_random_tie_breaking_would():
    values = np.array([[5.0, 4.0, 4.0, 4.0, 0.0, 0.0]])  # (1, 6) as a one-row map
    mask = np.array([[True, True, False, False, False, False]])
    # K = 2: the 5 counts; one place left among three tied 4s, one of which is in the mask -> (1 + 1/3) / 2.
    out = relevance_rank_accuracy(values[None], mask[None])
    brute = np.mean([float(mask[0, 0]) + float(mask[0, 1 + p[0]]) for p in itertools.permutations(range(3))]) / 2
    assert out == pytest.approx([2 / 3], abs=1e-12) and out[0] == pytest.approx(brute, abs=1e-12)
    constant = relevance_rank_accuracy(np.zeros((1, 10, 10)), box((10, 10), 0, 0, 3, 3)[None])
    assert constant == pytest.approx([9 / 100], abs=1e-12)  # chance: the mask's area fraction
    assert np.isnan(relevance_rank_accuracy(np.ones((1, 3, 3)), np.zeros((1, 3, 3), bool))).all()


# -- mask AUROC -----------------------------------------------------------------------------------------------------
def test_mask_auroc_known_answers():
    mask = box((6, 6), 1, 1, 3, 4)
    good = mask.astype(float)
    out = mask_auroc(np.stack([good, -good, np.zeros((6, 6))]), np.stack([mask, mask, mask]))
    assert out == pytest.approx([1.0, 0.0, 0.5], abs=1e-12)
    undefined = mask_auroc(np.ones((2, 6, 6)), np.stack([np.zeros((6, 6), bool), np.ones((6, 6), bool)]))
    assert np.isnan(undefined).all()


def test_mask_auroc_equals_scikit_learn_with_ties_and_resizing():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    maps = np.round(rng.normal(size=(5, 7, 7)), 1)  # rounding makes ties
    maps[0] = np.round(maps[0])  # many ties
    masks = np.stack([box((28, 28), *rng.integers(0, 10, 2), *rng.integers(14, 28, 2)) for _ in range(5)])
    out = mask_auroc(maps, masks)
    resized = resize_maps(maps, (28, 28))
    expected = [roc_auc_score(k.ravel(), m.ravel()) for m, k in zip(resized, masks)]
    assert out == pytest.approx(expected, abs=1e-12)
    same_size = mask_auroc(resized, masks)  # already at the masks' size: no resizing
    assert same_size == pytest.approx(expected, abs=1e-12)


# -- every metric ---------------------------------------------------------------------------------------------------
def test_a_map_equal_to_the_mask_is_perfect_on_every_metric():
    masks = np.stack([box((32, 32), 4, 6, 20, 30), box((32, 32), 10, 0, 12, 5)])
    maps = masks.astype(np.float32)
    assert pointing_game(maps, masks, tolerance=0).all()
    for metric in METRICS[1:]:
        assert metric(maps, masks) == pytest.approx([1.0, 1.0], abs=1e-12), metric.__name__


def test_masks_may_be_zero_one_integers_and_maps_any_framework():
    import tensorflow as tf

    mask = box((8, 8), 2, 2, 5, 5)
    maps = tf.constant(mask[None].astype("float32"))
    for metric in METRICS[1:]:
        assert metric(maps, mask[None].astype(np.uint8)) == pytest.approx([1.0]), metric.__name__


@pytest.mark.parametrize("metric", METRICS, ids=lambda f: f.__name__)
def test_bad_input_is_named(metric):
    mask = np.zeros((2, 8, 8), bool)
    with pytest.raises(ValueError, match=r"maps must be \(B, h, w\)"):
        metric(np.zeros((8, 8)), mask)
    with pytest.raises(ValueError, match=r"masks must be \(B, H, W\)"):
        metric(np.zeros((2, 8, 8)), mask[0])
    with pytest.raises(ValueError, match="batch size: 3 maps, 2 masks"):
        metric(np.zeros((3, 8, 8)), mask)
    with pytest.raises(ValueError, match="masks must be booleans"):
        metric(np.zeros((2, 8, 8)), np.full((2, 8, 8), 0.5))
    bad = np.zeros((2, 4, 4))
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"maps \[1\] contain NaN or Inf"):
        metric(bad, mask)


def test_exported_at_the_top_level():
    import vit_tf

    assert [getattr(vit_tf, f.__name__) for f in METRICS] == list(METRICS)


def test_pointing_game_refuses_a_negative_tolerance():
    with pytest.raises(ValueError, match="tolerance must be"):
        pointing_game(np.zeros((1, 4, 4)), np.ones((1, 4, 4), bool), tolerance=-1)
