"""The data-randomisation model of Adebayo et al. 2018 for the composite classifier: the same frozen features and the
same training code (`vit_tf.composites.classifier.train_head`), but the training labels shuffled by a seeded
permutation. A head that fits shuffled labels has learned nothing about the objects, so maps that still point at
them do not depend on what the model learned.

The training split is rebuilt from the classifier's report (seed, sizes, image size) with `make_composites`, its
class-token features computed by `class_token_features`, exactly as `composite_classifier` does; the folded head
goes into a copy of the model. The features are cached under `$VIT_TF_HOME/explain_benchmark/` (one .npz per
composites cache key, written atomically, read with allow_pickle=False; a bad file is logged and rebuilt), since they
cost a forward pass per training image.
"""

from __future__ import annotations

import logging
import os
from typing import Tuple

import numpy as np

logger = logging.getLogger(__name__)


def _features_path(report: dict) -> str:
    from ..download import cache_home

    key = os.path.basename(str(report.get("cache") or "")) or "uncached"
    size, seed, n = report["image_size"], report["seed"], report["sizes_per_class"]["train"]
    return os.path.join(os.fspath(cache_home()), "explain_benchmark", f"{key}-train-{seed}-{n}-{size}.npz")


def _cached_features(path: str, count: int, dim: int):
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            features = np.asarray(data["features"], np.float32)
        if features.shape != (count, dim) or not np.all(np.isfinite(features)):
            raise ValueError(f"features of shape {features.shape}, expected ({count}, {dim})")
        return features
    except Exception as e:  # truncated zip, wrong shape: computed again
        logger.warning("shuffled-label features %s are unreadable (%s: %s); computing them again", path,
                       type(e).__name__, e)
        return None


def _save_features(path: str, features: np.ndarray):
    from ..files import atomic_file

    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with atomic_file(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, features=features)
    except OSError as e:  # a read-only cache only costs the features next time
        logger.warning("could not cache the shuffled-label features in %s: %s", path, e)


def shuffled_label_model(classifier, seed: int = 0, cache: bool = True, progress: bool = False) -> Tuple[object, dict]:
    """A copy of the composite classifier's model whose head is trained on the training composites with shuffled
    labels.

    Args:
        classifier: a `vit_tf.composites.CompositeClassifier` (its report gives the seed, sizes and image size).
        seed: seed of the label permutation (`numpy.random.default_rng(seed).permutation`).
        cache: read / write the training features under `$VIT_TF_HOME/explain_benchmark/`.
        progress: a progress bar while the features are computed.
    Returns:
        (model, report): the copy (`VisionTransformer`, same architecture and backbone weights, the shuffled head),
        and {"seed", "train_accuracy" against the shuffled labels, "test_accuracy" against the true test labels,
        "label_agreement": share of training labels the permutation left in place, "final_loss",
        "features_from_cache"}.
    """
    from ..composites.classifier import accuracy, class_token_features, preprocess_composites, train_head
    from ..composites.dataset import make_composites
    from ..model import VisionTransformer

    model, report = classifier.model, classifier.report
    train = make_composites("train", report["sizes_per_class"]["train"], report["seed"], report["image_size"])
    path = _features_path(report)
    features = _cached_features(path, len(train), model.config.embed_dim) if cache else None
    from_cache = features is not None
    if features is None:
        features = class_token_features(model, preprocess_composites(train.images, model.recipe), progress)
        if cache:
            _save_features(path, features)
    shuffled = np.random.default_rng(int(seed)).permutation(train.labels).astype(np.int32)
    kernel, bias, loss = train_head(features, shuffled, len(classifier.class_names))
    copy = VisionTransformer.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    copy.head.kernel.assign(kernel)
    copy.head.bias.assign(bias)
    test_features = class_token_features(copy, classifier.images)
    return copy, {"seed": int(seed), "train_accuracy": accuracy(features, shuffled, kernel, bias),
                  "test_accuracy": accuracy(test_features, classifier.labels, kernel, bias),
                  "label_agreement": float(np.mean(shuffled == train.labels)), "final_loss": loss,
                  "features_from_cache": from_cache}


__all__ = ["shuffled_label_model"]
