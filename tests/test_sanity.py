"""Sanity checks (vit_tf.analysis.sanity) and the model-free baselines (vit_tf.analysis.baselines): the measures on
known cases (Spearman against scipy, SSIM against scikit-image), the re-initialisation (seeded, the model's own
initialisers, every variable in one group), the cascade and the independent and data randomisations on a tiny model
with known answers, the baselines' known answers, and the cascade figure."""

import random

import keras
import numpy as np
import pytest
from scipy.stats import spearmanr

import vit_tf
from vit_tf.analysis import baselines as B
from vit_tf.analysis import sanity as S


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(3)
    model = vit_tf.create_model("vit_tiny_patch16_224", depth=2, embed_dim=24, num_heads=2, mlp_dim=48, img_size=32,
                                patch_size=8, num_classes=5)
    images = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    return model, images


def _weights(model):
    return [w.copy() for w in model.get_weights()]


# -- measures -------------------------------------------------------------------------------------------------------
def test_spearman_known_cases_and_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 5, 6))
    b = np.round(rng.normal(size=(4, 5, 6)), 1)  # ties: scipy's average ranks
    np.testing.assert_allclose(S.spearman(a, a), 1.0, atol=1e-12)
    np.testing.assert_allclose(S.spearman(a, -a), -1.0, atol=1e-12)
    np.testing.assert_allclose(S.spearman(a, np.exp(a)), 1.0, atol=1e-12)  # ranks only
    expected = [spearmanr(x.ravel(), y.ravel()).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(S.spearman(a, b), expected, atol=1e-12)
    constant = np.stack([a[0], np.zeros((5, 6))])
    out = S.spearman(constant, np.stack([a[0], a[1]]))
    assert out[0] == pytest.approx(1.0) and np.isnan(out[1])  # a constant map has no ranks
    with pytest.raises(ValueError, match="one shape"):
        S.spearman(a, a[:, :4])


def test_ssim_matches_scikit_image_and_known_cases():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(2)
    a, b = rng.random((2, 16, 16)), rng.random((2, 16, 16))
    full = S.ssim_image(a, b)
    for i in range(2):
        mean, image = structural_similarity(a[i], b[i], gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=1.0, full=True)
        np.testing.assert_allclose(full[i], image, atol=1e-12)
        np.testing.assert_allclose(image[5:-5, 5:-5].mean(), mean, atol=1e-12)  # scikit-image crops the window
    # ssim(): the maps are min-max scaled first, so a map in [0, 1] with min 0 and max 1 goes in unchanged
    a[:, 0, 0], a[:, -1, -1] = 0.0, 1.0
    b[:, 0, 0], b[:, -1, -1] = 0.0, 1.0
    np.testing.assert_allclose(S.ssim(a, b), S.ssim_image(a, b).mean(axis=(1, 2)), atol=1e-12)
    np.testing.assert_allclose(S.ssim(a, b, crop=True), S.ssim_image(a, b)[:, 5:-5, 5:-5].mean(axis=(1, 2)),
                               atol=1e-12)
    np.testing.assert_allclose(S.ssim(a, a), 1.0, atol=1e-12)
    np.testing.assert_allclose(S.ssim(a, 3.0 * a - 7.0), 1.0, atol=1e-12)  # affine changes: the same pattern
    assert np.all(S.ssim(a, 1.0 - a) < 0)  # the inverted pattern: negative structure term
    assert np.all(S.ssim(a, b) < 0.5)
    with pytest.raises(ValueError, match="crop=True needs maps larger than 11"):
        S.ssim(a[:, :8, :8], b[:, :8, :8], crop=True)


def test_compare_maps_of_identical_maps():
    m = np.random.default_rng(3).normal(size=(2, 4, 4))
    scores = S.compare_maps(m, m.copy())
    for name in S.MEASURES:
        np.testing.assert_allclose(scores[name], 1.0, atol=1e-12)
    flipped = S.compare_maps(m, -m)
    np.testing.assert_allclose(flipped["spearman"], -1.0, atol=1e-12)
    np.testing.assert_allclose(flipped["spearman_abs"], 1.0, atol=1e-12)  # |map| is blind to the sign


# -- re-initialisation ------------------------------------------------------------------------------------------------
def test_groups_cover_every_variable_once_top_down(tiny):
    model, _ = tiny
    groups = S.randomisation_groups(model)
    assert [name for name, _ in groups] == ["head", "block_1", "block_0", "embeddings"]
    ids = [id(v) for _, vs in groups for v in vs]
    assert len(ids) == len(set(ids)) and set(ids) == {id(v) for v in model.weights}
    head = {v.path.split("/", 1)[1] for v in groups[0][1]}
    assert head == {"norm/gamma", "norm/beta", "head/kernel", "head/bias"}
    assert {v.path.split("/", 1)[1] for v in groups[-1][1]} == {"cls_token", "pos_embed", "patch_embed/proj/kernel",
                                                                 "patch_embed/proj/bias"}


def test_reinitialised_model_is_seeded_own_initialisers_and_leaves_random_state(tiny):
    model, _ = tiny
    state = random.getstate()
    a, b, c = (S.reinitialised_model(model, s) for s in (0, 0, 1))
    assert random.getstate() == state
    assert a.get_config() == model.get_config()
    wa, wb, wc = a.get_weights(), b.get_weights(), c.get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(wa, wb))
    assert not np.array_equal(a.head.kernel.numpy(), c.head.kernel.numpy())
    # the model's own initialisers: zero biases, LayerNorm (1, 0), the head's Glorot-uniform bound
    assert np.all(a.head.bias.numpy() == 0) and np.all(a.norm.gamma.numpy() == 1) and np.all(a.norm.beta.numpy() == 0)
    fan_in, fan_out = a.head.kernel.shape
    assert np.abs(a.head.kernel.numpy()).max() <= np.sqrt(6 / (fan_in + fan_out))
    assert np.abs(a.pos_embed.numpy()).max() <= 2 * 0.02 + 1e-7  # truncated normal(0.02)
    # not the weights of a model built after keras.utils.set_random_seed(0), how the tiny fixtures are made
    keras.utils.set_random_seed(0)
    seeded = vit_tf.VisionTransformer.from_config(model.get_config())
    assert not np.array_equal(seeded.head.kernel.numpy(), a.head.kernel.numpy())


# -- the checks -----------------------------------------------------------------------------------------------------
def ignores_the_weights(model, images, targets):
    """A map of the input alone (the red channel pooled to 8 x 8 patches)."""
    return np.asarray(images)[..., 0].reshape(len(images), 4, 8, 4, 8).mean(axis=(2, 4))


@pytest.fixture(scope="module")
def probe(tiny):
    """One more copy of the tiny model, loaded with whatever weights a test needs (one traced pass for all)."""
    model, _ = tiny
    copy = vit_tf.VisionTransformer.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


@pytest.fixture(scope="module")
def cascade(tiny):
    model, images = tiny
    before = _weights(model)
    results = vit_tf.analysis.sanity_checks(model, images, ["gae", "rollout", ignores_the_weights],
                                            target=[0, 4, 2], seed=5)
    return results, before


def _load(probe, model, fresh, groups):
    """`probe` takes `model`'s weights, with the variable groups `groups` (indices of randomisation_groups) from
    `fresh`."""
    probe.set_weights(model.get_weights())
    new = S.randomisation_groups(fresh)
    for k, (_, variables) in enumerate(S.randomisation_groups(probe)):
        if k in groups:
            for v, w in zip(variables, new[k][1]):
                v.assign(w.numpy())
    return probe


def test_cascading_steps_are_the_randomised_models_maps(tiny, probe, cascade):
    model, images = tiny
    results, before = cascade
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the caller's model untouched
    gae, rollout, fixed = results["gae"], results["rollout"], results["ignores_the_weights"]
    assert gae.steps == ("head", "block_1", "block_0", "embeddings") and gae.mode == "cascading"
    assert gae.spearman.shape == (4, 3) and gae.randomised.shape == (4, 3, 4, 4) and gae.targets.tolist() == [0, 4, 2]
    fresh = S.reinitialised_model(model, 5)
    np.testing.assert_allclose(gae.original, vit_tf.explain(_load(probe, model, fresh, ()), images, "gae",
                                                            target=[0, 4, 2]), atol=1e-6)
    for k in (0, 1, 3):  # step k: groups 0..k from the fresh model, the rest trained
        np.testing.assert_allclose(gae.randomised[k], vit_tf.explain(_load(probe, model, fresh, range(k + 1)),
                                                                     images, "gae", target=[0, 4, 2]), atol=1e-6)
    # the head does not touch the attention: rollout is unchanged by the first step, changed by the last
    np.testing.assert_allclose(rollout.spearman[0], 1.0, atol=1e-9)
    np.testing.assert_allclose(rollout.ssim[0], 1.0, atol=1e-9)
    assert np.all(rollout.spearman[-1] < 0.9) and np.all(np.abs(gae.spearman[-1]) < 0.9)
    for name in S.MEASURES:  # a map that ignores the weights survives every step
        np.testing.assert_allclose(getattr(fixed, name), 1.0, atol=1e-12)
    np.testing.assert_allclose(gae.means()["spearman"], gae.spearman.mean(axis=1), atol=1e-12)


def test_independent_and_data_randomisation(tiny, probe):
    model, images = tiny
    checker = S.SanityChecker(model, ["gae", "rollout"], seed=5, shuffled_model=probe)
    independent = checker(images, None, "independent")
    top1 = np.argmax(np.asarray(model(images)[0]), axis=-1)
    assert independent["gae"].targets.tolist() == top1.tolist()  # None: the trained model's top-1, at every step
    fresh = S.reinitialised_model(model, 5)
    np.testing.assert_allclose(independent["gae"].randomised[2],  # block_0 alone
                               vit_tf.explain(_load(probe, model, fresh, [2]), images, "gae", target=top1), atol=1e-6)
    np.testing.assert_allclose(independent["rollout"].spearman[0], 1.0, atol=1e-9)  # head alone
    # data randomisation: another head, the rest the model's (the "shuffled" model is read when first needed)
    probe.set_weights(model.get_weights())
    probe.head.kernel.assign(np.random.default_rng(4).normal(size=probe.head.kernel.shape))
    data = checker(images, 1, "data")
    assert data["gae"].steps == ("shuffled_labels",) and data["gae"].mode == "data"
    np.testing.assert_allclose(data["gae"].randomised[0], vit_tf.explain(probe, images, "gae", target=1), atol=1e-6)
    assert np.all(data["gae"].spearman[0] < 0.99)
    np.testing.assert_allclose(data["rollout"].spearman[0], 1.0, atol=1e-9)  # rollout never reads the head


def test_errors_are_named(tiny):
    model, images = tiny
    with pytest.raises(ValueError, match="mode must be one of"):
        S.sanity_checks(model, images, "gae", mode="layerwise")
    with pytest.raises(ValueError, match="needs shuffled_model"):
        S.sanity_checks(model, images, "gae", mode="data")
    with pytest.raises(ValueError, match="unknown method 'gradcam'"):
        S.sanity_checks(model, images, "gradcam")
    other = vit_tf.create_model("vit_tiny_patch16_224", depth=2, embed_dim=24, num_heads=2, mlp_dim=48, img_size=32,
                                patch_size=8, num_classes=3)
    with pytest.raises(ValueError, match="shuffled_model must have the model's configuration"):
        S.SanityChecker(model, "gae", shuffled_model=other)
    with pytest.raises(ValueError, match="target 7 is out of range for 5 classes"):
        S.sanity_checks(model, images, "gae", target=7)


# -- baselines ------------------------------------------------------------------------------------------------------
def test_sobel_lights_the_patches_on_a_vertical_edge():
    image = np.zeros((2, 32, 48, 3))
    image[:, :, 20:] = 1.0  # the edge between columns 19 and 20, inside patch column 2 (pixels 16-23)
    maps = B.sobel_map(image, 8)
    assert maps.shape == (2, 4, 6)
    assert np.all(maps[:, :, 2] > 0) and np.all(np.delete(maps, 2, axis=2) == 0)
    np.testing.assert_allclose(maps[:, :, 2], maps[0, 0, 2])  # every row of the edge alike
    on_border = np.zeros((1, 32, 48, 3))
    on_border[:, :, 16:] = 1.0  # an edge on the patch border lights the patches on both sides
    m = B.sobel_map(on_border, 8)
    assert np.all(m[0, :, 1] > 0) and np.all(m[0, :, 2] > 0) and np.all(np.delete(m[0], [1, 2], axis=1) == 0)
    np.testing.assert_allclose(B.sobel_map(np.ones((1, 16, 16, 3)) * 5.0, 8), 0.0)  # flat: no edge, not the border


def test_random_baseline_is_seeded_and_reproducible():
    images = np.zeros((3, 32, 32, 3))
    a, b, c = B.random_map(images, 8, seed=0), B.random_map(images, 8, seed=0), B.random_map(images, 8, seed=1)
    assert a.shape == (3, 4, 4) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all((a >= 0) & (a < 1))
    np.testing.assert_array_equal(B.random_map(images[:1], 8, seed=0), a[:1])  # a prefix of the batch: same maps
    with pytest.raises(ValueError, match="not a multiple of the patch size 7"):
        B.random_map(images, 7)
    with pytest.raises(ValueError, match="unknown baseline"):
        B.map_function("canny")


# -- figure -----------------------------------------------------------------------------------------------------------
def test_cascade_figure(cascade, tmp_path):
    from PIL import Image

    from vit_tf import plotting

    results, _ = cascade
    shown = np.zeros((32, 32, 3), np.uint8)
    gae = results["gae"]
    fig = plotting.sanity_cascade_figure(shown, {m: r.original[0] for m, r in results.items()},
                                         {m: r.randomised[:, 0] for m, r in results.items()}, gae.steps,
                                         {m: r.means() for m, r in results.items()}, title="tiny", box=(2, 2, 20, 20))
    assert len(fig.axes) >= 3 * 5 + 3  # the maps, the three curve panels (and the colorbar)
    path = plotting.save_figure(fig, tmp_path / "cascade.png", dpi=40)
    with Image.open(path) as im:
        assert im.size == (round(fig.get_figwidth() * 40), round(fig.get_figheight() * 40))
    with pytest.raises(ValueError, match="2 randomised maps for 4 steps"):
        plotting.sanity_cascade_figure(shown, {"gae": gae.original[0]}, {"gae": gae.randomised[:2, 0]}, gae.steps,
                                       {"gae": gae.means()})


def test_docstring_example():
    import doctest

    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(S.sanity_checks, "sanity_checks", globs={}):
        runner.run(test)
    summary = runner.summarize(verbose=False)
    assert summary.failed == 0 and summary.attempted == 4
