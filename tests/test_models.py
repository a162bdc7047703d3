"""The model contract for every family, on tiny configs."""

import numpy as np
import pytest
import tensorflow as tf

import vit_tf
from helpers import check_backbone, random_images

TINY = dict(depth=2, img_size=32, patch_size=8, embed_dim=48, num_heads=3, mlp_dim=96)

FAMILIES = {
    "vit": ("vit_tiny_patch16_224", dict(num_classes=7)),
    "deit": ("deit_tiny_patch16_224", dict(num_classes=7)),
    "deit_distilled": ("deit_tiny_distilled_patch16_224", dict(num_classes=7)),
    "dino_backbone": ("vit_small_patch16_224.dino", dict()),
    "dino_linear_last4": ("vit_small_patch16_224.dino_linear", dict(num_classes=5, depth=4)),
    "dino_linear_avgpool": ("vit_base_patch16_224.dino_linear", dict(num_classes=5)),
    "vit_pre_logits": ("vit_base_patch16_224.orig_in21k", dict(num_classes=9, representation_size=16)),
    # DINOv2: LayerScale; the official interpolation (offset) of the weights; ViT-g's SwiGLU MLP; registers.
    "dinov2": ("vit_small_patch14_dinov2.lvd142m", dict(patch_size=8)),
    "dinov2_giant_swiglu": ("vit_giant_patch14_dinov2", dict(patch_size=8, num_classes=6)),
    "dinov2_reg4": ("vit_small_patch14_reg4_dinov2", dict(patch_size=8)),
    "dinov2_reg4_linear4": ("vit_base_patch14_reg4_dinov2", dict(patch_size=8, depth=4, num_classes=5,
                                                                 head_type="dinov2_linear4")),
    "hf_vit_bicubic": ("vit_tiny_patch16_224", dict(num_classes=3, pos_embed_interpolation="bicubic",
                                                   layer_norm_eps=1e-12)),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_backbone_contract(family, tmp_path):
    name, extra = FAMILIES[family]
    model = vit_tf.create_model(name, **{**TINY, **extra})
    # Non-square, not the built size: exercises position-embedding resampling in every path.
    check_backbone(model, random_images(2, 24, 40), str(tmp_path))


def test_distilled_outputs_are_mean_of_both_heads():
    model = vit_tf.create_model("deit_tiny_distilled_patch16_224", **TINY, num_classes=4)
    images = random_images(3, 32, 32)
    outputs, _ = model.forward_all(images)
    assert set(outputs) == {"features", "logits", "cls_logits", "dist_logits"}
    np.testing.assert_allclose(outputs["logits"], (outputs["cls_logits"] + outputs["dist_logits"]) / 2, atol=1e-6)
    assert np.max(np.abs(outputs["cls_logits"] - outputs["dist_logits"])) > 1e-3  # two different heads
    logits, attention = model(images)
    np.testing.assert_allclose(logits, outputs["logits"], atol=1e-6)
    assert attention["transformer_block_0_att"].shape[-1] == 2 + 16  # class + distillation + 4x4 patches


def test_dino_backbone_outputs_final_norm_class_token():
    model = vit_tf.create_model("vit_small_patch16_224.dino", **TINY)
    images = random_images(2, 32, 32)
    features, _ = model(images)
    tokens, _ = model.forward_features(images)
    np.testing.assert_allclose(features, tokens[:, 0], atol=1e-6)
    assert model.output_key == "features"


def test_dino_avgpool_head_interleaves_class_and_mean_tokens():
    model = vit_tf.create_model("vit_base_patch16_224.dino_linear", **TINY, num_classes=3)
    images = random_images(2, 32, 32)
    tokens, _ = model.forward_features(images)
    cls, avg = np.asarray(tokens[:, 0]), np.asarray(tf.reduce_mean(tokens[:, 1:], axis=1))
    interleaved = np.empty((2, 2 * 48), np.float32)
    interleaved[:, 0::2], interleaved[:, 1::2] = cls, avg
    expected = interleaved @ model.head.kernel.numpy() + model.head.bias.numpy()
    np.testing.assert_allclose(model(images)[0], expected, atol=1e-5)


@pytest.mark.parametrize("size", [(30, 32), (32, 36), (7, 7)])
def test_size_not_multiple_of_patch_is_a_clear_error(size):
    model = vit_tf.create_model("vit_tiny_patch16_224", **TINY, num_classes=2)
    with pytest.raises(ValueError, match="multiple of the patch size 8"):
        model(random_images(1, *size))


def test_dynamic_size_error_inside_saved_model(tmp_path):
    model = vit_tf.create_model("vit_tiny_patch16_224", **TINY, num_classes=2)
    serve = tf.saved_model.load(vit_tf.export_saved_model(model, str(tmp_path / "sm"))).signatures["serving_default"]
    assert serve(images=tf.constant(random_images(1, 16, 48)))["logits"].shape == (1, 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="multiples of the patch size"):
        serve(images=tf.constant(random_images(1, 20, 48)))


def test_wrong_channel_count_is_a_clear_error():
    model = vit_tf.create_model("vit_tiny_patch16_224", **TINY, num_classes=2)
    with pytest.raises(ValueError, match="3 channels"):
        model(np.zeros((1, 32, 32, 1), "float32"))


def test_resample_is_identity_at_native_grid_and_smooth_elsewhere():
    from vit_tf.layers import antialiased_bicubic_matrix
    m = antialiased_bicubic_matrix(6, 6).numpy()
    np.testing.assert_array_equal(m, np.eye(6, dtype=np.float32))
    for n_in, n_out in ((4, 9), (9, 4), (14, 7)):
        m = antialiased_bicubic_matrix(n_in, n_out).numpy()
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-6)  # rows are normalised: constants survive


def test_dropout_and_drop_path_are_active_only_in_training():
    model = vit_tf.create_model("vit_tiny_patch16_224", **TINY, num_classes=3, drop_rate=0.3,
                                drop_path_rate=0.3, attn_drop_rate=0.3)
    images = random_images(4, 32, 32)
    a, _ = model(images)
    b, _ = model(images)
    np.testing.assert_array_equal(a, b)
    c, att = model(images, training=True)
    assert np.max(np.abs(np.asarray(c) - np.asarray(a))) > 1e-4
    # Returned attention is taken before attention dropout: rows still sum to one.
    np.testing.assert_allclose(np.sum(att["transformer_block_1_att"], -1), 1.0, atol=1e-5)
    assert model.get_config()["drop_path_rate"] == 0.3


def test_model_docstring_example_runs():
    model = vit_tf.create_model("vit_tiny_patch16_224", num_classes=10, depth=2)
    logits, attention = model(np.zeros((1, 64, 96, 3), "float32"))
    assert (logits.shape, attention["transformer_block_1_att"].shape) == ((1, 10), (1, 3, 25, 25))


def test_predict_returns_the_pair_like_the_keras_io_example():
    model = vit_tf.create_model("deit_tiny_distilled_patch16_224", **TINY, num_classes=5)
    images = random_images(3, 32, 48)
    predictions, attention = model.predict(images, batch_size=2, verbose=0)
    logits, eager_attention = model(images)
    assert predictions.shape == (3, 5) and sorted(attention) == sorted(eager_attention)
    np.testing.assert_allclose(predictions, logits, atol=1e-5)
    np.testing.assert_allclose(attention["transformer_block_1_att"], eager_attention["transformer_block_1_att"],
                               atol=1e-6)


def test_fit_and_evaluate_apply_losses_and_metrics_to_the_outputs():
    import keras
    model = vit_tf.create_model("vit_tiny_patch16_224", **TINY, num_classes=3)
    images, labels = random_images(24, 32, 32, seed=3), np.arange(24) % 3
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    loss_before, _ = model.evaluate(images, labels, verbose=0)
    history = model.fit(images, labels, epochs=8, batch_size=8, verbose=0)
    loss_after, accuracy = model.evaluate(images, labels, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert loss_after < 0.5 * loss_before and accuracy > 0.9  # it learns the 24 labels
