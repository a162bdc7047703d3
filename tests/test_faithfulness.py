"""vit_tf.analysis.faithfulness: AUC arithmetic on hand-computed curves; an oracle map on a hand-built model whose
logits depend on one patch scores the analytically known values (and its reverse the opposite ones) for the
perturbation test, insertion/deletion and SaCo, by pixels and by tokens; the token-subset forward against timm;
orders, ROAD's imputation, streaming, batches, a bfloat16 model."""

from __future__ import annotations

import numpy as np
import pytest

import vit_tf
from helpers import timm_reference
from test_explain import PATCH, TINY, one_patch_model
from vit_tf.analysis import faithfulness as F


# -- AUC arithmetic ---------------------------------------------------------------------------------------------------
def test_perturbation_auc_on_hand_computed_curves():
    x = (0.0,) + F.FRACTIONS
    assert F.perturbation_auc([100.0] * 10) == pytest.approx(90.0, abs=1e-12)  # the maximum
    assert F.perturbation_auc([0.0] * 10) == 0.0
    assert F.perturbation_auc([100.0] + [0.0] * 9) == pytest.approx(5.0, abs=1e-12)  # one half-step triangle
    # 80, 70, ..., 0, 0: 0.1 * (80 / 2 + 70 + 60 + 50 + 40 + 30 + 20 + 10 + 0 + 0 / 2) = 32
    assert F.perturbation_auc([80, 70, 60, 50, 40, 30, 20, 10, 0, 0]) == pytest.approx(32.0, abs=1e-12)
    assert F.trapezoid([1.0, 3.0, 3.0], [0.0, 0.5, 2.0]) == pytest.approx(0.5 * 2 + 1.5 * 3, abs=1e-12)
    assert F.perturbation_auc(np.linspace(100, 10, 10), x) == pytest.approx(0.9 * 55, abs=1e-9)


def test_rise_auc_on_hand_computed_curves():
    assert F.rise_auc([1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert F.rise_auc([1.0, 1.0, 1.0, 1.0]) == pytest.approx(1.0)
    assert F.rise_auc([0.0, 1.0, 1.0, 1.0, 1.0]) == pytest.approx(3.5 / 4)
    np.testing.assert_allclose(F.rise_auc([[1.0, 0.0], [0.2, 0.4]]), [0.5, 0.3])
    with pytest.raises(ValueError):
        F.rise_auc([1.0])


def test_saco_coefficient_by_hand():
    # Saliences fall and so do the drops: every pair agrees -> 1; drops reversed -> -1.
    s = np.array([[4.0, 3.0, 1.0]])
    assert F.saco_coefficient(s, [[0.3, 0.2, 0.1]])[0] == pytest.approx(1.0)
    assert F.saco_coefficient(s, [[0.1, 0.2, 0.3]])[0] == pytest.approx(-1.0)
    # One pair (1, 2) disagrees: F = (-(4 - 3) + (4 - 1) + (3 - 1)) / (1 + 3 + 2) = 4 / 6.
    assert F.saco_coefficient(s, [[0.2, 0.3, 0.1]])[0] == pytest.approx(4 / 6)
    assert np.isnan(F.saco_coefficient([[1.0, 1.0]], [[0.1, 0.2]])[0])


# -- an oracle on a model whose prediction depends on one patch ------------------------------------------------------
@pytest.fixture(scope="module")
def oracle():
    """(model, images whose prediction flips when patch PATCH is zero-filled and when its token is dropped, their
    labels, the oracle map (1 at PATCH, 0 elsewhere)). With its token dropped the class token attends to itself."""
    model = one_patch_model(head_marker=(0.0,) * 5, content_scale=3.0, class_key=0.5)
    pool = np.random.RandomState(2).randn(64, 32, 32, 3).astype(np.float32)
    labels = F.forward_logits(model, pool).argmax(-1)
    zeroed = pool.copy()
    zeroed[:, 8:16, 8:16] = 0.0
    dropped = F.forward_token_subset(model, pool, np.setdiff1d(np.arange(16), [PATCH])).argmax(-1)
    flips = np.flatnonzero((F.forward_logits(model, zeroed).argmax(-1) != labels) & (dropped != labels))[:5]
    assert len(flips) == 5
    maps = np.zeros((5, 4, 4))
    maps[:, 1, 1] = 1.0
    return model, pool[flips], labels[flips], maps


def test_oracle_model_reads_only_its_patch(oracle):
    model, images, labels, _ = oracle
    noise = np.random.RandomState(9).randn(*images.shape).astype(np.float32)
    noise[:, 8:16, 8:16] = images[:, 8:16, 8:16]
    np.testing.assert_array_equal(F.forward_logits(model, noise), F.forward_logits(model, images))
    # A shorter sequence changes how TensorFlow's kernels vectorise the rows, so the logits agree to float32
    # rounding, not bit for bit (up to 1.2e-7 seen); dropping the patch instead changes them by far more.
    np.testing.assert_allclose(F.forward_token_subset(model, images, [PATCH]), F.forward_logits(model, images),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("removal", F.REMOVALS)
def test_perturbation_oracle_and_reverse(oracle, removal):
    """Oracle, positive: the patch goes in the first step (10% of the pixels > one patch; int(0.1 * 16) = 1 token),
    every prediction flips: accuracy 100, 0, ..., 0 -> AUC 5. Oracle, negative: the patch comes last and is never
    reached (90% = 921 < 960 pixels; 14 < 15 tokens): accuracy 100 throughout -> AUC 90. The reversed map swaps
    them."""
    model, images, labels, maps = oracle
    expected = {("oracle", "positive"): 5.0, ("oracle", "negative"): 90.0, ("reversed", "positive"): 90.0,
                ("reversed", "negative"): 5.0}
    for name, m in (("oracle", maps), ("reversed", 1.0 - maps)):
        for mode in ("positive", "negative"):
            r = F.perturbation_curves(model, images, m, labels, mode=mode, removal=removal)
            assert r["correct"].shape == (5, 10) and r["fractions"][0] == 0.0
            accuracy = 100.0 * r["correct"].mean(0)
            assert F.perturbation_auc(accuracy, r["fractions"]) == pytest.approx(expected[name, mode], abs=1e-9)


def test_road_oracle(oracle):
    model, images, labels, maps = oracle
    morf = F.road(model, images, maps, labels, fractions=(0.1, 0.5))
    lerf = F.road(model, images, maps, labels, mode="negative", fractions=(0.1, 0.5))
    assert morf["correct"][:, 0].all() and lerf["correct"].all()
    # The imputed patch is the smooth fill of its neighbours, not its content: most predictions change.
    assert morf["correct"][:, 1:].mean() < 0.5


@pytest.mark.parametrize("removal", F.REMOVALS)
def test_insertion_deletion_oracle_and_reverse(oracle, removal):
    """Step = one patch (16 steps). Deletion, oracle: p_full then 16 x p_without ->
    AUC = (p_full / 2 + 15.5 p_without) / 16; reversed: the patch goes last -> (15.5 p_full + p_without / 2) / 16.
    Insertion from the blurred image (or from the prefix tokens alone): p_start, then p_full once the patch is
    back."""
    model, images, labels, maps = oracle
    p = lambda logits: F.softmax(logits)[np.arange(5), labels]  # noqa: E731
    full = p(F.forward_logits(model, images))
    if removal == "pixels":
        zeroed = images.copy()
        zeroed[:, 8:16, 8:16] = 0.0
        without = p(F.forward_logits(model, zeroed))
        start = p(F.forward_logits(model, F.gaussian_blur(images)))
    else:
        without = p(F.forward_token_subset(model, images, np.setdiff1d(np.arange(16), [PATCH])))
        start = p(F.forward_token_subset(model, images, np.zeros((5, 0), np.int64)))
    deletion = F.insertion_deletion(model, images, maps, labels, removal=removal)
    assert deletion["scores"].shape == (5, 17)
    np.testing.assert_allclose(deletion["auc"], (full / 2 + 15.5 * without) / 16, rtol=1e-6)
    reverse = F.insertion_deletion(model, images, 1.0 - maps, labels, removal=removal)
    np.testing.assert_allclose(reverse["auc"], (15.5 * full + without / 2) / 16, rtol=1e-6)
    insertion = F.insertion_deletion(model, images, maps, labels, mode="insertion", removal=removal)
    np.testing.assert_allclose(insertion["auc"], (start / 2 + 15.5 * full) / 16, rtol=1e-6)
    reverse = F.insertion_deletion(model, images, 1.0 - maps, labels, mode="insertion", removal=removal)
    np.testing.assert_allclose(reverse["auc"], (15.5 * start + full / 2) / 16, rtol=1e-6)


@pytest.mark.parametrize("removal", F.REMOVALS)
def test_saco_oracle_and_reverse(oracle, removal):
    """4 groups of 4 patches: only the patch's group changes the prediction. Oracle: it is the most salient group
    and the only one with a drop -> 1; reversed: the least salient -> -1."""
    model, images, labels, maps = oracle
    result = F.saco(model, images, maps, labels, groups=4, removal=removal)
    assert np.all(result["drops"][:, 0] > 0) and np.all(np.abs(result["drops"][:, 1:]) < 1e-6)
    np.testing.assert_allclose(result["salience"], np.tile([1.0, 0.0, 0.0, 0.0], (5, 1)))
    np.testing.assert_allclose(result["saco"], 1.0)
    np.testing.assert_allclose(F.saco(model, images, 1.0 - maps, labels, groups=4, removal=removal)["saco"], -1.0)


# -- the token-subset forward -----------------------------------------------------------------------------------------
def test_token_subset_forward_matches_timm():
    import torch

    arch, size = "deit_tiny_distilled_patch16_224", (32, 48)
    net, state = timm_reference(arch, img_size=size, patch_size=8, embed_dim=48, depth=2, num_heads=3,
                                mlp_ratio=2.0, num_classes=5)
    ours = vit_tf.create_model(arch, img_size=size, **TINY)
    vit_tf.load_timm_state_dict(ours, state)
    images = np.random.RandomState(0).randn(2, *size, 3).astype(np.float32)
    keep = np.array([[0, 3, 7, 20, 23], [1, 2, 5, 11, 17]])
    with torch.no_grad():
        x = net._pos_embed(net.patch_embed(torch.from_numpy(images).permute(0, 3, 1, 2)))
        p = net.num_prefix_tokens
        kept = torch.stack([x[i, p:][torch.from_numpy(keep[i])] for i in range(2)])
        h = net.blocks(torch.cat([x[:, :p], kept], dim=1))
        ref = net.forward_head(net.norm(h)).numpy()
    got = F.forward_token_subset(ours, images, keep)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * np.abs(ref).max())
    np.testing.assert_allclose(F.forward_token_subset(ours, images, np.arange(24)), F.forward_logits(ours, images),
                               rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        F.forward_token_subset(ours, images, [24])


# -- orders, imputation, blur, streaming -------------------------------------------------------------------------------
def test_pixel_orders():
    maps = np.array([[[0.2, 0.9], [0.9, 0.1]]])  # a tie between patches 1 and 2
    order = F.pixel_order(maps, 2)
    # patch 1 (tie, lower index first), patch 2, patch 0, patch 3; each patch's pixels row-major
    patches = [[2, 3, 6, 7], [8, 9, 12, 13], [0, 1, 4, 5], [10, 11, 14, 15]]
    np.testing.assert_array_equal(order[0], np.concatenate(patches))
    low = F.pixel_order(maps, 2, most_relevant_first=False)
    np.testing.assert_array_equal(low[0], np.concatenate([patches[3], patches[2], patches[0], patches[1]]))
    from vit_tf.analysis.heatmaps import resize_maps

    bilinear = F.pixel_order(maps, 2, "bilinear")
    values = resize_maps(maps, (4, 4)).reshape(-1)
    assert np.all(np.diff(values[bilinear[0]]) <= 0)
    np.testing.assert_array_equal(F.patch_order(maps)[0], [1, 2, 0, 3])


def test_noisy_linear_imputation():
    h, w = 12, 10
    rows, cols = np.mgrid[0:h, 0:w]
    ramp = np.stack([0.3 * rows - 0.2 * cols, rows + cols, np.ones((h, w))], -1)
    missing = np.zeros((h, w), bool)
    missing[3:8, 2:7] = True  # interior: the symmetric weighted mean reproduces a linear image exactly
    out = F.noisy_linear_impute(ramp, missing, noise=0.0)
    np.testing.assert_allclose(out, ramp, atol=1e-10)
    noisy = F.noisy_linear_impute(ramp, missing, noise=0.01, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(noisy[~missing], ramp[~missing])
    assert 0.006 < np.std(noisy[missing] - ramp[missing]) < 0.014
    corner = np.zeros((h, w), bool)
    corner[:4, :4] = True  # at a border, weights renormalise over the neighbours inside the image
    filled = F.noisy_linear_impute(np.ones((h, w, 3)), corner, noise=0.0)
    np.testing.assert_allclose(filled, 1.0, atol=1e-12)


def test_blur_and_fills():
    k_sum = F.gaussian_blur(np.ones((1, 31, 31, 3)))
    np.testing.assert_allclose(k_sum[0, 10:21, 10:21], 1.0, atol=1e-12)  # interior: a normalised kernel
    assert k_sum[0, 0, 0, 0] < 0.5  # zero padding darkens the border, as RISE's conv2d(padding=klen // 2)
    recipe = vit_tf.create_model("vit_tiny_patch16_224", depth=1, img_size=32, patch_size=8).recipe
    np.testing.assert_allclose(F.black_fill(recipe) * np.asarray(recipe.std) + np.asarray(recipe.mean), 0.0)
    with pytest.raises(ValueError, match="fill"):
        F.substrate(np.zeros((1, 4, 4, 3)), "noise")


def test_curve_means_stream():
    acc = F.CurveMeans()
    data = np.random.RandomState(0).rand(10, 4)
    data[3, 1] = np.nan
    for batch in np.array_split(data, 3):
        acc.add("curve", batch)
    np.testing.assert_allclose(acc.mean("curve"), np.nanmean(data, axis=0))
    np.testing.assert_array_equal(acc.count("curve"), [10, 9, 10, 10])
    with pytest.raises(ValueError, match="shape"):
        acc.add("curve", np.zeros((2, 3)))


# -- batches and dtypes -----------------------------------------------------------------------------------------------
def test_batch_equals_single_images_and_bfloat16():
    import keras

    keras.utils.set_random_seed(0)
    model = vit_tf.create_model("deit_tiny_distilled_patch16_224", img_size=(32, 48), **TINY)
    images = np.random.RandomState(1).randn(4, 32, 48, 3).astype(np.float32)
    maps = np.random.RandomState(2).rand(4, 4, 6)
    labels = np.array([0, 1, 2, 3])
    runs = [lambda x, m, y: F.perturbation_curves(model, x, m, y, fractions=(0.2, 0.6))["probability"],
            lambda x, m, y: F.perturbation_curves(model, x, m, y, fractions=(0.3,), removal="tokens")["probability"],
            lambda x, m, y: F.road(model, x, m, y, fractions=(0.4,))["probability"],
            lambda x, m, y: F.insertion_deletion(model, x, m, y, step=128)["scores"],
            lambda x, m, y: F.saco(model, x, m, y, groups=3, removal="tokens")["saco"]]
    for run in runs:
        batch = run(images, maps, labels)
        singles = np.concatenate([run(images[i:i + 1], maps[i:i + 1], labels[i:i + 1]) for i in range(4)])
        np.testing.assert_allclose(batch, singles, rtol=1e-5, atol=1e-7)
    low = vit_tf.create_model("deit_tiny_distilled_patch16_224", img_size=(32, 48), dtype="bfloat16", **TINY)
    low.set_weights(model.get_weights())
    for removal in F.REMOVALS:
        r = F.perturbation_curves(low, images, maps, labels, fractions=(0.5,), removal=removal)
        assert np.all(np.isfinite(r["probability"]))
        np.testing.assert_array_equal(r["predicted"][:, 0], F.forward_logits(model, images).argmax(-1))


# -- fixes: RISE's blur kernel, class targets --------------------------------------------------------------------------
def test_blur_of_an_impulse_is_rises_gkern():
    """RISE's gkern(11, 5) is scipy's gaussian_filter (reflect mode) of an 11 x 11 impulse: nearly flat, centre 0.0088,
    corner 0.0077. Blurring an impulse image must give it back (conv2d with zero padding 5, as RISE's blur)."""
    from scipy.ndimage import gaussian_filter

    impulse = np.zeros((11, 11))
    impulse[5, 5] = 1.0
    gkern = gaussian_filter(impulse, 5)
    assert round(gkern[5, 5], 4) == 0.0088 and round(gkern[0, 0], 4) == 0.0077  # the published values
    image = np.zeros((1, 11, 11, 3))
    image[0, 5, 5] = 1.0
    blurred = F.gaussian_blur(image)
    for c in range(3):
        np.testing.assert_allclose(blurred[0, ..., c], gkern, rtol=0, atol=1e-12)
    # Zero padding: an impulse in a corner keeps the kernel's inner quarter, and nothing else appears.
    corner = np.zeros((1, 16, 16, 3))
    corner[0, 0, 0] = 1.0
    expected = np.zeros((16, 16))
    expected[:6, :6] = gkern[5:, 5:]
    np.testing.assert_allclose(F.gaussian_blur(corner)[0, ..., 1], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("call", [
    lambda m, x, maps, y, t: F.perturbation_curves(m, x, maps, y, targets=t),
    lambda m, x, maps, y, t: F.perturbation_curves(m, x, maps, y, targets=t, removal="tokens"),
    lambda m, x, maps, y, t: F.road(m, x, maps, y, targets=t, fractions=(0.5,)),
    lambda m, x, maps, y, t: F.insertion_deletion(m, x, maps, t, step=256),
    lambda m, x, maps, y, t: F.insertion_deletion(m, x, maps, t, mode="insertion", removal="tokens"),
    lambda m, x, maps, y, t: F.saco(m, x, maps, t, groups=4),
    lambda m, x, maps, y, t: F.saco(m, x, maps, t, groups=4, removal="tokens"),
], ids=["perturbation", "perturbation-tokens", "road", "deletion", "insertion-tokens", "saco", "saco-tokens"])
def test_class_indices_are_checked(oracle, call):
    """-1 is not the last class, and an index past the classes is not an IndexError: both are refused with a
    ValueError that names the class and the number of classes, for labels and targets."""
    model, images, labels, maps = oracle
    x, m, y = images[:2], maps[:2], labels[:2]
    for bad in (-1, 5):
        wrong = np.array([int(y[0]), bad])
        with pytest.raises(ValueError, match=rf"class {bad} \(image 1\) is out of range for a model with 5 classes"):
            call(model, x, m, y, wrong)
    with pytest.raises(ValueError, match="class -1"):
        F.perturbation_curves(model, x, m, np.array([-1, 0]))  # labels too


# -- batched steps equal the step-by-step tests --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_batch():
    """A random tiny distilled DeiT (5 classes) on 3 images of 32 x 48 (a 4 x 6 grid of 8-pixel patches), maps with
    ties (rounded), their predicted classes."""
    import keras

    keras.utils.set_random_seed(3)
    model = vit_tf.create_model("deit_tiny_distilled_patch16_224", img_size=(32, 48), **TINY)
    images = np.random.RandomState(4).randn(3, 32, 48, 3).astype(np.float32)
    maps = np.round(np.random.RandomState(5).rand(3, 4, 6), 1)
    return model, images, maps, F.forward_logits(model, images).argmax(-1)


def _same(batched, stepwise, keys):
    for key in keys:
        assert batched[key].shape == stepwise[key].shape, key
        assert float(np.max(np.abs(batched[key] - stepwise[key]))) <= 1e-6, key
    np.testing.assert_array_equal(batched["predicted"], stepwise["predicted"])


FILL_CASES = ["zero", 0.7, (0.5, -1.0, 2.0), "blur", "road"]


@pytest.mark.parametrize("fill", FILL_CASES, ids=str)
def test_batched_perturbation_and_road_equal_step_by_step(tiny_batch, fill):
    """Every (image, fraction) variant stacked and run in chunks (batch_size 7: ragged chunks that mix images and
    steps) gives the probabilities of one call per step within 1e-6, and the same predicted classes; both modes,
    both upsamplings; tokens once (they take no fill)."""
    import faithfulness_reference as R

    model, images, maps, labels = tiny_batch
    targets = (labels + 1) % 5
    fractions = (0.1, 0.45, 0.9) if fill == "road" else F.FRACTIONS
    cases = [dict(mode=mode, upsample=up) for mode in ("positive", "negative") for up in ("nearest", "bilinear")]
    if fill == "zero":
        cases += [dict(mode=mode, removal="tokens") for mode in ("positive", "negative")]
    for case in cases:
        kwargs = dict(targets=targets, fill=fill, fractions=fractions, seed=2, **case)
        batched = F.perturbation_curves(model, images, maps, labels, batch_size=7, **kwargs)
        assert batched["forward_images"] == 3 * (len(fractions) + 1)
        _same(batched, R.perturbation_curves(model, images, maps, labels, **kwargs), ["probability"])


@pytest.mark.parametrize("fill", [f for f in FILL_CASES if f != "road"], ids=str)
def test_batched_insertion_deletion_equal_step_by_step(tiny_batch, fill):
    import faithfulness_reference as R

    model, images, maps, labels = tiny_batch
    cases = [dict(mode=mode, upsample=up, substrate=fill, step=100) for mode in ("deletion", "insertion")
             for up in ("nearest", "bilinear")]
    if fill == "zero":
        cases += [dict(mode=mode, removal="tokens", step=step) for mode in ("deletion", "insertion") for step in (1, 5)]
    for case in cases:
        batched = F.insertion_deletion(model, images, maps, labels, batch_size=16, **case)
        n = batched["scores"].shape[1]
        assert n == (16 if case.get("removal") != "tokens" else -(-24 // case["step"])) + 1
        assert batched["forward_images"] == 3 * n
        reference = R.insertion_deletion(model, images, maps, labels, **case)
        _same({**batched, "predicted": reference["predicted"]}, reference, ["scores"])
        np.testing.assert_allclose(batched["auc"], F.rise_auc(reference["scores"]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("fill", FILL_CASES, ids=str)
def test_batched_saco_equals_step_by_step(tiny_batch, fill):
    import faithfulness_reference as R

    model, images, maps, labels = tiny_batch
    removals = ("pixels", "tokens") if fill == "zero" else ("pixels",)
    for removal in removals:
        batched = F.saco(model, images, maps, labels, groups=5, fill=fill, removal=removal, batch_size=4)
        assert batched["forward_images"] == 3 * 6
        reference = R.saco(model, images, maps, labels, groups=5, fill=fill, removal=removal)
        assert float(np.max(np.abs(batched["drops"] - reference["drops"]))) <= 1e-6


def test_steps_run_in_chunks_of_batch_size(tiny_batch, monkeypatch):
    """Deletion of 3 images in 16 steps: 51 variants run as 4 calls of at most 16 images, not one call per step;
    tokens: each step is one call (one sequence length), SaCo's groups of two sizes two calls."""
    from vit_tf.analysis.faithfulness import forwards

    calls = []
    real = forwards.compiled

    def counting(model, name, build):
        fn = real(model, name, build)

        def run(*args):
            calls.append(int(args[-1].shape[0]))
            return fn(*args)
        return run

    monkeypatch.setattr(forwards, "compiled", counting)
    model, images, maps, labels = tiny_batch
    assert F.insertion_deletion(model, images, maps, labels, step=96, batch_size=16)["forward_images"] == 51
    assert calls == [16, 16, 16, 3]
    calls.clear()
    F.insertion_deletion(model, images, maps, labels, step=8, removal="tokens")
    assert calls == [3, 3, 3, 3]  # 24 patches in steps of 8: 0, 8, 16, 24 removed
    calls.clear()
    F.saco(model, images, maps, labels, groups=5, removal="tokens")
    assert sorted(calls) == [3, 3, 3 * 4]  # all kept (24), one group of 4 (20 kept), four of 5 (19 kept)
    with pytest.raises(ValueError, match="batch_size"):
        F.saco(model, images, maps, labels, batch_size=0)
