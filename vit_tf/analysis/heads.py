"""Attention heads: importance (Michel, Levy & Neubig 2019, "Are Sixteen Heads Really Better than One?"; official
code: pmichel31415/are-16-heads-really-better-than-1), the effect of removing each head alone, and the entropy of
each head's attention.

- Importance: every head h is given a gate xi_h multiplying its attention probabilities (our models' `head_mask`,
  all ones); I_h = E_x |dL(x)/dxi_h| (paper, Eq. 2), the expectation over examples x of the absolute per-example
  gradient, then divided by the L2 norm of its block's row (paper, Sec. 4.1 "layer-wise normalisation"). The
  official code takes the absolute value of the gradient of a whole batch's loss instead; per example is the paper's
  formula and does not depend on the batch size. Per-example gradients come from one backward pass: the gate
  multiplies the maps A that mix the values, so dL_b/dxi_h = sum_{q,k} dL/dA'_{b,h,q,k} A_{b,h,q,k} with A' = xi A
  (at xi = 1 the returned maps are A' = A), and examples do not interact in a ViT at inference. Each batch checks
  that these per-example values sum to the gradient of the batch loss in the gate.
- Ablation: accuracy with head h removed (its gate 0, every other head kept) minus accuracy with all heads (paper,
  Sec. 3.2 and Table 1). Without labels, "accuracy" is agreement with the unmasked model's top-1 (so the baseline
  is 1) and the loss above is the cross-entropy against that top-1. The 1 + depth x heads variants of a batch run
  as stacked rows (image, mask) with per-row head masks (B, depth, heads), `ablation_batch_size` rows per forward
  call, in one traced loop.
- Entropy: see `attention_entropy`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Iterable, Iterator, Optional, Tuple

import numpy as np

from ._arrays import check_finite, is_single_block, named_blocks, to_numpy

QUERIES = ("all", "patches", "cls")


# -- entropy: a pure function of the maps -----------------------------------------------------------------------------
def _query_range(queries: str, num_tokens: int, num_prefix_tokens: int) -> Tuple[int, int]:
    if not 0 <= num_prefix_tokens < num_tokens:
        raise ValueError(f"num_prefix_tokens={num_prefix_tokens} does not fit {num_tokens} tokens")
    if queries == "all":
        return 0, num_tokens
    if queries == "patches":
        return num_prefix_tokens, num_tokens
    if queries == "cls":
        if num_prefix_tokens < 1:
            raise ValueError("queries='cls' needs a class token (num_prefix_tokens >= 1)")
        return 0, 1
    raise ValueError(f"queries must be one of {QUERIES}, got {queries!r}")


def attention_entropy(attention, *, num_prefix_tokens: int, queries: str = "all") -> np.ndarray:
    """Mean entropy of the attention rows, in nats, per image, block and head.

    For each query token q, its row a_q over all T keys (prefix tokens included) is a probability distribution;
    H(q) = -sum_k p_qk ln p_qk with p_q = a_q / sum_k a_qk and 0 ln 0 = 0; the result is the mean of H(q) over the
    chosen queries. Uniform attention over T keys gives ln T, attention to a single key 0. Rows are renormalised so
    that a head scaled by a `head_mask` factor keeps its entropy; an all-zero row (a removed head) counts as 0.

    Args:
        attention: one block (B, heads, T, T), our models' dict, a list of blocks, or (B, blocks, heads, T, T).
        num_prefix_tokens: leading non-patch tokens (class, distillation, registers).
        queries: "all" (every token's row), "patches" (patch queries only) or "cls" (the class token's row).
    Returns:
        float64 (B, heads) for one block, (B, blocks, heads) for several.
    """
    single = is_single_block(attention)
    out = []
    for name, a in named_blocks(attention):
        check_finite(name, a)
        start, stop = _query_range(queries, a.shape[-1], num_prefix_tokens)
        rows = a[:, :, start:stop].astype(np.float64)
        if (rows < 0).any():
            raise ValueError(f"{name}: attention has negative values; pass softmax probabilities")
        mass = rows.sum(axis=-1, keepdims=True)
        p = np.divide(rows, mass, out=np.zeros_like(rows), where=mass > 0)
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        out.append(-plogp.sum(axis=-1).mean(axis=-1))  # (B, heads)
    return out[0] if single else np.stack(out, axis=1)


def _entropy_tf(a, start: int, stop: int):
    """`attention_entropy` of one block in TensorFlow (in the forward pass): (B, heads, T, T) -> (B, heads)."""
    import tensorflow as tf

    rows = tf.cast(a[:, :, start:stop], tf.float64)
    mass = tf.reduce_sum(rows, axis=-1, keepdims=True)
    p = tf.math.divide_no_nan(rows, mass)
    plogp = tf.where(p > 0, p * tf.math.log(tf.where(p > 0, p, tf.ones_like(p))), tf.zeros_like(p))
    return -tf.reduce_mean(tf.reduce_sum(plogp, axis=-1), axis=-1)


# -- the model-driving part -------------------------------------------------------------------------------------------
@dataclasses.dataclass
class HeadResult:
    """Per-head results over a dataset; every matrix is (depth, heads) float64.

    Attributes:
        importance: E|dL/dxi_h| divided by its block's L2 norm (Michel et al.), or None if not computed.
        importance_raw: E|dL/dxi_h| before the normalisation.
        ablation: change of the metric (a fraction: -0.02 is two points lost) when the head alone is removed.
        baseline: the metric with every head (accuracy, or 1.0 for agreement).
        metric: "accuracy" (labels given) or "agreement" (with the unmasked top-1).
        entropy, entropy_std: mean and population std over images of `attention_entropy` (nats).
        uniform_entropy: ln T of the last batch's token count (the entropy of uniform attention over all keys).
        images: number of images; queries: the entropy's query tokens.
    """

    importance: Optional[np.ndarray]
    importance_raw: Optional[np.ndarray]
    ablation: Optional[np.ndarray]
    baseline: Optional[float]
    metric: str
    entropy: Optional[np.ndarray]
    entropy_std: Optional[np.ndarray]
    uniform_entropy: Optional[float]
    images: int
    queries: str = "all"


def _normalize_rows(raw: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(raw, axis=-1, keepdims=True)
    return np.divide(raw, norm, out=np.zeros_like(raw), where=norm > 0)


class HeadStatistics:
    """Head importance, ablation and attention entropy accumulated batch by batch (each batch is seen once: one
    forward and backward pass for importance and entropy, then 1 + depth x heads forward passes for ablation).

    Args:
        model: a `VisionTransformer` with a classifier (importance and ablation need logits; entropy alone works
            without one).
        importance, ablation, entropy: what to compute.
        queries: the entropy's query tokens (see `attention_entropy`).

    Call `update(images, labels=None)` per batch (labels: (B,) class indices, or None to use the unmasked top-1),
    then `result()`. All batches must either have labels or not.
    """

    def __init__(self, model, *, importance: bool = True, ablation: bool = True, entropy: bool = True,
                 queries: str = "all", ablation_batch_size: int = 64):
        from .distance import RunningMoments

        c = model.config
        if queries not in QUERIES:
            raise ValueError(f"queries must be one of {QUERIES}, got {queries!r}")
        if (importance or ablation) and not c.num_classes:
            raise ValueError(f"{model.name} has no classifier (num_classes 0): head importance and ablation need "
                             f"logits; attention entropy works without them")
        self.model, self.depth, self.heads = model, c.depth, c.num_heads
        self.num_prefix_tokens, self.num_classes = c.num_prefix_tokens, c.num_classes
        self.options = dict(importance=importance, ablation=ablation, entropy=entropy)
        self.queries = queries
        if ablation_batch_size < 1:
            raise ValueError(f"ablation_batch_size must be at least 1, got {ablation_batch_size}")
        self.ablation_batch_size = int(ablation_batch_size)
        self.labelled: Optional[bool] = None
        self.count = 0
        self._importance = np.zeros((self.depth, self.heads))
        self._entropy = RunningMoments()
        self._tokens: Optional[int] = None
        self._hits_base = 0
        self._hits = np.zeros((self.depth, self.heads), np.int64)

    def _step(self, kind: str, images, *options):
        """The traced step `kind` for this image size, kept on the model (`engine.compiled`), so that every
        `HeadStatistics` of the same model and options reuses it; traced once for every batch size (the batch axis
        is None in its signature), so a short last batch costs no second trace."""
        import tensorflow as tf

        from .engine import compiled

        spec = tf.TensorSpec((None, *images.shape[1:]), tf.float32)
        if kind == "gradients":
            key = ("heads:gradients", *images.shape[1:3], *options, self.options["entropy"], self.queries)
            fn = functools.partial(self._gradients, use_labels=options[0], with_gradients=options[1])
            signature = [spec, tf.TensorSpec((None,), tf.int32)]
        else:
            key = ("heads:ablation", *images.shape[1:3], self.ablation_batch_size)
            fn, signature = self._ablation_hits, [spec, tf.TensorSpec((None,), tf.int32)]
        return compiled(self.model, repr(key), lambda model: fn, input_signature=signature)

    # -- traced steps --------------------------------------------------------------------------------------------
    def _gradients(self, images, labels, use_labels: bool, with_gradients: bool):
        """-> {"per_example": (B, depth, heads) dL_b/dxi, "gate": (depth, heads) gradient of the batch's summed
        loss (with gradients); "entropy": (B, depth, heads), "tokens": T (with entropy)}."""
        import tensorflow as tf

        from ..model import attention_key

        gate = tf.ones((self.depth, self.heads), tf.float32)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(gate)
            logits, attention = self.model(images, training=False, return_attention=True, head_mask=gate)
            maps = [attention[attention_key(i)] for i in range(self.depth)]
            if with_gradients:
                target = labels if use_labels else tf.argmax(logits, axis=-1, output_type=tf.int32)
                losses = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.stop_gradient(target),
                                                                        tf.cast(logits, tf.float32))
                total = tf.reduce_sum(losses)
        result = {}
        if with_gradients:
            grads = tape.gradient(total, [gate] + maps)
            if any(g is None for g in grads):
                raise RuntimeError("the returned attention maps are not the tensors that mix the values: "
                                   "per-example head gradients cannot be read from them")
            # dL_b/dxi_h = sum_qk dL/dA' * A (A' = xi A, xi = 1): one backward pass gives every example's gradient.
            result["per_example"] = tf.stack([tf.reduce_sum(g * a, axis=(2, 3)) for g, a in zip(grads[1:], maps)],
                                             axis=1)
            result["gate"] = grads[0]
        if self.options["entropy"]:
            t = maps[0].shape[-1]
            start, stop = _query_range(self.queries, t, self.num_prefix_tokens)
            result["entropy"] = tf.stack([_entropy_tf(a, start, stop) for a in maps], axis=1)
            result["tokens"] = tf.shape(maps[0])[-1]
        return result

    def _ablation_hits(self, images, target):
        """-> (1 + depth * heads,) int32 hits: variant 0 keeps every head, variant 1 + l * heads + h removes head h
        of block l. Rows (variant, image) run `ablation_batch_size` at a time with per-row head masks."""
        import tensorflow as tf

        b = tf.shape(images)[0]
        variants = 1 + self.depth * self.heads
        n_rows = variants * b
        size = self.ablation_batch_size

        def body(start, hits):
            r = tf.range(start, tf.minimum(start + size, n_rows))
            variant, image = r // b, r % b  # variant-major rows
            removed = tf.one_hot(variant - 1, self.depth * self.heads, dtype=tf.float32)  # variant 0: none
            masks = tf.reshape(1.0 - removed, (-1, self.depth, self.heads))
            logits, _ = self.model(tf.gather(images, image), training=False, return_attention=False, head_mask=masks)
            hit = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), tf.gather(target, image)),
                          tf.int32)
            return start + size, hits + tf.math.unsorted_segment_sum(hit, variant, variants)

        _, hits = tf.while_loop(lambda start, hits: start < n_rows, body,
                                (tf.constant(0), tf.zeros((variants,), tf.int32)), parallel_iterations=1)
        return hits

    # -- accumulation --------------------------------------------------------------------------------------------
    def update(self, images, labels=None) -> "HeadStatistics":
        """Add one batch: images (B, H, W, 3) preprocessed, labels (B,) class indices or None. Returns self."""
        import tensorflow as tf

        x = tf.convert_to_tensor(to_numpy(images, np.float32))
        b = int(x.shape[0])
        if b == 0:
            return self
        labelled = labels is not None
        if self.labelled is not None and labelled != self.labelled:
            raise ValueError("some batches have labels and others do not")
        self.labelled = labelled
        y = None
        if labelled:
            y = to_numpy(labels).astype(np.int64).reshape(-1)
            if len(y) != b:
                raise ValueError(f"{len(y)} labels for {b} images")
            if y.min() < 0 or y.max() >= self.num_classes:
                raise ValueError(f"labels must be class indices in 0..{self.num_classes - 1}, got {y.min()}.."
                                 f"{y.max()} (the model has {self.num_classes} classes)")
            y = tf.constant(y.astype(np.int32))
        else:
            y = tf.zeros((b,), tf.int32)  # unused: the target is the top-1
        grads = self.options["importance"]
        if grads or self.options["entropy"]:
            out = self._step("gradients", x, labelled, grads)(x, y)
            if grads:
                per_example = out["per_example"].numpy().astype(np.float64)  # (B, depth, heads)
                gate = out["gate"].numpy().astype(np.float64)
                summed = per_example.sum(axis=0)
                if not np.allclose(summed, gate, rtol=1e-3, atol=1e-4 * max(np.abs(gate).max(), 1e-12)):
                    raise RuntimeError(f"per-example head gradients do not add up to the batch gradient "
                                       f"(max difference {np.abs(summed - gate).max():.3g}): the model's returned "
                                       f"maps are not the probabilities that mix the values")
                self._importance += np.abs(per_example).sum(axis=0)
            if self.options["entropy"]:
                self._entropy.update(out["entropy"].numpy())
                self._tokens = int(out["tokens"])
        if self.options["ablation"]:
            if labelled:
                target = y
            else:  # agreement with the unmasked top-1
                logits, _ = self.model(x, training=False, return_attention=False)
                target = tf.argmax(logits, axis=-1, output_type=tf.int32)
            hits = self._step("ablation", x)(x, target).numpy()
            self._hits_base += int(hits[0])
            self._hits += hits[1:].reshape(self.depth, self.heads)
        self.count += b
        return self

    def result(self) -> HeadResult:
        if not self.count:
            raise ValueError("no images yet")
        n = self.count
        raw = self._importance / n if self.options["importance"] else None
        ablation = baseline = None
        if self.options["ablation"]:
            baseline = self._hits_base / n
            ablation = (self._hits - self._hits_base) / n
        entropy = std = uniform = None
        if self.options["entropy"]:
            entropy, std = self._entropy.mean, self._entropy.std
            if self._tokens is not None:
                uniform = float(np.log(self._tokens))
        return HeadResult(None if raw is None else _normalize_rows(raw), raw, ablation, baseline,
                          "accuracy" if self.labelled else "agreement", entropy, std, uniform, n, self.queries)


def labelled_batches(batches: Iterable, labels=None) -> Iterator[Tuple[object, Optional[np.ndarray]]]:
    """(images, labels or None) per batch from: an iterable or `tf.data.Dataset` of images or of (images, labels)
    pairs, and optionally `labels`, a flat sequence of class indices for every image in order."""
    flat = None if labels is None else to_numpy(labels).reshape(-1)
    used = 0
    for item in batches:
        if isinstance(item, (tuple, list)):
            images, y = item[0], (item[1] if len(item) > 1 else None)
        else:
            images, y = item, None
        b = int(images.shape[0]) if hasattr(images, "shape") else len(images)
        if flat is not None:
            if y is not None:
                raise ValueError("labels are given twice: in the batches and as labels=")
            if used + b > len(flat):
                raise ValueError(f"labels= holds {len(flat)} labels, fewer than the images")
            y = flat[used:used + b]
        used += b
        yield images, (None if y is None else to_numpy(y))
    if flat is not None and used != len(flat):
        raise ValueError(f"labels= holds {len(flat)} labels for {used} images")


def head_statistics(model, batches, labels=None, *, importance: bool = True, ablation: bool = True,
                    entropy: bool = True, queries: str = "all", ablation_batch_size: int = 64,
                    on_batch: Optional[Callable[[int], None]] = None) -> HeadResult:
    """Importance, ablation and entropy of every head over a dataset in one pass over the batches.

    Args:
        model: a `VisionTransformer` (with a classifier for importance and ablation).
        batches: iterable or `tf.data.Dataset` of preprocessed images (B, H, W, 3) or of (images, labels).
        labels: class indices of all images in order, or None (then labels from the batches, or none: agreement
            with the unmasked top-1).
        importance, ablation, entropy, queries: what to compute (see `HeadStatistics`).
        ablation_batch_size: (mask, image) rows per forward call of the ablation.
        on_batch: called with each batch's number of images.
    Returns:
        `HeadResult`.
    """
    stats = HeadStatistics(model, importance=importance, ablation=ablation, entropy=entropy, queries=queries,
                           ablation_batch_size=ablation_batch_size)
    for images, y in labelled_batches(batches, labels):
        stats.update(images, y)
        if on_batch is not None:
            on_batch(int(np.shape(images)[0]))
    return stats.result()


def head_importance(model, batches, labels=None, *, normalize: bool = True) -> np.ndarray:
    """Michel et al.'s head importance E_x |dL(x)/dxi_h| (module docstring), (depth, heads) float64; with `normalize`
    each block's row has unit L2 norm. The loss is the cross-entropy against `labels` (or the batches' labels), or
    against the unmasked top-1 without labels."""
    r = head_statistics(model, batches, labels, importance=True, ablation=False, entropy=False)
    return r.importance if normalize else r.importance_raw


def head_ablation(model, batches, labels=None, *, batch_size: int = 64) -> np.ndarray:
    """(depth, heads) float64: accuracy with the head alone removed minus accuracy with every head, as a fraction of
    the images (agreement with the unmasked top-1 without labels). Negative: the head helps. `batch_size`: (mask,
    image) rows per forward call."""
    return head_statistics(model, batches, labels, importance=False, ablation=True, entropy=False,
                           ablation_batch_size=batch_size).ablation


__all__ = ["HeadResult", "HeadStatistics", "QUERIES", "attention_entropy", "head_ablation", "head_importance",
           "head_statistics", "labelled_batches"]
