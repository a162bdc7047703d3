"""Known-answer tests of the pure analysis functions (no model involved)."""

import math

import numpy as np
import pytest

from analysis_support import random_attention, softmax
from vit_tf import analysis as A


def brute_force_mean_distance(attn, patch_size, num_prefix, grid):
    """The keras.io example's definition, written as plain loops over queries and keys."""
    gh, gw = grid
    b, h = attn.shape[:2]
    out = np.zeros((b, h))
    n = gh * gw
    for bi in range(b):
        for hi in range(h):
            total = 0.0
            for q in range(n):
                for k in range(n):
                    (qr, qc), (kr, kc) = divmod(q, gw), divmod(k, gw)
                    d = patch_size * math.hypot(qr - kr, qc - kc)
                    total += attn[bi, hi, num_prefix + q, num_prefix + k] * d
            out[bi, hi] = total / n
    return out


def uniform_grid_distance(gh, gw, p):
    """Mean distance between two uniformly drawn patches, by counting the pairs at each offset (dy, dx)."""
    total = 0.0
    for dy in range(-(gh - 1), gh):
        for dx in range(-(gw - 1), gw):
            total += (gh - abs(dy)) * (gw - abs(dx)) * p * math.hypot(dy, dx)
    return total / (gh * gw) ** 2


# -- mean attention distance ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid,num_prefix", [((3, 3), 1), ((2, 5), 1), ((4, 3), 2), ((1, 6), 0)])
def test_identity_attention_has_zero_distance(grid, num_prefix):
    t = num_prefix + grid[0] * grid[1]
    attn = np.broadcast_to(np.eye(t), (2, 3, t, t))
    for renormalize in (False, True):
        d = A.mean_attention_distance(attn, patch_size=16, num_prefix_tokens=num_prefix, grid_size=grid,
                                      renormalize=renormalize)
        assert d.shape == (2, 3)
        np.testing.assert_array_equal(d, 0.0)


def test_uniform_attention_closed_forms():
    # One row of n patches: E|i - j| over uniform pairs = (n^2 - 1) / (3n).
    n, p = 7, 16
    attn = np.full((1, 1, n, n), 1.0 / n)
    d = A.mean_attention_distance(attn, patch_size=p, num_prefix_tokens=0, grid_size=(1, n))
    assert d[0, 0] == pytest.approx(p * (n * n - 1) / (3 * n), rel=1e-12)
    # 2x2 grid: every patch sees itself (0), two neighbours (1) and the diagonal (sqrt 2).
    attn = np.full((1, 1, 5, 5), 1.0 / 5)  # class token + 4 patches, uniform over all 5 tokens
    d = A.mean_attention_distance(attn, patch_size=p, num_prefix_tokens=1, renormalize=True)
    assert d[0, 0] == pytest.approx(p * (2 + math.sqrt(2)) / 4, rel=1e-12)
    # Without renormalisation the class token's 1/5 share counts as distance 0.
    d = A.mean_attention_distance(attn, patch_size=p, num_prefix_tokens=1)
    assert d[0, 0] == pytest.approx(p * (2 + math.sqrt(2)) / 4 * 4 / 5, rel=1e-12)


@pytest.mark.parametrize("grid", [(3, 3), (3, 5), (6, 2), (14, 14)])
def test_uniform_attention_matches_offset_count(grid):
    n = grid[0] * grid[1]
    attn = np.full((2, 4, n + 2, n + 2), 1.0 / (n + 2))
    d = A.mean_attention_distance(attn, patch_size=8, num_prefix_tokens=2, grid_size=grid, renormalize=True)
    np.testing.assert_allclose(d, uniform_grid_distance(*grid, 8), rtol=1e-12)
    assert A.patch_distance_matrix(grid, 8).mean() == pytest.approx(uniform_grid_distance(*grid, 8), rel=1e-12)


@pytest.mark.parametrize("grid,num_prefix", [((3, 3), 1), ((2, 4), 1), ((3, 2), 2), ((4, 4), 2)])
def test_vectorised_matches_brute_force(grid, num_prefix):
    t = num_prefix + grid[0] * grid[1]
    attn = random_attention(2, 3, t, seed=grid[0] * 10 + grid[1])
    expected = brute_force_mean_distance(attn, 16, num_prefix, grid)
    got = A.mean_attention_distance(attn, patch_size=16, num_prefix_tokens=num_prefix, grid_size=grid)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_distance_matrix_is_row_major_and_cached():
    d = A.patch_distance_matrix((2, 3), 10)
    # patch 2 is (row 0, col 2), patch 3 is (row 1, col 0)
    assert d[2, 3] == pytest.approx(10 * math.sqrt(5))
    assert d[0, 5] == pytest.approx(10 * math.sqrt(1 + 4))
    assert A.patch_distance_matrix((2, 3), 10) is d
    assert not d.flags.writeable


def test_renormalize_ignores_prefix_share():
    grid, t = (2, 3), 1 + 6
    attn = random_attention(1, 2, t, seed=3)
    patches = attn[..., 1:, 1:] / attn[..., 1:, 1:].sum(-1, keepdims=True)
    expected = brute_force_mean_distance(np.pad(patches, ((0, 0), (0, 0), (1, 0), (1, 0))), 16, 1, grid)
    got = A.mean_attention_distance(attn, patch_size=16, num_prefix_tokens=1, grid_size=grid, renormalize=True)
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_distilled_two_prefix_tokens_are_removed():
    grid, n = (2, 2), 4
    attn = random_attention(2, 2, 2 + n, seed=5)
    d2 = A.mean_attention_distance(attn, patch_size=16, num_prefix_tokens=2, grid_size=grid)
    np.testing.assert_allclose(d2, brute_force_mean_distance(attn, 16, 2, grid), rtol=1e-10)
    # Treating the distillation token as a patch would need a 5-patch grid: refused, not silently wrong.
    with pytest.raises(ValueError, match="grid_size"):
        A.mean_attention_distance(attn, patch_size=16, num_prefix_tokens=1, grid_size=grid)
    with pytest.raises(ValueError, match="square"):
        A.mean_attention_distance(attn, patch_size=16, num_prefix_tokens=1)


def test_dict_and_list_inputs_in_block_order():
    blocks = [random_attention(3, 2, 10, seed=i) for i in range(11)]
    keys = [f"transformer_block_{i}_att" for i in range(11)]
    shuffled = {k: blocks[i] for i, k in sorted(enumerate(keys), key=lambda ik: ik[1])}  # "10" before "2"
    shuffled["logits"] = np.zeros((3, 5))
    d = A.mean_attention_distance(shuffled, patch_size=8, num_prefix_tokens=1)
    assert d.shape == (3, 11, 2)
    for i in range(11):
        np.testing.assert_allclose(d[:, i], A.mean_attention_distance(blocks[i], patch_size=8, num_prefix_tokens=1))
    np.testing.assert_allclose(A.mean_attention_distance(blocks, patch_size=8, num_prefix_tokens=1), d)
    np.testing.assert_allclose(A.mean_attention_distance(np.stack(blocks, 1), patch_size=8, num_prefix_tokens=1), d)


def test_framework_tensors_accepted():
    import tensorflow as tf
    import torch

    attn = random_attention(1, 2, 10, seed=1).astype(np.float32)
    ref = A.mean_attention_distance(attn, patch_size=16, num_prefix_tokens=1)
    np.testing.assert_allclose(A.mean_attention_distance(tf.constant(attn), patch_size=16, num_prefix_tokens=1), ref)
    np.testing.assert_allclose(A.mean_attention_distance(torch.from_numpy(attn), patch_size=16, num_prefix_tokens=1),
                               ref)
    np.testing.assert_allclose(A.attention_rollout([tf.constant(attn)], num_prefix_tokens=1),
                               A.attention_rollout([attn], num_prefix_tokens=1))


def test_running_moments_match_numpy_for_any_split():
    data = np.random.RandomState(0).randn(37, 3, 4) * 5 + 100
    for splits in ([37], [1] * 37, [10, 20, 7], [3, 0, 34]):
        stats, start = A.RunningMoments(), 0
        for n in splits:
            stats.update(data[start:start + n])
            start += n
        assert stats.count == 37
        np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-12)
        np.testing.assert_allclose(stats.std, data.std(0), rtol=1e-10)
    with pytest.raises(ValueError):
        A.RunningMoments().mean


# -- rollout ---------------------------------------------------------------------------------------------------------
def test_identity_attention_rolls_out_to_identity():
    t = 1 + 6
    eye = np.broadcast_to(np.eye(t), (2, 3, t, t))
    joint = A.rollout_matrix([eye, eye, eye])
    np.testing.assert_allclose(joint, np.broadcast_to(np.eye(t), (2, t, t)))
    m = A.attention_rollout([eye, eye], num_prefix_tokens=1, grid_size=(2, 3))
    assert m.shape == (2, 2, 3)
    np.testing.assert_array_equal(m, 0.0)  # the class token only ever attended to itself


ONE_HEAD = np.array([[0.50, 0.30, 0.20],
                     [0.15, 0.60, 0.25],
                     [0.05, 0.35, 0.60]])


def test_single_block_rollout_is_residual_average():
    joint = A.rollout_matrix([ONE_HEAD[None, None]])
    np.testing.assert_allclose(joint[0], (ONE_HEAD + np.eye(3)) / 2)


def test_discard_ratio_hand_built():
    # k = int(9 * 0.34) = 3 lowest entries: 0.05 at (2, 0), 0.15 at (1, 0), 0.20 at (0, 2).
    joint = A.rollout_matrix([ONE_HEAD[None, None]], discard_ratio=0.34)
    kept = np.array([[0.50, 0.30, 0.00],
                     [0.00, 0.60, 0.25],
                     [0.00, 0.35, 0.60]])
    expected = np.array([[0.75 / 0.90, 0.15 / 0.90, 0.0],
                         [0.0, 0.80 / 0.925, 0.125 / 0.925],
                         [0.0, 0.175 / 0.975, 0.80 / 0.975]])
    np.testing.assert_allclose((kept + np.eye(3)) / 2 / ((kept + np.eye(3)) / 2).sum(-1, keepdims=True), expected)
    np.testing.assert_allclose(joint[0], expected, rtol=1e-12)
    # The readout token's own entry is never dropped: here (0, 0) would be among the 5 lowest of a flat matrix.
    flat = np.full((1, 1, 3, 3), 1.0 / 3)
    dropped = A.discard_lowest(A.fuse_heads(flat), 5 / 9)
    assert dropped[0, 0, 0] == pytest.approx(1 / 3)
    assert (dropped[0] == 0).sum() == 4


def test_head_fusion_hand_built():
    h0 = ONE_HEAD
    h1 = np.array([[0.10, 0.10, 0.80],
                   [0.40, 0.40, 0.20],
                   [0.30, 0.30, 0.40]])
    attn = np.stack([h0, h1])[None]  # (1, 2, 3, 3)
    for fusion, fused in (("mean", (h0 + h1) / 2), ("max", np.maximum(h0, h1)), ("min", np.minimum(h0, h1))):
        np.testing.assert_allclose(A.fuse_heads(attn, fusion)[0], fused)
        a = (fused + np.eye(3)) / 2
        expected = a / a.sum(-1, keepdims=True)
        np.testing.assert_allclose(A.rollout_matrix([attn], head_fusion=fusion)[0], expected, rtol=1e-12)
    # max: row 0 is [0.5, 0.3, 0.8] -> ([1.5, 0.3, 0.8] / 2) / 1.3
    np.testing.assert_allclose(A.rollout_matrix([attn], head_fusion="max")[0, 0], np.array([1.5, 0.3, 0.8]) / 2.6)
    with pytest.raises(ValueError, match="head_fusion"):
        A.rollout_matrix([attn], head_fusion="median")


def test_rollout_multiplies_later_blocks_on_the_left_and_start_block():
    a1, a2 = random_attention(1, 2, 5, seed=1), random_attention(1, 2, 5, seed=2)

    def step(a):
        x = (a.mean(1)[0] + np.eye(5)) / 2
        return x / x.sum(-1, keepdims=True)

    np.testing.assert_allclose(A.rollout_matrix([a1, a2])[0], step(a2) @ step(a1), rtol=1e-12)
    np.testing.assert_allclose(A.rollout_matrix([a1, a2], start_block=1)[0], step(a2), rtol=1e-12)
    np.testing.assert_allclose(A.rollout_matrix([a1, a2], start_block=-1)[0], step(a2), rtol=1e-12)
    rows = A.rollout_matrix([a1, a2]).sum(-1)
    np.testing.assert_allclose(rows, 1.0)
    m = A.attention_rollout([a1, a2], num_prefix_tokens=1)
    np.testing.assert_allclose(m.reshape(-1), (step(a2) @ step(a1))[0, 1:])


def test_rollout_reads_the_distillation_token():
    attn = [random_attention(2, 3, 2 + 6, seed=s) for s in range(3)]
    joint = A.rollout_matrix(attn, keep_token=1)
    dist = A.attention_rollout(attn, num_prefix_tokens=2, token="dist", grid_size=(2, 3))
    cls = A.attention_rollout(attn, num_prefix_tokens=2, token="cls", grid_size=(3, 2))
    assert dist.shape == (2, 2, 3) and cls.shape == (2, 3, 2)
    np.testing.assert_allclose(dist.reshape(2, -1), joint[:, 1, 2:])
    np.testing.assert_allclose(cls.reshape(2, -1), A.rollout_matrix(attn)[:, 0, 2:])
    with pytest.raises(ValueError, match="prefix"):
        A.attention_rollout(attn[:1], num_prefix_tokens=1, token="dist", grid_size=(1, 7))


def test_rollout_stats():
    m = np.zeros((2, 2, 5))
    m[0, 1, 3] = 0.5            # one patch holds all patch mass
    m[1] = 0.08                 # uniform, total 0.8
    s = A.rollout_stats(m)
    assert s["patch_mass"] == pytest.approx([0.5, 0.8])
    assert s["peak"][0] == [1, 3]
    assert s["peak_share"] == pytest.approx([1.0, 0.1])
    assert s["normalized_entropy"] == pytest.approx([0.0, 1.0])
    assert s["top10_share"] == pytest.approx([1.0, 0.1])


# -- heatmaps ---------------------------------------------------------------------------------------------------------
def test_token_attention_and_grid_pick_the_right_entries():
    b, h, prefix, grid = 2, 3, 2, (2, 3)
    t = prefix + 6
    attn = np.zeros((b, h, t, t))
    code = np.arange(b * h * 6).reshape(b, h, 6).astype(float)
    attn[:, :, 0, prefix:] = code            # class token row
    attn[:, :, 1, prefix:] = -code           # distillation token row
    blocks = {"transformer_block_0_att": attn * 0, "transformer_block_1_att": attn}
    m = A.token_attention(blocks, num_prefix_tokens=prefix, grid_size=grid)
    np.testing.assert_array_equal(m, code.reshape(b, h, 2, 3))
    np.testing.assert_array_equal(A.token_attention(blocks, num_prefix_tokens=prefix, grid_size=grid,
                                                    token="dist"), -code.reshape(b, h, 2, 3))
    np.testing.assert_array_equal(A.token_attention(attn, num_prefix_tokens=prefix, grid_size=grid), m)
    g = A.attention_grid(blocks, num_prefix_tokens=prefix, grid_size=grid)
    assert g.shape == (b, 2, h, 2, 3)
    np.testing.assert_array_equal(g[:, 1], m)
    np.testing.assert_array_equal(g[:, 0], 0)


def test_resize_maps_known_answers():
    import cv2

    m = np.random.RandomState(0).rand(2, 3, 4, 5)
    np.testing.assert_allclose(A.resize_maps(np.full((3, 4), 0.25), (48, 64)), 0.25)
    np.testing.assert_array_equal(A.resize_maps(m, (8, 15), method="nearest"),
                                  m.repeat(2, axis=-2).repeat(3, axis=-1))
    ref = cv2.resize(m[1, 2].astype(np.float64), (37, 29), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(A.resize_maps(m, (29, 37))[1, 2], ref, atol=1e-6)
    assert A.resize_maps(m, (29, 37)).shape == (2, 3, 29, 37)


def test_attention_mass_mask_hand_built():
    m = np.array([[0.5, 0.3], [0.2, 0.0]])
    np.testing.assert_array_equal(A.attention_mass_mask(m, 0.6), [[True, True], [False, False]])
    np.testing.assert_array_equal(A.attention_mass_mask(m, 0.5), [[True, False], [False, False]])
    np.testing.assert_array_equal(A.attention_mass_mask(m, 1.0), [[True, True], [True, False]])
    stacked = A.attention_mass_mask(np.stack([m, m[::-1]])[None], 0.6)
    assert stacked.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(stacked[0, 1], [[False, False], [True, True]])


def test_overlay_apply_mask_and_display():
    img = np.full((16, 24, 3), 200, np.uint8)
    heat = np.zeros((2, 3))
    heat[1, 2] = 1.0
    out = A.overlay(img, heat, alpha=0.5)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out[0, 0], out[-1, -1])
    masked = A.apply_mask(img, heat)
    assert masked[-1, -1].tolist() == [200, 200, 200] and masked[0, 0].tolist() == [0, 0, 0]
    x = (img[None] / 255.0 - 0.5) / 0.5
    np.testing.assert_array_equal(A.display_images(x, (0.5,) * 3, (0.5,) * 3)[0], img)
    with pytest.raises(ValueError):
        A.overlay(img.astype(np.float32), heat)


# -- bad attention inputs -------------------------------------------------------------------------------------------
def attention_dict(shapes, seed=0):
    """{"transformer_block_{i}_att": softmax attention (B, heads, T, T)} for each (B, heads, T) in shapes."""
    return {f"transformer_block_{i}_att": random_attention(b, h, t, seed=seed + i)
            for i, (b, h, t) in enumerate(shapes)}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_attention_names_the_block(bad):
    blocks = attention_dict([(2, 3, 10)] * 5)
    blocks["transformer_block_3_att"][1, 2, 4, 7] = bad
    message = "transformer_block_3_att contains NaN/Inf"
    calls = [
        lambda a: A.mean_attention_distance(a, patch_size=16, num_prefix_tokens=1),
        lambda a: A.rollout_matrix(a),
        lambda a: A.attention_rollout(a, num_prefix_tokens=1),
        lambda a: A.attention_grid(a, num_prefix_tokens=1),
        lambda a: A.token_attention(a, num_prefix_tokens=1, block=3),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call(blocks)
    # Lists and stacks name the block by position; blocks that are not used are not checked.
    with pytest.raises(ValueError, match="block 3 contains NaN/Inf"):
        A.mean_attention_distance(list(blocks.values()), patch_size=16, num_prefix_tokens=1)
    with pytest.raises(ValueError, match=r"block 3 contains NaN/Inf \(1 of 600 values\)"):
        A.attention_rollout(np.stack(list(blocks.values()), 1), num_prefix_tokens=1)
    assert np.isfinite(A.token_attention(blocks, num_prefix_tokens=1, block=4)).all()
    assert np.isfinite(A.attention_rollout(blocks, num_prefix_tokens=1, start_block=4)).all()


def test_blocks_that_disagree_in_shape_name_both_blocks():
    tokens = attention_dict([(2, 3, 10), (2, 3, 10), (2, 3, 17)])
    for call in (lambda a: A.mean_attention_distance(a, patch_size=16, num_prefix_tokens=1),
                 lambda a: A.rollout_matrix(a), lambda a: A.attention_rollout(a, num_prefix_tokens=1),
                 lambda a: A.attention_grid(a, num_prefix_tokens=1)):
        with pytest.raises(ValueError, match=r"differ in tokens: transformer_block_0_att is \(2, 3, 10, 10\) but "
                                             r"transformer_block_2_att is \(2, 3, 17, 17\)"):
            call(tokens)
    batch = attention_dict([(2, 3, 10), (1, 3, 10)])  # a batch of 1 would broadcast silently in the product
    for call in (lambda a: A.mean_attention_distance(a, patch_size=16, num_prefix_tokens=1),
                 lambda a: A.rollout_matrix(a), lambda a: A.attention_grid(a, num_prefix_tokens=1)):
        with pytest.raises(ValueError, match="differ in batch size: transformer_block_0_att .* transformer_block_1"):
            call(batch)
    heads = attention_dict([(2, 3, 10), (2, 4, 10)])
    with pytest.raises(ValueError, match="differ in heads"):
        A.mean_attention_distance(heads, patch_size=16, num_prefix_tokens=1)
    with pytest.raises(ValueError, match="differ in heads"):
        A.attention_grid(heads, num_prefix_tokens=1)
    # Rollout fuses heads per block, so blocks with different head counts are fine there.
    np.testing.assert_allclose(A.rollout_matrix(heads).sum(-1), 1.0)
    with pytest.raises(ValueError, match=r"block 1: each block's attention must be \(B, heads, T, T\)"):
        A.rollout_matrix([random_attention(1, 2, 5), np.zeros((1, 2, 5, 4))])


def test_rollout_refuses_logits_and_maps_refuse_non_finite_values():
    logits = np.random.RandomState(0).randn(1, 2, 5, 5)
    with pytest.raises(ValueError, match="block 0 has negative entries .* not logits"):
        A.rollout_matrix([logits])
    maps = np.random.RandomState(1).rand(2, 3, 4)
    maps[1, 2, 3] = np.nan
    for call in (A.normalize_map, A.attention_mass_mask, lambda m: A.resize_maps(m, (8, 8)),
                 lambda m: A.overlay(np.zeros((8, 8, 3), np.uint8), m[1]), A.rollout_stats):
        with pytest.raises(ValueError, match="contains NaN/Inf"):
            call(maps)


# -- embeddings -----------------------------------------------------------------------------------------------------
def test_patch_filters_minmax_per_filter():
    k = np.random.RandomState(0).randn(4, 4, 3, 10)
    f = A.patch_filters(k, 6)
    assert f.shape == (6, 4, 4, 3)
    np.testing.assert_allclose(f.reshape(6, -1).min(1), 0)
    np.testing.assert_allclose(f.reshape(6, -1).max(1), 1)
    raw = k[..., 2]
    np.testing.assert_allclose(f[2], (raw - raw.min()) / (raw.max() - raw.min()))


def test_filter_pca_finds_the_one_direction():
    rng = np.random.RandomState(1)
    direction = rng.randn(4, 4, 3)
    k = direction[..., None] * rng.randn(20)  # every filter is a multiple of one image
    comps, ratio = A.patch_filter_pca(k, 3)
    assert comps.shape == (3, 4, 4, 3) and ratio.shape == (3,)
    assert ratio[0] == pytest.approx(1.0)
    first = comps[0].ravel() - comps[0].mean()
    target = direction.ravel() - direction.mean()
    assert abs(np.corrcoef(first, target)[0, 1]) == pytest.approx(1.0)


def test_position_embedding_similarity_and_cosine():
    grid, prefix = (2, 3), 2
    e = np.concatenate([np.ones((prefix, 8)), np.eye(6, 8) * 3.0])[None]
    sim = A.position_embedding_similarity(e, num_prefix_tokens=prefix)
    np.testing.assert_allclose(sim, 9 * np.eye(6))
    cos = A.position_embedding_cosine(e, num_prefix_tokens=prefix, grid_size=grid)
    assert cos.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(cos.reshape(6, 6), np.eye(6))
    with pytest.raises(ValueError, match="square"):
        A.position_embedding_cosine(e, num_prefix_tokens=prefix)


# -- predictions ----------------------------------------------------------------------------------------------------
def test_top_k_with_imagenet_names():
    names = A.imagenet_class_names()
    assert len(names) == 1000 and names[0] == "tench, Tinca tinca" and names[281] == "tabby, tabby cat"
    logits = np.zeros((2, 1000))
    logits[0, 281], logits[1, 999] = 10.0, 10.0
    top = A.top_k(logits, 5)
    assert top[0][0]["label"] == "tabby, tabby cat" and top[1][0]["index"] == 999
    assert len(top[0]) == 5 and sum(t["probability"] for t in top[0]) <= 1.0
    assert A.top_k(np.array([[0.0, 3.0]]), 1)[0][0]["label"] == "class 1"
    assert softmax(np.array([0.0, 3.0]))[1] == pytest.approx(A.top_k(np.array([[0.0, 3.0]]), 1)[0][0]["probability"])


def test_docstring_examples():
    import doctest

    from vit_tf.analysis import distance

    result = doctest.testmod(distance, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0
