"""Forward passes of perturbed inputs, batched: every (image, step) variant of a faithfulness test is described by
its image and the range of removal ranks it loses, and the variants run through one compiled function per model
in chunks of `batch_size` images, with the perturbed inputs built inside the graph.

A variant (i, lo, hi) is image i with the pixels (or patch tokens) whose removal rank r satisfies lo <= r < hi
removed. Deletion of c pixels is (0, c), insertion of c pixels into a substrate is (c, H * W), SaCo's group g is
(start_g, end_g). Pixels are painted with `tf.where(rank mask, substrate, image)`; patch tokens are dropped by a
gather of the kept ones, in grid order. ROAD's imputed images are made on the host (a sparse solve per variant) and
only their forward passes are batched.

With a `tf.distribute` strategy every chunk is split over the replicas (consecutive slices; ROAD variants are
imputed only by the worker whose replica runs them) and the logits are gathered back in order, so a distributed
run gives the single-device numbers up to float32 rounding of the smaller per-replica batches.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np

from .._arrays import to_numpy
from ..engine import compiled, logits_function

DEFAULT_BATCH_SIZE = 64
_REPLICAS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {id(strategy): (strategy, copy)}


def forward_logits(model, images) -> np.ndarray:
    """float64 logits (B, classes) of images (B, H, W, 3): the model's compiled forward (`logits_function`)."""
    import tensorflow as tf

    return np.asarray(logits_function(model)(tf.constant(np.asarray(images, np.float32))), np.float64)


def softmax(logits) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


# -- the compiled functions ----------------------------------------------------------------------------------------
def _blocks_and_head(model, tokens):
    """Tokens (B, T, D) after the embedding -> float32 logits (B, classes): every block, final norm, head."""
    import tensorflow as tf

    return tf.cast(model.forward_tokens(tokens)["logits"], tf.float32)


def _build_subset(model):
    import tensorflow as tf

    def fn(images, keep):
        tokens = model.embed(images)
        p = model.config.num_prefix_tokens
        patches = tf.gather(tokens[:, p:], keep, axis=1, batch_dims=1)
        return _blocks_and_head(model, tf.concat([tokens[:, :p], patches], axis=1))
    return fn


def _build_painted(model):
    import tensorflow as tf

    def fn(images, substrate, ranks, index, lo, hi):
        # images, substrate (B, H, W, 3); ranks (B, H * W); index, lo, hi (V,): variant v is image index[v] with
        # the pixels of rank in [lo[v], hi[v]) taken from the substrate.
        r = tf.gather(ranks, index)
        removed = (r >= lo[:, None]) & (r < hi[:, None])
        shape = tf.shape(images)
        removed = tf.reshape(removed, (-1, shape[1], shape[2], 1))
        x = tf.where(removed, tf.gather(substrate, index), tf.gather(images, index))
        return tf.cast(model(x, training=False, return_attention=False)[0], tf.float32)
    return fn


def _build_tokens(model):
    import tensorflow as tf

    def fn(images, ranks, kept, index, lo, hi):
        # ranks (B, N) patch ranks; every variant keeps the same number `kept` of patches (one sequence length).
        tokens = model.embed(tf.gather(images, index))
        p = model.config.num_prefix_tokens
        r = tf.gather(ranks, index)
        keep = (r < lo[:, None]) | (r >= hi[:, None])
        columns = tf.reshape(tf.where(keep)[:, 1], (tf.shape(keep)[0], kept))  # row-major: grid order per image
        patches = tf.gather(tokens[:, p:], columns, axis=1, batch_dims=1)
        return _blocks_and_head(model, tf.concat([tokens[:, :p], patches], axis=1))
    return fn


def check_token_head(model):
    c = model.config
    if c.head_type not in ("token", "distilled"):
        raise ValueError(f"token removal supports head types 'token' and 'distilled', not {c.head_type!r}")


def forward_token_subset(model, images, keep) -> np.ndarray:
    """Logits of the model run on a subset of its patch tokens: embed (patches + position embeddings, prefix
    tokens) -> keep the prefix tokens and the patches `keep` -> every block -> final norm -> head.

    Args:
        model: a `VisionTransformer` with head type "token" or "distilled".
        images: (B, H, W, 3) preprocessed.
        keep: (B, K) or (K,) indices of the patches kept (row-major over the grid, 0 <= i < gh * gw); K may be 0.
    Returns:
        float64 logits (B, classes). With every patch kept in order, equal to `model(images)`'s.
    """
    import tensorflow as tf

    check_token_head(model)
    c = model.config
    x = np.asarray(to_numpy(images), np.float32)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got {x.shape}")
    b = x.shape[0]
    n = (x.shape[1] // c.patch_size) * (x.shape[2] // c.patch_size)
    keep = np.asarray(keep, np.int64)
    if keep.ndim == 1:
        keep = np.broadcast_to(keep, (b, keep.shape[0]))
    if keep.ndim != 2 or keep.shape[0] != b:
        raise ValueError(f"keep must be (B, K) or (K,), got {keep.shape} for {b} images")
    if keep.size and (keep.min() < 0 or keep.max() >= n):
        raise ValueError(f"keep holds patch indices outside 0..{n - 1}")
    logits = compiled(model, "subset", _build_subset)(tf.constant(x), tf.constant(np.ascontiguousarray(keep)))
    return np.asarray(logits, np.float64)


# -- running variants -----------------------------------------------------------------------------------------------
def on_strategy(model, strategy):
    """`model` with its variables mirrored under `strategy`: itself when built in the strategy's scope (or no
    strategy), else a copy made once per (model, strategy) by `vit_tf.distribute.replicate_model`."""
    if strategy is None:
        return model
    weights = model.weights
    if weights and strategy.extended.variable_created_in_scope(getattr(weights[0], "value", weights[0])):
        return model
    copies = _REPLICAS.setdefault(model, {})
    if id(strategy) not in copies:
        from ...distribute import replicate_model

        copies[id(strategy)] = (strategy, replicate_model(model, strategy))
    return copies[id(strategy)][1]


class Forwards:
    """Runs variants of a batch through a model's compiled forward, `batch_size` images per call (split over the
    replicas of `strategy` when one is given), and counts the images it ran (`images`): the forward passes a test
    needs. `batch_size` bounds the variants held at once, so memory does not grow with the number of steps."""

    def __init__(self, model, batch_size: int = DEFAULT_BATCH_SIZE, strategy=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
        self.model = on_strategy(model, strategy)
        self.batch_size = int(batch_size)
        self.strategy = strategy
        self.images = 0

    def _compiled(self, name: str, build):
        """The compiled function of `build` on the model; with a strategy, one that runs it on every replica and
        gathers the outputs in replica order, traced as a whole (an eager `strategy.gather` would retrace per
        call)."""
        if self.strategy is None:
            return compiled(self.model, name, build)
        strategy, inner = self.strategy, compiled(self.model, name, build)

        def build_distributed(model):
            def fn(*args):
                return strategy.gather(strategy.run(inner, args=args), axis=0)
            return fn
        return compiled(self.model, name + "/distributed", build_distributed)

    def _run(self, fn, shared, count: int, make, arity: int) -> np.ndarray:
        """`fn(*shared, *make(start, stop))` over variants 0..count in chunks -> float64 (count, classes)."""
        import tensorflow as tf

        if count == 0:
            return np.zeros((0, 0))
        outputs = []
        for start in range(0, count, self.batch_size):
            stop = min(count, start + self.batch_size)
            if self.strategy is None:
                out = fn(*shared, *[tf.constant(a) for a in make(start, stop)])
            else:
                r = self.strategy.num_replicas_in_sync
                bounds = [start + (stop - start) * k // r for k in range(r + 1)]
                parts = {}

                def value(context, j):
                    k = context.replica_id_in_sync_group
                    if k not in parts:  # each replica's slice is made once, by the worker that runs it
                        parts[k] = make(bounds[k], bounds[k + 1])
                    return tf.constant(parts[k][j])

                split = [self.strategy.experimental_distribute_values_from_function(functools.partial(value, j=j))
                         for j in range(arity)]
                out = fn(*shared, *split)
            outputs.append(np.asarray(out, np.float64))
            self.images += stop - start
        return np.concatenate(outputs)

    def painted(self, images, substrate, ranks, index, lo, hi) -> np.ndarray:
        """Variants (index[v], lo[v], hi[v]) painted with `substrate` (B, H, W, 3) by pixel `ranks` (B, H * W)
        -> float64 logits (V, classes)."""
        import tensorflow as tf

        shared = (tf.constant(np.asarray(images, np.float32)), tf.constant(np.asarray(substrate, np.float32)),
                  tf.constant(np.asarray(ranks, np.int32)))
        split = [np.asarray(a, np.int32) for a in (index, lo, hi)]
        return self._run(self._compiled("faithfulness/painted", _build_painted), shared, len(split[0]),
                         lambda a, b: [s[a:b] for s in split], 3)

    def tokens(self, images, ranks, index, lo, hi) -> np.ndarray:
        """Variants (index[v], lo[v], hi[v]) with the patch tokens of rank in [lo, hi) dropped (patch `ranks`
        (B, N)) -> float64 logits (V, classes). Variants keeping equally many tokens share calls."""
        import tensorflow as tf

        check_token_head(self.model)
        index, lo, hi = (np.asarray(a, np.int32) for a in (index, lo, hi))
        fn = self._compiled("faithfulness/tokens", _build_tokens)
        x, r = tf.constant(np.asarray(images, np.float32)), tf.constant(np.asarray(ranks, np.int32))
        n = np.asarray(ranks).shape[1]
        kept = n - (hi - lo)
        out = None
        for k in np.unique(kept)[::-1]:
            chosen = np.flatnonzero(kept == k)
            split = [index[chosen], lo[chosen], hi[chosen]]
            z = self._run(fn, (x, r, tf.constant(int(k), tf.int32)), len(chosen),
                          lambda a, b, s=split: [t[a:b] for t in s], 3)
            if out is None:
                out = np.empty((len(index), z.shape[1]))
            out[chosen] = z
        return out

    def inputs(self, count: int, make) -> np.ndarray:
        """`count` variants whose inputs `make(start, stop)` builds on the host ((stop - start, H, W, 3)) -> float64
        logits (count, classes)."""
        fn = self._compiled("faithfulness/inputs", logits_function)  # the model's own compiled forward
        return self._run(fn, (), count, lambda a, b: [np.asarray(make(a, b), np.float32)], 1)
