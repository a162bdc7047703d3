"""ImageNet-1k top-1 / top-5 evaluation with each weight's own eval recipe.

Class indices follow the sorted WordNet ids (timm, torchvision ImageFolder and tensorflow-datasets order;
`vit_tf/data/imagenet_synsets.txt`). Data sources:
  - class folders: `DATA/n01440764/*.JPEG`, ... (a subset of the 1000 classes is fine: folders are matched by wnid);
  - flat: `DATA/ILSVRC2012_val_00000001.JPEG`, ... with a label file:
      * the devkit's `ILSVRC2012_validation_ground_truth.txt` (one ILSVRC2012_ID in 1..1000 per image; these IDs
        are NOT the sorted-wnid order, so the devkit's `meta.mat` that maps them to wnids is required — it lies
        beside the ground-truth file in `ILSVRC2012_devkit_t12/data/`),
      * one wnid per line (line i = image i), or `FILE wnid` / `FILE index` lines (index in sorted-wnid order,
        as in Caffe's `val.txt`), or Kaggle's `LOC_val_solution.csv`;
  - `tfds` / `tfds:DATA_DIR`: tensorflow-datasets `imagenet2012`, validation split, when it is prepared.
Images are decoded in parallel inside `tf.data` by the same PIL pipeline as `vit_tf.preprocess` (bicubic resize of
the shorter side to floor(size / crop_pct), centre crop, normalise), so numbers match timm's eval transform.
"""

from __future__ import annotations

import csv
import functools
import os
import re
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from .preprocessing import preprocess
from .registry import Recipe

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
_VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})\.(jpe?g|png)$", re.IGNORECASE)
LABEL_FORMATS = ("auto", "devkit", "wnid", "index")
LABEL_FILE_NAMES = ("ILSVRC2012_validation_ground_truth.txt", "LOC_val_solution.csv", "val.txt")


@functools.lru_cache(maxsize=1)
def imagenet_synsets() -> Tuple[str, ...]:
    """The 1000 ImageNet-1k wnids in class-index order (sorted)."""
    path = os.path.join(os.path.dirname(__file__), "data", "imagenet_synsets.txt")
    with open(path, encoding="utf-8") as f:
        return tuple(f.read().split())


def wnid_index(wnid: str, where: str) -> int:
    try:
        return imagenet_synsets().index(wnid)
    except ValueError:
        raise ValueError(f"{where}: {wnid!r} is not an ImageNet-1k wnid") from None


# -- finding images and labels ----------------------------------------------------------------------------------------
def class_folder_images(data: str) -> Tuple[List[str], List[int]]:
    """`DATA/<wnid>/<image>` -> (paths, class indices)."""
    files, labels = [], []
    for wnid in sorted(os.listdir(data)):
        folder = os.path.join(data, wnid)
        if not os.path.isdir(folder):
            continue
        index = wnid_index(wnid, data)
        for name in sorted(os.listdir(folder)):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                files.append(os.path.join(folder, name))
                labels.append(index)
    return files, labels


def devkit_wnids(meta_mat: str) -> Dict[int, str]:
    """ILSVRC2012_ID -> wnid from the devkit's `meta.mat` (the 1000 leaf synsets, num_children == 0)."""
    import scipy.io

    synsets = scipy.io.loadmat(meta_mat, squeeze_me=True)["synsets"]
    return {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}


def read_labels(path: str, label_format: str = "auto", meta: Optional[str] = None) -> Dict[int, int]:
    """Label file -> {validation image number (1-based): class index}. See the module docstring for formats."""
    if label_format not in LABEL_FORMATS:
        raise ValueError(f"label format must be one of {LABEL_FORMATS}, got {label_format!r}")
    if path.lower().endswith(".csv"):  # Kaggle: ImageId,PredictionString ("wnid x0 y0 x1 y1 ...")
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return {_image_number(r["ImageId"], path): wnid_index(r["PredictionString"].split()[0], path) for r in rows}
    with open(path, encoding="utf-8") as f:
        lines = [line.split() for line in f if line.strip()]
    if all(len(parts) == 2 for parts in lines):  # "FILE label"
        return {_image_number(name, path): _class_of(value, "index", path, None) for name, value in lines}
    if not all(len(parts) == 1 for parts in lines):
        raise ValueError(f"{path}: expected one label per line or 'FILE label' lines")
    values = [parts[0] for parts in lines]
    if label_format == "auto":
        if all(v.startswith("n") for v in values):
            label_format = "wnid"
        elif "ground_truth" in os.path.basename(path):
            label_format = "devkit"
        else:
            raise ValueError(f"{path}: integer labels could be devkit ILSVRC2012_IDs (1..1000) or class indices "
                             f"(0..999); say which with --label-format devkit|index")
    id_to_wnid = None
    if label_format == "devkit":
        meta = meta or os.path.join(os.path.dirname(path), "meta.mat")
        if not os.path.isfile(meta):
            raise FileNotFoundError(f"{path} holds devkit ILSVRC2012_IDs, whose order is not the class order; the "
                                    f"devkit's meta.mat maps them and was not found at {meta} (pass --meta)")
        id_to_wnid = devkit_wnids(meta)
    return {i + 1: _class_of(v, label_format, path, id_to_wnid) for i, v in enumerate(values)}


def _class_of(value: str, label_format: str, path: str, id_to_wnid) -> int:
    if value.startswith("n"):
        return wnid_index(value, path)
    number = int(value)
    if label_format == "devkit":
        if number not in id_to_wnid:
            raise ValueError(f"{path}: ILSVRC2012_ID {number} is not in meta.mat")
        return wnid_index(id_to_wnid[number], path)
    if not 0 <= number < 1000:
        raise ValueError(f"{path}: class index {number} is outside 0..999")
    return number


def _image_number(name: str, where: str) -> int:
    match = re.search(r"ILSVRC2012_val_(\d{8})", name)
    if not match:
        raise ValueError(f"{where}: {name!r} is not an ILSVRC2012_val_* image name")
    return int(match.group(1))


def find_label_file(data: str) -> Optional[str]:
    for folder in (data, os.path.dirname(os.path.abspath(data))):
        for name in LABEL_FILE_NAMES:
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
    return None


def flat_images(data: str, labels_path: Optional[str], label_format: str = "auto",
                meta: Optional[str] = None) -> Tuple[List[str], List[int], str]:
    """`DATA/ILSVRC2012_val_*.JPEG` + label file -> (paths, class indices, label file used)."""
    labels_path = labels_path or find_label_file(data)
    if labels_path is None:
        raise FileNotFoundError(f"{data} holds flat ILSVRC2012_val_* images but no label file was given or found "
                                f"(looked for {list(LABEL_FILE_NAMES)} in it and its parent); pass --labels")
    table = read_labels(labels_path, label_format, meta)
    files, labels = [], []
    for name in sorted(os.listdir(data)):
        match = _VAL_NAME.match(name)
        if match:
            number = int(match.group(1))
            if number not in table:
                raise ValueError(f"{labels_path} has no label for {name}")
            files.append(os.path.join(data, name))
            labels.append(table[number])
    return files, labels, labels_path


def find_images(data: str, labels: Optional[str] = None, label_format: str = "auto",
                meta: Optional[str] = None) -> Tuple[List[str], List[int], dict]:
    """Either layout -> (paths, class indices, {"layout", "labels"})."""
    if not os.path.isdir(data):
        raise FileNotFoundError(f"--data {data} is not a directory (or use --data tfds[:DATA_DIR])")
    names = os.listdir(data)
    if any(_VAL_NAME.match(n) for n in names):
        files, classes, used = flat_images(data, labels, label_format, meta)
        info = {"layout": "flat", "labels": used}
    elif any(os.path.isdir(os.path.join(data, n)) for n in names):
        files, classes = class_folder_images(data)
        info = {"layout": "class_folders", "labels": "folder wnids"}
    else:
        raise FileNotFoundError(f"{data} holds neither class folders (n01440764/...) nor ILSVRC2012_val_* images")
    if not files:
        raise FileNotFoundError(f"no images found under {data}")
    return files, classes, info


# -- tf.data ----------------------------------------------------------------------------------------------------------
# No EXIF transpose in evaluation: timm's and the official eval loaders read the stored pixel order, and the
# published accuracies were measured that way.
def _preprocess_file(path: bytes, recipe: Recipe) -> np.ndarray:
    return preprocess(path.decode(), recipe, exif=False)[0]


def _preprocess_bytes(data: bytes, recipe: Recipe) -> np.ndarray:
    return preprocess(bytes(data), recipe, exif=False)[0]


def make_dataset(inputs, labels, recipe: Recipe, batch_size: int, from_bytes: bool = False,
                 num_parallel_calls=None):
    """(paths or encoded images, labels) -> batched tf.data of ((B, H, W, 3) float32, (B,) int32), decoded in
    parallel (`num_parallel_calls`, default AUTOTUNE) by the same PIL code as `vit_tf.preprocess`, with the recipe,
    in input order, prefetched."""
    import tensorflow as tf

    fn = functools.partial(_preprocess_bytes if from_bytes else _preprocess_file, recipe=recipe)
    h, w = recipe.input_size

    def load(x, y):
        image = tf.numpy_function(fn, [x], tf.float32, stateful=False)
        image.set_shape((h, w, 3))
        return image, y

    ds = inputs if labels is None else tf.data.Dataset.from_tensor_slices((inputs, np.asarray(labels, np.int32)))
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    return ds.map(load, num_parallel_calls=parallel, deterministic=True).batch(batch_size) \
        .prefetch(tf.data.AUTOTUNE)


def tfds_dataset(data_dir: Optional[str], recipe: Recipe, batch_size: int):
    """tensorflow-datasets `imagenet2012` validation split -> (dataset, number of images)."""
    import tensorflow as tf
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError("--data tfds needs tensorflow-datasets: pip install 'vit_tf[tfds]'") from e
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    try:
        ds = builder.as_dataset(split="validation", shuffle_files=False,
                                decoders={"image": tfds.decode.SkipDecoding()})
    except (AssertionError, FileNotFoundError, OSError) as e:
        raise FileNotFoundError(
            f"tensorflow-datasets imagenet2012 is not prepared in {data_dir or 'the default TFDS data dir'}: put "
            f"ILSVRC2012_img_val.tar (and _train.tar) in its manual_dir and run `tfds build imagenet2012` ({e})") \
            from e
    total = builder.info.splits["validation"].num_examples
    ds = ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int32)))
    return make_dataset(ds, None, recipe, batch_size, from_bytes=True), total


# -- evaluation -------------------------------------------------------------------------------------------------------
def evaluate(model, dataset, total: int, progress: bool = True, strategy=None) -> dict:
    """Top-1 / top-5 (percent) of `model` over a batched dataset of (images, labels).

    Args:
        model: callable `images -> (logits, attention)` taking `return_attention=False` (a `VisionTransformer`, a
            `vit_tf.SavedModel`); no attention map is computed.
        dataset: batched `tf.data.Dataset` of ((B, H, W, 3) float32, (B,) int32).
        total: number of images (for the progress bar).
        strategy: a `tf.distribute.Strategy` (see `vit_tf.distribute`): batches are split over its replicas and
            the per-image hits gathered, so the counts are those of a single-device run.
    """
    import tensorflow as tf
    from tqdm.auto import tqdm

    from .distribute import distribute_batches, is_chief, replicate_model

    model = replicate_model(model, strategy)

    @tf.function(reduce_retracing=True)
    def step(images, labels):
        logits, _ = model(images, training=False, return_attention=False)
        top5 = tf.math.top_k(logits, k=tf.minimum(5, tf.shape(logits)[-1])).indices
        labels = tf.cast(labels, top5.dtype)
        hit1 = tf.cast(top5[:, 0] == labels, tf.int32)
        hit5 = tf.cast(tf.reduce_any(top5 == labels[:, None], axis=1), tf.int32)
        classes = tf.fill(tf.shape(labels), tf.shape(logits)[-1])
        return hit1, hit5, labels, classes

    correct1 = correct5 = seen = 0
    start = time.perf_counter()
    with tqdm(total=total, unit="img", desc="eval", disable=not progress or not is_chief(strategy)) as bar:
        for images, labels in distribute_batches(strategy, dataset):
            if strategy is None:
                results = step(images, labels)
            else:
                per_replica = strategy.run(step, args=(images, labels))
                results = [strategy.gather(v, axis=0) for v in per_replica]
            hit1, hit5, labels, classes = (np.asarray(v) for v in results)
            if labels.size and labels.max() >= int(classes.max()):
                raise ValueError(f"the model has {int(classes.max())} classes but a label is {labels.max()}")
            correct1 += int(hit1.sum())
            correct5 += int(hit5.sum())
            seen += len(labels)
            bar.update(len(labels))
    seconds = time.perf_counter() - start
    if not seen:
        raise ValueError("no images were evaluated")
    result = {"images": seen, "top1": 100.0 * correct1 / seen, "top5": 100.0 * correct5 / seen,
              "seconds": round(seconds, 3), "images_per_second": round(seen / seconds, 2) if seconds else None}
    if strategy is not None:
        result["replicas"] = int(strategy.num_replicas_in_sync)
    return result


def evaluate_imagenet(model, recipe: Recipe, data: str, batch_size: int = 64, labels: Optional[str] = None,
                      label_format: str = "auto", meta: Optional[str] = None, limit: Optional[int] = None,
                      progress: bool = True, strategy=None) -> dict:
    """Evaluate on ImageNet-1k validation data in any supported layout; returns the result dict (percentages).

    Args:
        model: callable images -> (logits, attention), e.g. a `VisionTransformer`.
        recipe: the weights' eval `Recipe`.
        data: class-folder or flat directory, or "tfds" / "tfds:DATA_DIR".
        batch_size: images per batch.
        labels, label_format, meta: flat layout label file, its format, and the devkit meta.mat.
        limit: evaluate only the first N images (a quick check; not comparable to published numbers).
        strategy: a `tf.distribute.Strategy` to spread the batches over devices or hosts (see `evaluate`).
    """
    if data == "tfds" or data.startswith("tfds:"):
        dataset, total = tfds_dataset(data[5:] or None, recipe, batch_size)
        info = {"layout": "tfds imagenet2012", "labels": "tfds"}
        if limit:
            dataset, total = dataset.unbatch().take(limit).batch(batch_size), min(total, limit)
    else:
        files, classes, info = find_images(data, labels, label_format, meta)
        if limit:
            files, classes = files[:limit], classes[:limit]
        dataset, total = make_dataset(files, classes, recipe, batch_size), len(files)
    result = evaluate(model, dataset, total, progress, strategy)
    result.update(data=data, batch_size=batch_size, preprocessing=recipe.to_dict(), complete=not limit, **info)
    return result
