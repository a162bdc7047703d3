"""The faithfulness tests on a batch: Chefer et al.'s perturbation curves (and ROAD), RISE's insertion and deletion,
and SaCo. Each builds its (image, step) variants as removal-rank ranges and runs them through `Forwards` in batches
of `batch_size` images; see the package docstring for the protocols and conventions."""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Union

import numpy as np

from .._arrays import check_finite, to_numpy
from .forwards import DEFAULT_BATCH_SIZE, Forwards, check_token_head, softmax
from .scores import FRACTIONS, rise_auc, saco_coefficient
from .substrates import noisy_linear_impute, patch_order, pixel_order, removal_ranks
from .substrates import substrate as make_substrate

REMOVALS = ("pixels", "tokens")


# -- checks ---------------------------------------------------------------------------------------------------------
def _setup(model, images, maps, removal):
    if removal not in REMOVALS:
        raise ValueError(f"removal must be one of {REMOVALS}, got {removal!r}")
    x = np.asarray(to_numpy(images), np.float64)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got {x.shape}")
    p = model.config.patch_size
    grid = (x.shape[1] // p, x.shape[2] // p)
    m = check_finite("maps", to_numpy(maps, np.float64))
    if m.shape != (x.shape[0], *grid):
        raise ValueError(f"maps must be (B, gh, gw) = {(x.shape[0], *grid)}, got {m.shape}")
    if removal == "tokens":
        check_token_head(model)
    return x, m, p, grid


def num_classes(model) -> int:
    """The number of classes of `model`'s classifier; a model without one is refused (the tests score class
    probabilities)."""
    n = int(getattr(model.config, "num_classes", 0) or 0)
    if n < 1:
        raise ValueError(f"{getattr(model, 'name', 'the model')} has no classifier (num_classes 0): the faithfulness "
                         f"tests score class probabilities")
    return n


def check_classes(values, batch: int, name: str, classes: int) -> np.ndarray:
    """One class index per image, each in 0..classes - 1 -> (B,) int64. A negative index is refused rather than
    read from the end (-1 is not the last class), as is any index >= classes."""
    v = np.asarray(values)
    v = np.broadcast_to(v, (batch,)) if v.ndim == 0 else v
    if v.shape != (batch,) or v.dtype.kind not in "iu":
        raise ValueError(f"{name} must be one class index per image ({batch}), got {np.shape(values)}")
    bad = np.flatnonzero((v < 0) | (v >= classes))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}: class {int(v[i])} (image {i}) is out of range for a model with {classes} classes; "
                         f"use 0..{classes - 1}")
    return v.astype(np.int64)


def _grid(batch: int, lo, hi):
    """Variants of every image at every step, image-major (row i * S + s) -> (index, lo, hi), each (B * S,)."""
    lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
    return np.repeat(np.arange(batch), len(lo)), np.tile(lo, batch), np.tile(hi, batch)


def _imputed(x, ranks, index, lo, hi, rngs):
    """ROAD's inputs of variants: `make(start, stop)` for `Forwards.inputs` (one sparse solve per variant)."""
    h, w = x.shape[1:3]

    def make(start, stop):
        out = np.empty((stop - start, *x.shape[1:]), np.float32)
        for k, v in enumerate(range(start, stop)):
            i = index[v]
            missing = ((ranks[i] >= lo[v]) & (ranks[i] < hi[v])).reshape(h, w)
            out[k] = noisy_linear_impute(x[i], missing, rng=rngs(v)) if missing.any() else x[i]
        return out
    return make


def _probability(z, targets) -> np.ndarray:
    """logits (B, S, classes) -> (B, S) softmax probability of each image's target."""
    return np.take_along_axis(softmax(z), targets[:, None, None], axis=-1)[..., 0]


# -- the tests ------------------------------------------------------------------------------------------------------
def perturbation_curves(model, images, maps, labels, *, targets=None, mode: str = "positive",
                        fractions: Sequence[float] = FRACTIONS, fill: Union[str, float, Sequence[float]] = "zero",
                        upsample: str = "nearest", removal: str = "pixels", seed: int = 0,
                        batch_size: int = DEFAULT_BATCH_SIZE, strategy=None) -> Dict[str, np.ndarray]:
    """Chefer et al.'s perturbation test on a batch (ROAD with `fill="road"`).

    Args:
        model: a `VisionTransformer` with a classifier (any head for pixels; "token"/"distilled" for tokens).
        images: (B, H, W, 3) preprocessed; maps: (B, gh, gw), larger = more relevant.
        labels: (B,) ground-truth classes in 0..classes - 1 (accuracy is measured against them).
        targets: (B,) class whose probability is recorded (default `labels`), in 0..classes - 1.
        mode: "positive" removes the most relevant first, "negative" the least relevant first.
        fractions: removed fractions (each in (0, 1)); pixels removed = int(H * W * f), tokens int(N * f).
        fill, upsample: see the package docstring (pixels only). seed: ROAD's noise (`default_rng((seed, s))` for
            every image at the s-th fraction, s from 0).
        batch_size: images per forward call (all B * (S + 1) variants are stacked and chunked).
        strategy: a `tf.distribute.Strategy` to split each call over its replicas, or None.
    Returns:
        {"fractions": (S + 1,) with 0.0 first, "predicted": (B, S + 1) int64 top-1 classes, "correct": (B, S + 1)
        bool, "probability": (B, S + 1) softmax probability of `targets`, "forward_images": B * (S + 1), the images
        run through the model}; column 0 is the unperturbed input.
    """
    if mode not in ("positive", "negative"):
        raise ValueError(f"mode must be 'positive' or 'negative', got {mode!r}")
    fr = [float(f) for f in fractions]
    if any(not 0.0 < f < 1.0 for f in fr):
        raise ValueError(f"fractions must lie in (0, 1), got {fr}")
    x, m, p, grid = _setup(model, images, maps, removal)
    b, classes = x.shape[0], num_classes(model)
    labels = check_classes(labels, b, "labels", classes)
    targets = labels if targets is None else check_classes(targets, b, "targets", classes)
    positive = mode == "positive"
    forwards = Forwards(model, batch_size, strategy)
    if removal == "tokens":
        ranks = removal_ranks(patch_order(m, positive))
        counts = [0] + [int(ranks.shape[1] * f) for f in fr]
        z = forwards.tokens(x, ranks, *_grid(b, np.zeros(len(counts)), counts))
    else:
        ranks = removal_ranks(pixel_order(m, p, upsample, positive))
        counts = [0] + [int(ranks.shape[1] * f) for f in fr]
        index, lo, hi = _grid(b, np.zeros(len(counts)), counts)
        other = make_substrate(x, fill)
        if other is None:  # ROAD: the noise of step s (fraction s - 1) is the same for every image
            rngs = lambda v: np.random.default_rng((seed, v % len(counts) - 1))  # noqa: E731
            z = forwards.inputs(len(index), _imputed(x, ranks, index, lo, hi, rngs))
        else:
            z = forwards.painted(x, other, ranks, index, lo, hi)
    z = z.reshape(b, len(counts), -1)
    predicted = z.argmax(-1)
    return {"fractions": np.asarray([0.0] + fr), "predicted": predicted, "correct": predicted == labels[:, None],
            "probability": _probability(z, targets), "forward_images": forwards.images}


def road(model, images, maps, labels, *, targets=None, mode: str = "positive",
         fractions: Sequence[float] = FRACTIONS, upsample: str = "nearest", seed: int = 0,
         batch_size: int = DEFAULT_BATCH_SIZE, strategy=None) -> Dict[str, np.ndarray]:
    """ROAD (Rong et al. 2022): `perturbation_curves` with noisy linear imputation; mode "positive" is MoRF (most
    relevant first), "negative" LeRF. The imputation is a sparse solve per image and step on the host; the forward
    passes are batched."""
    return perturbation_curves(model, images, maps, labels, targets=targets, mode=mode, fractions=fractions,
                               fill="road", upsample=upsample, removal="pixels", seed=seed, batch_size=batch_size,
                               strategy=strategy)


def insertion_deletion(model, images, maps, targets, *, mode: str = "deletion", step: Optional[int] = None,
                       substrate: Optional[Union[str, float, Sequence[float]]] = None, upsample: str = "nearest",
                       removal: str = "pixels", batch_size: int = DEFAULT_BATCH_SIZE,
                       strategy=None) -> Dict[str, np.ndarray]:
    """RISE's deletion and insertion games (Petsiuk et al. 2018) on a batch.

    Deletion starts from the image and moves `step` pixels per step, most relevant first, to the substrate;
    insertion starts from the substrate and restores them. With tokens, deletion drops `step` patches per step and
    insertion starts from the prefix tokens alone and adds `step` patches per step.

    Args:
        targets: (B,) class whose softmax probability is scored, in 0..classes - 1.
        step: pixels (patches for tokens) per step; default one patch (p * p pixels, or 1 token).
        substrate: "zero" for deletion and "blur" for insertion by default (RISE's choices); any pixel `fill`.
        batch_size: images per forward call (the B * (n + 1) variants are stacked and chunked; with tokens, the
            variants of one step share a sequence length and so a call).
        strategy: a `tf.distribute.Strategy` to split each call over its replicas, or None.
    Returns:
        {"scores": (B, n + 1) probabilities after 0, 1, ..., n steps (n = ceil(total / step)), "auc": (B,)
        `rise_auc`, "forward_images": B * (n + 1)}.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    x, m, p, grid = _setup(model, images, maps, removal)
    b = x.shape[0]
    targets = check_classes(targets, b, "targets", num_classes(model))
    deleting = mode == "deletion"
    step = (1 if removal == "tokens" else p * p) if step is None else int(step)
    if step < 1:
        raise ValueError(f"step must be at least 1, got {step}")
    forwards = Forwards(model, batch_size, strategy)
    if removal == "tokens":
        ranks = removal_ranks(patch_order(m, True))
    else:
        ranks = removal_ranks(pixel_order(m, p, upsample, True))
        fill = substrate if substrate is not None else ("zero" if deleting else "blur")
        if isinstance(fill, str) and fill == "road":
            raise ValueError("insertion/deletion take a constant or blurred substrate, not 'road'")
    total = ranks.shape[1]
    counts = np.asarray([min(i * step, total) for i in range(math.ceil(total / step) + 1)])
    # Deletion loses ranks [0, c); insertion shows the substrate where rank >= c.
    lo, hi = (np.zeros_like(counts), counts) if deleting else (counts, np.full_like(counts, total))
    variants = _grid(b, lo, hi)
    if removal == "tokens":
        z = forwards.tokens(x, ranks, *variants)
    else:
        z = forwards.painted(x, make_substrate(x, fill), ranks, *variants)
    s = _probability(z.reshape(b, len(counts), -1), targets)
    return {"scores": s, "auc": rise_auc(s), "forward_images": forwards.images}


def saco(model, images, maps, targets, *, groups: int = 10, fill: Union[str, float, Sequence[float]] = "zero",
         removal: str = "pixels", batch_size: int = DEFAULT_BATCH_SIZE, strategy=None) -> Dict[str, np.ndarray]:
    """Salience-guided faithfulness coefficient (Wu et al., CVPR 2024) on a batch.

    Patches are ranked by the map (ties by index) and split into `groups` groups of equal size (sizes differ by at
    most one, larger first); s(G_i) = the map's sum over the group; drop(G_i) = p(target | x) - p(target | x with
    only G_i removed: its pixels painted with `fill` ("road": imputed with noise from `default_rng(0)`), or its
    tokens dropped). See `saco_coefficient`. `targets` in 0..classes - 1; `batch_size` images per forward call
    (the B * (K + 1) variants are stacked); `strategy` as in `perturbation_curves`.

    Returns:
        {"saco": (B,) in [-1, 1] (NaN when all group saliences are equal), "salience": (B, K), "drops": (B, K),
        "forward_images": B * (K + 1)}.
    """
    x, m, p, grid = _setup(model, images, maps, removal)
    b = x.shape[0]
    targets = check_classes(targets, b, "targets", num_classes(model))
    order = patch_order(m, True)
    n = order.shape[1]
    if not 2 <= groups <= n:
        raise ValueError(f"groups must be in 2..{n} (the number of patches), got {groups}")
    parts = np.array_split(np.arange(n), groups)
    flat = m.reshape(b, -1)
    salience = np.stack([np.take_along_axis(flat, order[:, part], -1).sum(-1) for part in parts], axis=1)
    # Variant 0 of each image is the image itself; variant g + 1 loses group g, the patch ranks [start, stop).
    lo = np.asarray([0] + [part[0] for part in parts])
    hi = np.asarray([0] + [part[-1] + 1 for part in parts])
    forwards = Forwards(model, batch_size, strategy)
    if removal == "tokens":
        z = forwards.tokens(x, removal_ranks(order), *_grid(b, lo, hi))
    else:
        ranks = removal_ranks(pixel_order(m, p, "nearest", True))  # a patch's pixels: ranks [r p^2, (r + 1) p^2)
        index, lo, hi = _grid(b, lo * p * p, hi * p * p)
        other = make_substrate(x, fill)
        if other is None:
            z = forwards.inputs(len(index), _imputed(x, ranks, index, lo, hi, lambda v: np.random.default_rng(0)))
        else:
            z = forwards.painted(x, other, ranks, index, lo, hi)
    prob = _probability(z.reshape(b, groups + 1, -1), targets)
    drops = prob[:, :1] - prob[:, 1:]
    return {"saco": saco_coefficient(salience, drops), "salience": salience, "drops": drops,
            "forward_images": forwards.images}
