"""Dataset runs over several devices and hosts with `tf.distribute`.

  - "mirrored": `MirroredStrategy` over the local devices (every GPU, or the CPU);
  - "multiworker": `MultiWorkerMirroredStrategy` across hosts, each host described by `TF_CONFIG` (cluster of
    workers and this task's index); every worker runs the same command and reads the same data, of which it keeps
    its shard (`AutoShardPolicy.DATA`).

Per-image results are gathered from every replica (`strategy.gather`), so reductions over the dataset are exact:
a distributed run gives the numbers of a single-device one within float32 rounding.
"""

from __future__ import annotations

import json
import os
from typing import Optional

STRATEGIES = ("none", "mirrored", "multiworker")


def make_strategy(name: Optional[str]):
    """A `tf.distribute.Strategy` by name ("mirrored", "multiworker"), or None for "none"/None.

    "multiworker" needs `TF_CONFIG`; it must be created before any other TensorFlow work in the process.
    """
    if name in (None, "none"):
        return None
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {name!r}")
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    config = os.environ.get("TF_CONFIG")
    if not config:
        raise ValueError("--strategy multiworker needs TF_CONFIG (the cluster's workers and this task's index), "
                         "e.g. TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
                         "\"task\": {\"type\": \"worker\", \"index\": 0}}'")
    try:
        json.loads(config)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy) -> bool:
    """True for the worker that writes outputs (task 0, or any single-host run)."""
    if strategy is None:
        return True
    resolver = getattr(strategy, "cluster_resolver", None)
    task_id = getattr(resolver, "task_id", None) if resolver is not None else None
    return not task_id


def distribute_batches(strategy, dataset):
    """A batched `tf.data.Dataset` -> what to iterate: the dataset itself, or its distributed form whose global
    batches are split over the replicas (each worker keeping its shard of the data)."""
    if strategy is None:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def replicate_model(model, strategy):
    """`model` rebuilt under `strategy.scope()` with the same weights (mirrored variables), or `model` itself (no
    strategy, or a SavedModel, whose variables are read where they live)."""
    if strategy is None:
        return model
    from .factory import rebuild
    from .model import VisionTransformer

    return rebuild(model, strategy=strategy) if isinstance(model, VisionTransformer) else model
