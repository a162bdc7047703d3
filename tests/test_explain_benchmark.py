"""The explanation benchmark (vit_tf.benchmark) and `vit-tf explain-benchmark` on a tiny composite classifier: the
composites' own training path at 112 px with a tiny backbone in place of DINOv2 (one shared fixture), the shuffled-
label model, per-image scores that equal the library's metrics called directly, the summaries (means, standard
errors, t intervals), and the command through its parser (outputs present and consistent, one-line errors, exit
codes, nothing written on error)."""

import csv
import json
import math
import os

import keras
import numpy as np
import pytest
from conftest import extra

extra("skimage", reason="needs the test extra: pip install scikit-image")

import vit_tf  # noqa: E402
from vit_tf import benchmark as BM  # noqa: E402
from vit_tf.composites import classifier as C  # noqa: E402

from helpers import run_cli  # noqa: E402

TINY = dict(n_train=2, n_val=1, n_test=1, image_size=112)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A private VIT_TF_HOME and a tiny backbone (112 px, patch 14: an 8 x 8 grid) in place of the DINOv2 weights;
    the composites' code trains its head as it trains the real one."""
    keras.utils.set_random_seed(11)
    backbone = vit_tf.create_model("vit_tiny_patch16_224", depth=2, embed_dim=24, num_heads=2, mlp_dim=48,
                                   img_size=112, patch_size=14, num_classes=9)
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("vit_tf_home")
        mp.setenv("VIT_TF_HOME", str(folder))
        mp.setattr(C, "_backbone", lambda size: backbone)
        yield folder


@pytest.fixture(scope="module")
def composites(home):
    return C.composite_classifier(seed=0, **TINY)


@pytest.fixture(scope="module")
def shuffled(composites):
    return BM.shuffled_label_model(composites, seed=2)


@pytest.fixture(scope="module")
def result(composites, shuffled):
    settings = BM.Settings(steps=2, samples=2, deletion_steps=4, road_fractions=(0.25, 0.75), saco_groups=4,
                           sanity_images=2, seed=1, explain_batch_size=1)  # batches of 1: the chunking is exercised
    images, labels, masks = composites.images[:3], composites.labels[:3], composites.masks[:3]
    return BM.run_benchmark(composites.model, images, labels, masks, methods=["gae", "rollout"],
                            baselines=["random", "sobel"], shuffled_model=shuffled[0], settings=settings)


def test_shuffled_label_model(composites, shuffled, home):
    model, report = shuffled
    assert model is not composites.model and model.get_config() == composites.model.get_config()
    for a, b in zip(model.weights, composites.model.weights):  # the backbone is shared, the head is not
        same = np.array_equal(a.numpy(), b.numpy())
        assert same == ("head" not in a.path), a.path
    train = vit_tf.make_composites("train", 2, 0, 112)
    permuted = np.random.default_rng(2).permutation(train.labels)
    assert report["label_agreement"] == pytest.approx(np.mean(permuted == train.labels))
    assert report["seed"] == 2 and not report["features_from_cache"] and 0 <= report["train_accuracy"] <= 1
    logits = np.asarray(model(composites.images)[0])
    assert report["test_accuracy"] == pytest.approx(np.mean(logits.argmax(1) == composites.labels))
    cached = os.listdir(os.path.join(home, "explain_benchmark"))
    assert len(cached) == 1 and cached[0].endswith(".npz")
    again_model, again = BM.shuffled_label_model(composites, seed=2)
    assert again["features_from_cache"] and again["train_accuracy"] == report["train_accuracy"]
    np.testing.assert_array_equal(again_model.head.kernel.numpy(), model.head.kernel.numpy())


def test_scores_are_the_library_metrics(composites, result):
    from vit_tf.analysis import faithfulness as F
    from vit_tf.analysis import localisation as L

    model, x, y, k = composites.model, composites.images[:3], composites.labels[:3], composites.masks[:3]
    assert result.methods == ("gae", "rollout", "random", "sobel")
    assert set(result.sanity) == {"cascading", "data"} and result.labels.tolist() == y.tolist()
    gae = result.maps["gae"]
    np.testing.assert_allclose(gae, vit_tf.explain(model, x, "gae", target=y), atol=1e-6)
    np.testing.assert_array_equal(result.maps["random"], vit_tf.analysis.random_map(x, 14, seed=1))
    np.testing.assert_array_equal(result.maps["sobel"], vit_tf.analysis.sobel_map(x, 14))
    s = result.scores["gae"]
    assert all(v.shape == (3,) for name, v in s.items() if not name.startswith(("cascade", "data")))
    np.testing.assert_array_equal(s["pointing_game"], L.pointing_game(gae, k).astype(float))
    np.testing.assert_array_equal(s["mask_auroc"], L.mask_auroc(gae, k))
    black = F.black_fill(model.recipe)
    deletion = F.insertion_deletion(model, x, gae, y, mode="deletion", step=14 * 14 * 16, substrate=black)
    np.testing.assert_allclose(s["deletion_auc"], deletion["auc"], atol=1e-12)
    curve = F.perturbation_curves(model, x, gae, y, mode="negative", fill=black)["correct"]
    np.testing.assert_allclose(s["negative_perturbation_auc"],
                               [F.perturbation_auc(100.0 * c, (0.0,) + F.FRACTIONS) for c in curve], atol=1e-9)
    # sanity on the first 2 images: the final cascade step and the shuffled head
    cascading = result.sanity["cascading"]["gae"]
    np.testing.assert_allclose(cascading.original, gae[:2], atol=1e-6)  # the sanity copy, one image per pass
    np.testing.assert_array_equal(s["cascade_spearman"], cascading.spearman[-1])
    np.testing.assert_array_equal(s["data_ssim"], result.sanity["data"]["gae"].ssim[0])
    assert cascading.steps[0] == "head" and cascading.steps[-1] == "embeddings" and cascading.spearman.shape == (4, 2)
    for mode in ("cascading", "data"):  # the model-free baselines survive every randomisation
        for measure in ("spearman", "spearman_abs", "ssim"):
            np.testing.assert_allclose(getattr(result.sanity[mode]["sobel"], measure), 1.0, atol=1e-12)
            np.testing.assert_allclose(getattr(result.sanity[mode]["random"], measure), 1.0, atol=1e-12)
    np.testing.assert_allclose(result.sanity["data"]["rollout"].spearman, 1.0, atol=1e-9)  # no head in rollout


def test_summaries_csv_and_json(result):
    from scipy.stats import t

    d = BM.describe([1.0, 2.0, 6.0, float("nan")])
    assert d["n"] == 3 and d["mean"] == pytest.approx(3.0)
    se = np.std([1, 2, 6], ddof=1) / math.sqrt(3)
    assert d["se"] == pytest.approx(se) and d["ci_high"] == pytest.approx(3.0 + t.ppf(0.975, 2) * se)
    one = BM.describe([4.0])
    assert one["mean"] == 4.0 and math.isnan(one["se"]) and math.isnan(one["ci_low"])
    rows = BM.csv_table(result)
    header = rows[0]
    assert header[:4] == ["method", "images", "pointing_game", "pointing_game_se"] and len(rows) == 5
    summary = BM.summarise(result)
    row = dict(zip(header, rows[1]))
    assert row["method"] == "gae" and float(row["mask_auroc"]) == pytest.approx(summary["gae"]["mask_auroc"]["mean"],
                                                                                 abs=1e-6)
    record = BM.to_json(result, network="tiny")
    text = json.dumps(record, allow_nan=False)  # strict JSON: NaN became null
    assert json.loads(text)["summary"]["gae"]["saco"]["n"] == summary["gae"]["saco"]["n"]
    assert np.asarray(record["sanity"]["cascading"]["gae"]["randomised_maps"]).shape == (4, 2, 8, 8)
    assert record["sanity_curves"]["cascading"]["gae"]["steps"][0] == "head"


def test_command_outputs(composites, shuffled, result, tmp_path, capsys, monkeypatch):
    """The command's wiring: the classifier and the shuffled-label model come from the fixtures, and the run itself
    (tested above) from a stand-in that records what the command asks for and returns the fixture's result."""
    import vit_tf.benchmark
    import vit_tf.composites

    calls = {}

    def classifier(**kwargs):
        calls["classifier"] = kwargs
        return composites

    def shuffled_model(bench, seed, progress):
        calls["shuffled"] = (bench, seed)
        return shuffled

    def run_benchmark(model, images, labels, masks, **kwargs):
        calls["run"] = (model, images, labels, masks, kwargs)
        return result

    monkeypatch.setattr(vit_tf.composites, "composite_classifier", classifier)
    monkeypatch.setattr(vit_tf.benchmark, "shuffled_label_model", shuffled_model)
    monkeypatch.setattr(vit_tf.benchmark, "run_benchmark", run_benchmark)
    out = tmp_path / "bench"
    code, stdout, err = run_cli(
        capsys, "explain-benchmark", "--out", out, "--image-size", "112", "--methods", "gae,rollout",
        "--baselines", "sobel", "--steps", "3", "--samples", "5", "--deletion-steps", "4", "--saco-groups", "4",
        "--sanity-images", "2", "--seed", "7", "--explain-batch-size", "2", "--examples", "2", "--dpi", "30")
    assert code == 0, err
    assert calls["classifier"]["n_test"] == 16 and calls["classifier"]["image_size"] == 112
    model, images, labels, masks, kwargs = calls["run"]
    assert model is composites.model and kwargs["methods"] == ["gae", "rollout"] and kwargs["baselines"] == ["sobel"]
    np.testing.assert_array_equal(images, composites.images[:9])  # --n-test 1: one per class
    np.testing.assert_array_equal(masks, composites.masks[:9])
    assert kwargs["shuffled_model"] is shuffled[0] and calls["shuffled"][1] == 7
    assert kwargs["settings"] == BM.Settings(steps=3, samples=5, deletion_steps=4, saco_groups=4, sanity_images=2,
                                             seed=7, explain_batch_size=2)
    assert "4 methods on 3 test composites" in stdout  # the stand-in's result
    assert sorted(os.listdir(out)) == ["examples.png", "explain_benchmark.csv", "explain_benchmark.json",
                                       "faithfulness.png", "localisation.png", "sanity.png", "sanity_cascade.png"]
    with open(out / "explain_benchmark.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    record = json.load(open(out / "explain_benchmark.json"))
    assert [r["method"] for r in rows] == record["methods"] == ["gae", "rollout", "random", "sobel"]
    for r in rows:
        for metric in ("pointing_game", "deletion_auc", "cascade_spearman", "data_spearman"):
            mean = record["summary"][r["method"]][metric]["mean"]
            assert (r[metric] == "nan" and mean is None) or float(r[metric]) == pytest.approx(mean, abs=1e-6)
    assert record["classifier"]["image_size"] == 112 and record["shuffled_labels"] == shuffled[1]
    assert record["labels"] == result.labels.tolist() and len(record["boxes"]) == 9


def test_command_without_figures_of_missing_parts(result):
    """The figures of a record without sanity checks: the bar charts and examples, no cascade."""
    from vit_tf.plotting import benchmark_figures

    record = BM.to_json(result)
    record["sanity"] = {}
    for name in record["summary"]:
        for metric in BM.SANITY:
            record["summary"][name][metric]["mean"] = None
    figures = benchmark_figures(record, np.zeros((3, 112, 112, 3), np.uint8), None, None, examples=1)
    assert sorted(figures) == ["examples.png", "faithfulness.png", "localisation.png"]


@pytest.mark.parametrize("argv, message", [
    (["--methods", "gae,gradcam"], "argument --methods: unknown method(s) ['gradcam']"),
    (["--baselines", "canny"], "argument --baselines: unknown baseline(s) ['canny']"),
    (["--image-size", "120"], "--image-size 120: must be a multiple of the patch size 14"),
    (["--sanity-images", "10"], "--sanity-images 10: more than the 9 test images"),
    (["--n-test", "0"], "argument --n-test: must be at least 1, got 0"),
])
def test_command_errors_are_one_line(argv, message, tmp_path, capsys):
    out = tmp_path / "never"
    code, stdout, err = run_cli(capsys, "explain-benchmark", "--out", out, *argv)
    assert code == 2 and message in err and not os.path.exists(out)
    assert "Traceback" not in err and len([line for line in err.splitlines() if "error" in line]) == 1


def test_command_refuses_a_file_as_out(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("keep")
    code, _, err = run_cli(capsys, "explain-benchmark", "--out", target)
    assert code == 2 and "exists and is not a folder" in err and target.read_text() == "keep"
