"""CKA (vit_tf.analysis.cka): the estimators against a brute-force HSIC written with explicit centering matrices and
loops, their invariances and known answers, the streamed minibatch estimator against the same estimator computed
directly, and layer x layer CKA of tiny ViTs and a tiny ResNet-like CNN against features taken by hand."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

from analysis_support import tiny_model
from vit_tf.analysis import cka as C


# -- brute force: the textbook formulas, loops and explicit matrices ---------------------------------------------------
def brute_hsic(x, y, unbiased):
    """Song et al. 2012 (unbiased, loops over index triples) or Gretton et al. 2005 (tr(KHLH) / (n-1)^2)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    n = len(x)
    k = np.array([[x[i] @ x[j] for j in range(n)] for i in range(n)])
    l = np.array([[y[i] @ y[j] for j in range(n)] for i in range(n)])
    if not unbiased:
        h = np.eye(n) - np.ones((n, n)) / n
        return np.trace(k @ h @ l @ h) / (n - 1) ** 2
    trace = sum(k[i, j] * l[i, j] for i in range(n) for j in range(n) if i != j)  # tr(K~ L~)
    k_sum = sum(k[i, j] for i in range(n) for j in range(n) if i != j)  # 1^T K~ 1
    l_sum = sum(l[i, j] for i in range(n) for j in range(n) if i != j)
    chain = sum(k[i, j] * l[j, m] for i in range(n) for j in range(n) for m in range(n)
                if i != j and j != m)  # 1^T K~ L~ 1
    return (trace + k_sum * l_sum / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * chain) / (n * (n - 3))


def brute_cka(x, y, unbiased):
    return brute_hsic(x, y, unbiased) / np.sqrt(brute_hsic(x, x, unbiased) * brute_hsic(y, y, unbiased))


# (n, d1, d2): n (d1 + d2) > d1 d2 takes the feature-space path, the others the Gram-matrix path.
SHAPES = [(12, 3, 5), (9, 40, 30), (6, 2, 70)]


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_linear_cka_equals_brute_force(shape, unbiased):
    n, d1, d2 = shape
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d1)) + 5.0  # an offset: the brute force sees it, our code removes it (HSIC ignores it)
    y = np.tanh(x[:, :1] @ rng.normal(size=(1, d2))) + 0.5 * rng.normal(size=(n, d2))
    assert C.hsic(x, y, unbiased) == pytest.approx(brute_hsic(x, y, unbiased), rel=1e-9)
    assert C.linear_cka(x, y, unbiased) == pytest.approx(brute_cka(x, y, unbiased), rel=1e-9, abs=1e-12)


def test_both_hsic_paths_agree_and_any_framework_goes_in():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(10, 6)), rng.normal(size=(10, 7))
    xc, yc = C._features(x, "x"), C._features(y, "y")
    for unbiased in (True, False):
        gram = np.sum(C.center_gram(xc @ xc.T, unbiased) * C.center_gram(yc @ yc.T, unbiased)) * \
            C._scale(10, unbiased)
        assert C._hsic_features(xc, yc, unbiased) == pytest.approx(gram, rel=1e-10)
    expected = C.linear_cka(x, y)
    assert C.linear_cka(tf.constant(x), torch.tensor(y)) == pytest.approx(expected, rel=1e-12)
    assert isinstance(C.linear_cka(x.astype(np.float32), y), float)


@pytest.mark.parametrize("unbiased", [True, False])
def test_invariant_to_orthogonal_transforms_and_isotropic_scaling(unbiased):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 12))
    y = x[:, :6] @ rng.normal(size=(6, 9)) + rng.normal(size=(40, 9))
    q1 = np.linalg.qr(rng.normal(size=(12, 12)))[0]
    q2 = np.linalg.qr(rng.normal(size=(9, 9)))[0]
    base = C.linear_cka(x, y, unbiased)
    assert 0.2 < base < 0.95
    assert C.linear_cka(3.7 * x @ q1, y @ q2 * 0.01, unbiased) == pytest.approx(base, abs=1e-10)
    assert C.linear_cka(x + 100.0, y, unbiased) == pytest.approx(base, abs=1e-10)


def test_self_similarity_is_one():
    rng = np.random.default_rng(3)
    for unbiased in (True, False):
        for x in (rng.normal(size=(4, 3)), rng.normal(size=(50, 8)), rng.normal(size=(7, 300)) * 1e3):
            assert abs(C.linear_cka(x, x.copy(), unbiased) - 1.0) <= 1e-12
    cka = C.MinibatchCKA()
    for _ in range(3):
        x = rng.normal(size=(16, 5))
        cka.update([x, np.sin(x), rng.normal(size=(16, 2, 3))])
    assert np.abs(np.diag(cka.result()) - 1.0).max() <= 1e-12


def test_independent_features_unbiased_near_zero_biased_not():
    """n = 32 examples of 8 independent Gaussian features per side, 20 seeds. Measured: unbiased mean 0.015 (mean
    |value| 0.041), biased mean 0.209 (smallest 0.145)."""
    unbiased, biased = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(32, 8)), rng.normal(size=(32, 8))
        unbiased.append(C.linear_cka(x, y))
        biased.append(C.linear_cka(x, y, unbiased=False))
    assert abs(np.mean(unbiased)) < 0.04
    assert np.mean(biased) > 0.15 and min(biased) > 0.1


def test_fewer_than_four_examples_is_a_clear_error():
    x = np.random.default_rng(0).normal(size=(3, 5))
    with pytest.raises(ValueError, match="needs at least 4"):
        C.linear_cka(x, x)
    with pytest.raises(ValueError, match="a batch of 3 examples"):
        C.MinibatchCKA().update([x])
    assert np.isfinite(C.linear_cka(x[:3], x[:3] ** 2, unbiased=False))
    four = np.random.default_rng(1).normal(size=(4, 5))
    assert np.isfinite(C.linear_cka(four, four[:, :2]))


def test_constant_representation_is_zero_not_nan():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 5))
    constant = np.tile(rng.normal(size=(1, 5)), (8, 1)) * 1e3
    assert C.linear_cka(x, constant) == 0.0 and C.linear_cka(constant, constant) == 0.0
    cka = C.MinibatchCKA().update([x, constant]).update([x * 2, constant])
    assert cka.constant() == ([1], [1])
    np.testing.assert_array_equal(cka.result()[1], [0.0, 0.0])


# -- the streamed estimator -------------------------------------------------------------------------------------------
def test_streamed_equals_the_average_of_per_batch_hsic_on_the_concatenated_data():
    """"The same estimator": the minibatch CKA is mean_i HSIC_1(X_i, Y_j-layer_i) / sqrt(mean HSIC_1(X_i, X_i)
    mean HSIC_1(Y_i, Y_i)) over the batches i. Computed here directly with the brute-force HSIC on the concatenated
    data split at the same places, it agrees to float64 rounding (1e-12)."""
    rng = np.random.default_rng(5)
    sizes = [6, 9, 4, 7]
    n = sum(sizes)
    xs = [rng.normal(size=(n, 4)), rng.normal(size=(n, 3, 2))]
    ys = [xs[0] @ rng.normal(size=(4, 5)) + rng.normal(size=(n, 5)), rng.normal(size=(n, 7)), np.cos(xs[0])]
    cka = C.MinibatchCKA()
    edges = np.cumsum([0] + sizes)
    for a, b in zip(edges[:-1], edges[1:]):
        cka.update([x[a:b] for x in xs], [y[a:b] for y in ys])
    assert (cka.batches, cka.count) == (4, n)
    chunks = list(zip(edges[:-1], edges[1:]))
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            cross = np.mean([brute_hsic(x[a:b], y[a:b], True) for a, b in chunks])
            sx = np.mean([brute_hsic(x[a:b], x[a:b], True) for a, b in chunks])
            sy = np.mean([brute_hsic(y[a:b], y[a:b], True) for a, b in chunks])
            assert cka.result()[i, j] == pytest.approx(cross / np.sqrt(sx * sy), rel=1e-11, abs=1e-12)


def test_minibatch_estimate_converges_to_full_data_cka():
    """N = 4096 examples; full-data unbiased CKA 0.3654 (biased 0.3671). The unbiased minibatch estimate stays
    within 0.005 of it at batch sizes 16, 64 and 256 (measured 0.3621, 0.3612, 0.3621); averaging biased per-batch
    HSICs does not (0.618 at batch 16, 0.454 at 64)."""
    rng = np.random.default_rng(0)
    n = 4096
    x = rng.normal(size=(n, 16))
    y = np.concatenate([x[:, :8], rng.normal(size=(n, 8))], 1) @ rng.normal(size=(16, 24))
    full = C.linear_cka(x, y)
    for size in (16, 64, 256):
        unbiased, biased = C.MinibatchCKA(), C.MinibatchCKA(unbiased=False)
        for a in range(0, n, size):
            unbiased.update([x[a:a + size]], [y[a:a + size]])
            biased.update([x[a:a + size]], [y[a:a + size]])
        assert abs(unbiased.result()[0, 0] - full) < 0.005
        if size <= 64:
            assert biased.result()[0, 0] - full > 0.05


def test_short_last_batch_is_joined_and_others_refused():
    batches = [(np.zeros((5, 1)),), (np.ones((5, 1)),), (np.full((2, 1), 2.0),)]
    out = list(C.min_size_batches(iter(batches)))
    assert [len(b[0]) for b in out] == [5, 7] and out[1][0][-1, 0] == 2.0
    with pytest.raises(ValueError, match="before the last batch"):
        list(C.min_size_batches(iter([(np.zeros((2, 1)),), (np.zeros((5, 1)),)])))
    with pytest.raises(ValueError, match="before the last batch"):
        list(C.min_size_batches(iter([(np.zeros((5, 1)),), (np.zeros((2, 1)),), (np.zeros((5, 1)),)])))
    with pytest.raises(ValueError, match="3 images in all"):
        list(C.min_size_batches(iter([(np.zeros((3, 1)),)])))


# -- token choices ----------------------------------------------------------------------------------------------------
def test_token_features_follow_timm_order():
    # 2 images of 7 tokens: class, 2 registers, 4 patches; token t holds the value t in every channel.
    tokens = np.broadcast_to(np.arange(7.0)[None, :, None], (2, 7, 3))
    kw = dict(num_prefix_tokens=3, num_register_tokens=2)
    assert C.token_features(tokens, "cls", **kw).tolist() == [[0.0] * 3] * 2
    assert C.token_features(tokens, "registers", **kw)[0].tolist() == [1.0] * 3 + [2.0] * 3
    assert C.token_features(tokens, "patches", **kw).shape == (2, 12)
    assert C.token_features(tokens, "mean", **kw)[0].tolist() == [4.5] * 3
    assert C.token_features(tokens, "all", **kw).shape == (2, 21)
    with pytest.raises(ValueError, match="no distillation token"):
        C.token_features(tokens, "dist", **kw)
    assert C.token_features(tokens, "dist", num_prefix_tokens=2)[0].tolist() == [1.0] * 3
    with pytest.raises(ValueError, match="no register tokens"):
        C.token_span("registers", 2)


# -- models -----------------------------------------------------------------------------------------------------------
TOKENS = ["cls", "mean", "all", "patches"]


def _by_hand(model, images, tokens):
    """Every layer's features from the model's public forward pass (and `_embed`), reduced in NumPy."""
    c = model.config
    final, _, hidden = model.forward_features(images, return_hidden=True, return_attention=False)
    layers = [model._embed(images, False)] + list(hidden) + [final]
    return [C.token_features(np.asarray(x, np.float64), t, num_prefix_tokens=c.num_prefix_tokens) for x in layers
            for t in tokens]


@pytest.fixture(scope="module")
def vit():
    return tiny_model(img_size=32, num_classes=5)


def test_vit_layer_cka_matches_features_taken_by_hand(vit):
    images = np.random.RandomState(0).randn(13, 32, 32, 3).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((images, np.arange(13))).batch(5)  # 5, 5, 3: the 3 joins the last
    seen = []
    result = C.layer_cka(vit, ds, tokens=TOKENS, on_batch=seen.append)
    assert seen == [5, 8] and (result.images, result.batches) == (13, 2)
    layers = ["embedding", "block_0", "block_1", "norm"]
    assert result.layers_a == [n for n in layers for _ in TOKENS] and result.tokens_a == TOKENS * 4
    expected = C.MinibatchCKA()
    for a, b in ((0, 5), (5, 13)):
        expected.update(_by_hand(vit, images[a:b], TOKENS))
    np.testing.assert_allclose(result.cka, expected.result(), atol=1e-6)
    assert np.isfinite(result.cka).all()
    # The class token entering block 0 is the same for every image: reported as constant, CKA 0.
    cls = result.select("cls")
    assert cls.constant_a == [0] and cls.layers_a[0] == "embedding"
    assert np.all(cls.cka[0] == 0) and np.abs(np.diag(cls.cka)[1:] - 1).max() < 1e-12
    assert result.select("mean").constant_a == []


def test_two_models_with_their_own_preprocessing(vit):
    other = tiny_model("deit_tiny_distilled_patch16_224", img_size=48, num_classes=5, seed=1)
    rng = np.random.RandomState(1)
    small = rng.randn(8, 32, 32, 3).astype("float32")
    large = tf.image.resize(small, (48, 48)).numpy()
    ab = C.layer_cka(vit, [small[:4], small[4:]], other, batches_b=[large[:4], large[4:]], tokens="mean")
    ba = C.layer_cka(other, [large[:4], large[4:]], vit, batches_b=[small[:4], small[4:]], tokens="mean")
    assert ab.cka.shape == (4, 4) and ab.model_b == other.name
    np.testing.assert_allclose(ab.cka, ba.cka.T, atol=1e-12)
    dist = C.layer_cka(other, [large[:4], large[4:]], tokens=["dist", "cls"])
    assert dist.select("dist", "cls").cka.shape == (4, 4)
    with pytest.raises(ValueError, match="different numbers of batches"):
        C.layer_cka(vit, [small[:4], small[4:]], other, batches_b=[large[:4]])


def test_cnn_named_layers_pooled(vit):
    """A tiny ResNet-like CNN (conv, residual add, pooling) against a ViT: each named layer globally pooled."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    h = keras.layers.ReLU(name="stem")(keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv1")(inputs))
    r = keras.layers.Conv2D(8, 3, padding="same", name="res_conv")(h)
    h = keras.layers.Add(name="res_add")([h, keras.layers.ReLU()(r)])
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    cnn = keras.Model(inputs, keras.layers.Dense(5, name="logits")(pooled), name="tiny_resnet")
    names = ["conv1", "stem", "res_add", "pool", "logits"]
    images = np.random.RandomState(2).randn(16, 32, 32, 3).astype("float32")
    result = C.layer_cka(cnn, [images[:8], images[8:]], vit, layers_a=names, tokens="cls")
    assert result.layers_a == names and result.tokens_a == ["pooled"] * 5 and result.cka.shape == (5, 4)
    tap = keras.Model(inputs, [cnn.get_layer(n).output for n in names])
    expected = C.MinibatchCKA()
    for a, b in ((0, 8), (8, 16)):
        outs = [np.asarray(o, np.float64) for o in tap(images[a:b])]
        feats = [o.mean(axis=(1, 2)) if o.ndim == 4 else o for o in outs]
        expected.update(feats, _by_hand(vit, images[a:b], ["cls"]))
    np.testing.assert_allclose(result.cka, expected.result(), atol=1e-6)
    # "pool" is the spatial mean of "res_add": identical pooled features, CKA 1.
    assert result.cka[2] == pytest.approx(result.cka[3], abs=1e-6)
    with pytest.raises(ValueError, match="layers of tiny_resnet"):
        C.layer_cka(cnn, [images[:4]], layers_a=["nope"])


def test_cka_figure(tmp_path):
    from vit_tf.plotting import save_figure
    from vit_tf.plotting import cka_figure

    names = ["embedding"] + [f"block_{i}" for i in range(20)] + ["norm"]
    values = np.random.default_rng(0).uniform(-0.1, 1, (22, 22))
    fig = cka_figure(values, names, names, "A", title="test", constant_a=[0])
    path = save_figure(fig, os.path.join(tmp_path, "cka.png"), dpi=50)
    from PIL import Image

    with Image.open(path) as im:
        assert np.asarray(im.convert("L"), np.float64).std() > 10
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0] == "embedding (constant)" and labels[-1] == "norm" and len(labels) <= 17
    with pytest.raises(ValueError, match="layer names"):
        cka_figure(values, names[:3], names)


def test_docstring_examples_run():
    import doctest

    result = doctest.testmod(C, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0
