"""The analysis functions on real (tiny, random-weight) models: our Keras models and their SavedModels."""

import numpy as np
import pytest

from analysis_support import tiny_model
from vit_tf import analysis as A


@pytest.fixture(scope="module")
def distilled():
    return tiny_model("deit_tiny_distilled_patch16_224", img_size=(32, 48))


@pytest.fixture(scope="module")
def images():
    return np.random.RandomState(0).randn(3, 32, 48, 3).astype(np.float32)


def test_keras_source_shapes_any_batch_non_square(distilled, images):
    source = A.attention_source(distilled)
    assert (source.patch_size, source.num_prefix_tokens) == (8, 2)
    outputs, attention = source(images)
    assert set(outputs) >= {"logits", "cls_logits", "dist_logits", "features"}
    assert attention["transformer_block_1_att"].shape == (3, 3, 2 + 4 * 6, 2 + 4 * 6)
    common = dict(num_prefix_tokens=2, grid_size=(4, 6))
    assert A.mean_attention_distance(attention, patch_size=8, **common).shape == (3, 2, 3)
    assert A.attention_rollout(attention, token="dist", **common).shape == (3, 4, 6)
    assert A.token_attention(attention, **common).shape == (3, 3, 4, 6)
    assert A.attention_grid(attention, **common).shape == (3, 2, 3, 4, 6)
    # Each image is analysed on its own: the batch gives the same numbers as one image at a time.
    one = A.mean_attention_distance(source(images[1:2])[1], patch_size=8, **common)
    np.testing.assert_allclose(A.mean_attention_distance(attention, patch_size=8, **common)[1:2], one, rtol=1e-4)


def test_model_call_dict_is_accepted_directly(distilled, images):
    _, attention = distilled(images)  # TF tensors straight from the model
    d = A.mean_attention_distance(attention, patch_size=8, num_prefix_tokens=2, grid_size=(4, 6))
    assert d.shape == (3, 2, 3) and np.all((d > 0) & (d < 8 * np.hypot(3, 5)))


def test_probe_on_distilled_model(distilled, images):
    r = A.probe(distilled, images)
    assert r.num_prefix_tokens == 2 and r.grid_size == (4, 6)
    assert r.mean_distance.shape == (2, 3) and r.rollout.shape == (4, 6)
    assert r.heatmaps.shape == (3, 4, 6) and r.masks.dtype == bool and r.grid.shape == (2, 3, 4, 6)
    assert r.filters.shape == (48, 8, 8, 3) and r.filter_pca[0].shape == (28, 8, 8, 3)
    assert r.pos_similarity.shape == (24, 24) and r.pos_cosine.shape == (4, 6, 4, 6)
    s = r.summary()
    assert s["num_prefix_tokens"] == 2 and len(s["prediction"]) == 5
    assert 0 < s["rollout"]["patch_mass"] < 1
    # The rollout's patch mass plus what stayed on the two prefix tokens is the whole row.
    joint = A.rollout_matrix(r.attention)
    assert joint[0, 0, 2:].sum() == pytest.approx(s["rollout"]["patch_mass"])


def test_probe_on_feature_model_has_no_prediction():
    model = tiny_model(num_classes=0)
    r = A.probe(model, np.zeros((1, 32, 32, 3), np.float32))
    assert r.predictions is None and r.summary()["prediction"] is None


def test_saved_model_source_matches_keras(distilled, images, tmp_path):
    import vit_tf

    path = vit_tf.export_saved_model(distilled, tmp_path / "converted" / "saved_model")
    source = A.attention_source(str(tmp_path / "converted"))  # the directory holding the SavedModel
    assert isinstance(source, A.SavedModelSource)
    outputs, attention = source(images)
    # No config.json: the prefix count comes from the distillation head, the patch size from the token count.
    assert (source.patch_size, source.num_prefix_tokens) == (8, 2)
    ref_out, ref_att = A.KerasSource(distilled)(images)
    np.testing.assert_allclose(outputs["logits"], ref_out["logits"], atol=1e-5)
    for key in ref_att:
        np.testing.assert_allclose(attention[key], ref_att[key], atol=1e-6)
    np.testing.assert_array_equal(source.patch_kernel(), A.KerasSource(distilled).patch_kernel())
    np.testing.assert_array_equal(source.position_embedding(), A.KerasSource(distilled).position_embedding())
    r = A.probe(path, images[:1])
    assert r.num_prefix_tokens == 2 and r.rollout.shape == (4, 6)
    stats = A.accumulate_mean_distance(A.SavedModelSource(path), [images[:2], images[2:]])
    np.testing.assert_allclose(stats.mean, A.mean_attention_distance(ref_att, patch_size=8, num_prefix_tokens=2,
                                                                     grid_size=(4, 6)).mean(0), rtol=1e-4)


def test_saved_model_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        A.SavedModelSource(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="saved_model.pb"):
        A.SavedModelSource(tmp_path / "empty")


def test_docs_analysis_example_runs(tmp_path, monkeypatch):
    """docs/analysis.md's Python example (its first ```python block) runs as written."""
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "analysis.md"
    code = re.search(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, str(page), "exec"), namespace)
    assert namespace["distances"].shape == (4, 12, 3)
    assert namespace["rollout"].shape == (4, 14, 14) and namespace["maps"].shape == (4, 3, 14, 14)
    assert (tmp_path / "distance.png").is_file()
