"""`vit-tf eval` end to end on tiny synthetic ImageNet folders in both layouts, with a model whose predictions are
fixed by its head (zero kernel, ranked bias), so the expected top-1 / top-5 are known exactly."""

import json
import sys
import types

import numpy as np
import pytest
import scipy.io
from PIL import Image
from safetensors.numpy import save_file

import vit_tf
from conversion.convert import convert
from conversion_helpers import TINY, cli, timm_layout
from vit_tf.evaluation import imagenet_synsets, make_dataset, read_labels

NAME = "deit_tiny_patch16_224.fb_in1k"
# The head always ranks classes 3 > 0 > 1 > 2 > 4 > the rest: top-1 is 3, top-5 is {3, 0, 1, 2, 4}.
BIAS = np.zeros(10, np.float32)
BIAS[[3, 0, 1, 2, 4]] = [5, 4, 3, 2, 1]
# Labels of the 6 images: two of class 3, one of class 0, three of class 7.
LABELS = [7, 3, 0, 7, 3, 7]
TOP1, TOP5 = 100 * 2 / 6, 100 * 3 / 6


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    config = vit_tf.create_model(NAME, **TINY).config
    sd = timm_layout(config)
    sd["head.weight"] = np.zeros_like(sd["head.weight"])
    sd["head.bias"] = BIAS
    save_file(sd, str(root / "forced.safetensors"))
    report = convert(NAME, root / "out", checkpoint=str(root / "forced.safetensors"), parity=False, progress=False,
                     **TINY)
    assert [w.split()[0] for w in report["warnings"]] == ["head.weight"]  # a zero classifier is flagged
    return root / "out"


def write_image(path, seed, size):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if seed == 2:
        image = image.convert("L")  # a grayscale JPEG among them, as in the real validation set
    image.save(path)


SIZES = [(48, 40), (40, 60), (64, 64), (50, 37), (37, 50), (80, 45)]


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("val_folders")
    for i, label in enumerate(LABELS):
        folder = root / imagenet_synsets()[label]
        folder.mkdir(exist_ok=True)
        write_image(folder / f"ILSVRC2012_val_{i + 1:08d}.JPEG", i, SIZES[i])
    return root


@pytest.fixture(scope="module")
def flat(tmp_path_factory):
    """Flat images + the devkit's ground truth (ILSVRC2012_IDs) + a meta.mat mapping those IDs to wnids in an
    order unlike the sorted one (class 7 has ID 1, class 3 ID 2, class 0 ID 3)."""
    root = tmp_path_factory.mktemp("val_flat")
    images = root / "val"
    images.mkdir()
    for i in range(len(LABELS)):
        write_image(images / f"ILSVRC2012_val_{i + 1:08d}.JPEG", i, SIZES[i])
    devkit = root / "ILSVRC2012_devkit_t12" / "data"
    devkit.mkdir(parents=True)
    id_of_class = {7: 1, 3: 2, 0: 3}
    (devkit / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{id_of_class[c]}\n" for c in LABELS))
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height",
              "num_train_images"]
    synsets = np.zeros((4, 1), dtype=[(f, "O") for f in fields])
    rows = [(i, imagenet_synsets()[c], 0) for c, i in id_of_class.items()] + [(1001, "n00001740", 3)]
    for k, (ilsvrc_id, wnid, children) in enumerate(rows):
        synsets[k, 0] = (ilsvrc_id, wnid, "", "", children, np.zeros(0), 0, 0)
    scipy.io.savemat(devkit / "meta.mat", {"synsets": synsets})
    return images, devkit


def run_eval(capsys, *argv):
    assert cli(["eval", *argv, "--quiet"]) == 0
    return json.loads(capsys.readouterr().out)


def test_class_folders_end_to_end(converted, class_folders, capsys, tmp_path):
    out = tmp_path / "result.json"
    result = run_eval(capsys, "--model", converted, "--data", class_folders, "--batch-size", 4, "--output", out)
    assert result["images"] == 6 and result["layout"] == "class_folders"
    assert result["top1"] == pytest.approx(TOP1) and result["top5"] == pytest.approx(TOP5)
    assert result["model"] == NAME and result["preprocessing"]["crop_pct"] == 0.875
    assert json.loads(out.read_text()) == result


def test_flat_devkit_ground_truth_end_to_end(converted, flat, capsys):
    images, devkit = flat
    result = run_eval(capsys, "--model", converted, "--data", images, "--batch-size", 5,
                      "--labels", devkit / "ILSVRC2012_validation_ground_truth.txt")
    assert result["images"] == 6 and result["layout"] == "flat"
    assert result["top1"] == pytest.approx(TOP1) and result["top5"] == pytest.approx(TOP5)

    limited = run_eval(capsys, "--model", converted, "--data", images, "--limit", 2,
                       "--labels", devkit / "ILSVRC2012_validation_ground_truth.txt")
    assert limited["images"] == 2 and limited["complete"] is False
    assert limited["top1"] == pytest.approx(50.0)  # images 1 and 2 are classes 7 and 3


def test_label_files(flat, tmp_path):
    images, devkit = flat
    expected = {i + 1: c for i, c in enumerate(LABELS)}
    assert read_labels(str(devkit / "ILSVRC2012_validation_ground_truth.txt")) == expected
    wnids = tmp_path / "wnids.txt"
    wnids.write_text("".join(imagenet_synsets()[c] + "\n" for c in LABELS))
    assert read_labels(str(wnids)) == expected
    caffe = tmp_path / "val.txt"
    caffe.write_text("".join(f"ILSVRC2012_val_{i + 1:08d}.JPEG {c}\n" for i, c in enumerate(LABELS)))
    assert read_labels(str(caffe)) == expected
    kaggle = tmp_path / "LOC_val_solution.csv"
    kaggle.write_text("ImageId,PredictionString\n" + "".join(
        f"ILSVRC2012_val_{i + 1:08d},{imagenet_synsets()[c]} 1 2 30 40 {imagenet_synsets()[c]} 5 6 7 8\n"
        for i, c in enumerate(LABELS)))
    assert read_labels(str(kaggle)) == expected

    ambiguous = tmp_path / "labels.txt"
    ambiguous.write_text("".join(f"{c}\n" for c in LABELS))
    with pytest.raises(ValueError, match="--label-format"):
        read_labels(str(ambiguous))
    assert read_labels(str(ambiguous), "index") == expected
    no_meta = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    no_meta.write_text("1\n2\n")
    with pytest.raises(FileNotFoundError, match="meta.mat"):
        read_labels(str(no_meta))


def test_pipeline_matches_preprocess(class_folders):
    recipe = vit_tf.Recipe(input_size=(32, 32), crop_pct=0.875, mean=(0.485, 0.456, 0.406),
                           std=(0.229, 0.224, 0.225))
    files = sorted(str(p) for p in class_folders.rglob("*.JPEG"))
    batch, labels = next(iter(make_dataset(files, list(range(len(files))), recipe, batch_size=len(files))))
    np.testing.assert_array_equal(batch.numpy(), vit_tf.preprocess(files, recipe))
    assert labels.numpy().tolist() == list(range(len(files)))


def test_tfds_imagenet2012(converted, class_folders, capsys, monkeypatch):
    """The tensorflow-datasets path with a stand-in for the tfds module (tfds is an optional extra)."""
    import tensorflow as tf

    files = sorted(class_folders.rglob("*.JPEG"))
    labels = [imagenet_synsets().index(p.parent.name) for p in files]

    class Builder:
        info = types.SimpleNamespace(splits={"validation": types.SimpleNamespace(num_examples=len(files))})

        def __init__(self, prepared):
            self.prepared = prepared

        def as_dataset(self, split, shuffle_files, decoders):
            assert split == "validation" and decoders["image"] == "skip"
            if not self.prepared:
                raise AssertionError("Dataset imagenet2012: could not find data")
            return tf.data.Dataset.from_tensor_slices({"image": [p.read_bytes() for p in files],
                                                       "label": np.asarray(labels, np.int64)})

    builders = []

    def builder(name, data_dir=None):
        builders.append((name, data_dir))
        return Builder(prepared=data_dir != "/not/prepared")

    fake = types.SimpleNamespace(builder=builder, decode=types.SimpleNamespace(SkipDecoding=lambda: "skip"))
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    result = run_eval(capsys, "--model", converted, "--data", "tfds:/data/tfds", "--batch-size", 4)
    assert builders == [("imagenet2012", "/data/tfds")]
    assert result["images"] == 6 and result["top1"] == pytest.approx(TOP1) and result["top5"] == pytest.approx(TOP5)

    assert cli(["eval", "--model", converted, "--data", "tfds:/not/prepared", "--quiet"]) == 2
    assert "tfds build imagenet2012" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    assert cli(["eval", "--model", converted, "--data", "tfds", "--quiet"]) == 2
    assert "vit_tf[tfds]" in capsys.readouterr().err


def test_eval_pipeline_reads_stored_pixels_like_timm(tmp_path):
    """Evaluation reads the stored pixel order (no EXIF transpose), as the loaders behind the published numbers;
    `vit_tf.preprocess` applies the orientation by default."""
    from PIL import Image

    from vit_tf.preprocessing import preprocess
    from vit_tf.registry import Recipe

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    recipe = Recipe(input_size=(32, 32), crop_pct=1.0)
    stored = preprocess(str(path), recipe, exif=False)
    upright = preprocess(str(path), recipe)
    batch, _ = next(iter(make_dataset([str(path)], [0], recipe, batch_size=1)))
    np.testing.assert_allclose(batch.numpy(), stored, atol=1e-6)
    assert np.max(np.abs(upright - stored)) > 0.5  # the orientation really changes the input
