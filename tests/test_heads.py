"""Attention heads (vit_tf.analysis.heads): entropy against known answers and a loop, importance against finite
differences of the loss in the head gates, ablation against a model whose head is zeroed by hand in its weights."""

import numpy as np
import pytest
import tensorflow as tf

import vit_tf
from analysis_support import random_attention, tiny_model
from vit_tf.analysis import heads as Hd

GATE_EPS = 1e-2


@pytest.fixture(scope="module")
def model():
    # The brief's tiny model: 2 blocks x 3 heads, 32 px, patch 8, 5 classes.
    return tiny_model(img_size=32, num_classes=5)


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).randn(12, 32, 32, 3).astype("float32")


# -- entropy ----------------------------------------------------------------------------------------------------------
def test_entropy_known_answers():
    t = 5
    uniform = np.full((2, 3, t, t), 1.0 / t)
    np.testing.assert_allclose(Hd.attention_entropy(uniform, num_prefix_tokens=1), np.log(t), rtol=1e-12)
    one_hot = np.broadcast_to(np.eye(t), (2, 3, t, t))
    np.testing.assert_array_equal(Hd.attention_entropy(one_hot, num_prefix_tokens=1), 0.0)
    # A removed head (zero rows) counts 0; a head scaled by a mask factor keeps its entropy.
    a = random_attention(2, 3, t, seed=1)
    masked = a * np.array([0.0, 0.5, 1.0])[None, :, None, None]
    e, em = (Hd.attention_entropy(v, num_prefix_tokens=1) for v in (a, masked))
    assert np.all(em[:, 0] == 0) and np.allclose(em[:, 1:], e[:, 1:], rtol=1e-12)


@pytest.mark.parametrize("queries", ["all", "patches", "cls"])
def test_entropy_equals_a_loop(queries):
    blocks = {f"transformer_block_{i}_att": random_attention(2, 3, 7, seed=i).astype(np.float32) for i in range(2)}
    out = Hd.attention_entropy(blocks, num_prefix_tokens=2, queries=queries)
    assert out.shape == (2, 2, 3)
    first = {"all": 0, "patches": 2, "cls": 0}[queries]
    last = 1 if queries == "cls" else 7
    for i in range(2):
        a = blocks[f"transformer_block_{i}_att"].astype(np.float64)
        for b in range(2):
            for h in range(3):
                rows = [-sum(p * np.log(p) for p in a[b, h, q] / a[b, h, q].sum()) for q in range(first, last)]
                assert out[b, i, h] == pytest.approx(np.mean(rows), rel=1e-6)
    single = Hd.attention_entropy(blocks["transformer_block_0_att"], num_prefix_tokens=2, queries=queries)
    assert single.shape == (2, 3) and np.allclose(single, out[:, 0])
    with pytest.raises(ValueError, match="queries"):
        Hd.attention_entropy(blocks, num_prefix_tokens=2, queries="dist")


def test_entropy_in_the_forward_pass_equals_the_numpy_one(model, images):
    r = Hd.head_statistics(model, [images[:5], images[5:]], importance=False, ablation=False)
    _, attention = model(images)
    per_image = Hd.attention_entropy(attention, num_prefix_tokens=1)
    np.testing.assert_allclose(r.entropy, per_image.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(r.entropy_std, per_image.std(axis=0), rtol=1e-4, atol=1e-9)
    assert r.uniform_entropy == pytest.approx(np.log(17)) and r.importance is None and r.ablation is None


# -- importance -------------------------------------------------------------------------------------------------------
def _per_example_losses(model, images, gate, targets):
    logits = np.asarray(model(images, head_mask=gate.astype(np.float32), return_attention=False)[0], np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return np.log(np.exp(shifted).sum(axis=-1)) - shifted[np.arange(len(images)), targets]


def _finite_differences(model, images, targets):
    """E_x |dL(x)/dxi_h| by central differences of each image's loss in each gate (step 1e-2)."""
    c = model.config
    out = np.zeros((c.depth, c.num_heads))
    for b in range(c.depth):
        for h in range(c.num_heads):
            up, down = np.ones((c.depth, c.num_heads)), np.ones((c.depth, c.num_heads))
            up[b, h] += GATE_EPS
            down[b, h] -= GATE_EPS
            diff = (_per_example_losses(model, images, up, targets) -
                    _per_example_losses(model, images, down, targets)) / (2 * GATE_EPS)
            out[b, h] = np.abs(diff).mean()
    return out


def test_importance_equals_finite_differences(model, images):
    """Measured: largest difference 4e-5 of the largest importance (float32 forward passes, step 1e-2)."""
    top1 = np.argmax(model(images, return_attention=False)[0], axis=-1)
    labels = np.random.RandomState(1).randint(0, 5, len(images))
    for given, targets in ((None, top1), (labels, labels)):
        r = Hd.head_statistics(model, [images[:7], images[7:]], given, ablation=False, entropy=False)
        raw, normalized = r.importance_raw, r.importance
        fd = _finite_differences(model, images, targets)
        assert raw.shape == (2, 3) and fd.max() > 1e-3
        np.testing.assert_allclose(raw, fd, atol=1e-3 * fd.max())
        np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(normalized, fd / np.linalg.norm(fd, axis=1, keepdims=True), atol=2e-3)


def test_importance_does_not_depend_on_how_images_are_batched(model, images):
    """Per-example gradients (the paper's E|dL/dxi|), not the gradient of a batch's loss."""
    one = Hd.head_importance(model, [images], normalize=False)
    singles = Hd.head_importance(model, [images[i:i + 1] for i in range(len(images))], normalize=False)
    np.testing.assert_allclose(one, singles, rtol=1e-4)


# -- ablation ---------------------------------------------------------------------------------------------------------
def _without_head(model, block, head):
    """A copy of `model` whose head's value projection is zeroed in the weights: A V_h = 0, so the head adds
    nothing — no head_mask involved."""
    c = model.config
    clone = vit_tf.VisionTransformer.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    qkv = clone.blocks[block].attn.qkv  # columns: (q | k | v) x heads x head_dim, as the reshape in Attention.call
    hd = c.embed_dim // c.num_heads
    cols = slice(2 * c.embed_dim + head * hd, 2 * c.embed_dim + (head + 1) * hd)
    kernel, bias = qkv.kernel.numpy(), qkv.bias.numpy()
    kernel[:, cols], bias[cols] = 0.0, 0.0
    qkv.kernel.assign(kernel)
    qkv.bias.assign(bias)
    return clone


def test_ablation_equals_zeroing_the_head_by_hand(model, images):
    c = model.config
    logits = np.asarray(model(images, return_attention=False)[0])
    top1 = logits.argmax(-1)
    labels = np.random.RandomState(2).randint(0, 5, len(images))
    with_labels = Hd.head_ablation(model, [images[:6], images[6:]], labels)
    without = Hd.head_ablation(model, [images[:6], images[6:]])
    # Rows of (mask, image) in chunks that straddle variants give the same counts.
    np.testing.assert_array_equal(Hd.head_ablation(model, [images[:6], images[6:]], labels, batch_size=5),
                                  with_labels)
    base = (top1 == labels).mean()
    for b in range(c.depth):
        for h in range(c.num_heads):
            hand = np.asarray(_without_head(model, b, h)(images, return_attention=False)[0])
            mask = np.ones((c.depth, c.num_heads), np.float32)
            mask[b, h] = 0.0
            np.testing.assert_allclose(model(images, head_mask=mask)[0], hand, atol=1e-5)
            assert with_labels[b, h] == pytest.approx((hand.argmax(-1) == labels).mean() - base, abs=1e-12)
            assert without[b, h] == pytest.approx((hand.argmax(-1) == top1).mean() - 1.0, abs=1e-12)
    assert np.any(without != 0)  # the check is not vacuous: removing some head changes predictions


def test_one_pass_statistics_and_labels(model, images):
    labels = np.random.RandomState(3).randint(0, 5, len(images))
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(5)
    seen = []
    r = Hd.head_statistics(model, ds, on_batch=seen.append)
    assert seen == [5, 5, 2] and r.images == 12 and r.metric == "accuracy"
    assert r.baseline == pytest.approx((np.argmax(model(images)[0], -1) == labels).mean())
    np.testing.assert_allclose(r.ablation, Hd.head_ablation(model, [images], labels), atol=1e-12)
    with pytest.raises(ValueError, match="class indices in 0..4"):
        Hd.head_statistics(model, [images[:4]], np.array([0, 1, 2, 7]))
    with pytest.raises(ValueError, match="12 labels for 4 images|fewer than the images|labels for"):
        list(Hd.labelled_batches([images[:4]], labels))
    with pytest.raises(ValueError, match="given twice"):
        list(Hd.labelled_batches(ds, labels))


def test_model_without_classifier_gets_entropy_only(images):
    features = tiny_model(img_size=32, num_classes=0)
    with pytest.raises(ValueError, match="no classifier"):
        Hd.head_importance(features, [images])
    r = Hd.head_statistics(features, [images[:4]], importance=False, ablation=False)
    assert r.entropy.shape == (2, 3)


def test_heads_figures(tmp_path):
    from PIL import Image

    from vit_tf.plotting import save_figure
    from vit_tf.plotting import head_heatmap_figure, heads_figure

    rng = np.random.default_rng(0)
    fig = heads_figure(rng.uniform(size=(12, 12)), rng.uniform(-0.1, 0.05, (12, 12)), rng.uniform(0, 5, (12, 12)),
                       uniform_entropy=np.log(197), title="test")
    assert len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]) == 3
    path = save_figure(fig, tmp_path / "heads.png", dpi=50)
    with Image.open(path) as im:
        assert np.asarray(im.convert("L"), np.float64).std() > 10
    single = head_heatmap_figure(rng.uniform(size=(2, 3)), "x", diverging=True)
    assert len(single.axes[0].texts) == 6  # every value written in its cell
    with pytest.raises(ValueError, match="nothing to draw"):
        heads_figure()
