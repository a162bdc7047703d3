"""Faithfulness of explanation maps: does removing what a map calls relevant change the prediction?

Every test takes maps at patch resolution (B, gh, gw), as `vit_tf.analysis.explain.explain` returns them, and works
on a batch; `CurveMeans` accumulates results over a stream of batches.

Pixel removal (`removal="pixels"`) paints pixels of the model input; the map reaches pixels by `upsample`:
"nearest" repeats each patch's value over its p x p block (the pixels of a patch leave together, patches in map
order, ties broken by patch index, pixels of a patch in row-major order), "bilinear" is Chefer et al.'s
`interpolate(scale_factor=p, mode="bilinear")` (ties by pixel index). Removed pixels take `fill`:
    "zero":  0 in model-input space, i.e. the normalisation mean colour (zero after normalisation);
    a number or 3 numbers: that value per channel in model-input space (`black_fill(recipe)` is Chefer et al.'s
             choice: pixels set to 0 before normalisation, i.e. -mean/std after it);
    "blur":  the image blurred by RISE's Gaussian kernel (11 x 11, sigma 5, zero padding);
    "road":  ROAD's noisy linear imputation (Rong et al. 2022): each removed pixel is the weighted mean of its 8
             neighbours (1/6 direct, 1/12 diagonal; a sparse linear system), plus N(0, 0.01^2) noise.
Token removal (`removal="tokens"`) is the ViT-aware variant: removed patches are dropped from the token sequence
(`forward_token_subset`); prefix tokens always stay, position embeddings stay with their patches.

Tests:
    perturbation_curves  Chefer, Gur & Wolf (CVPR 2021) positive / negative perturbation: remove the top
        ("positive") or bottom ("negative") 10%, ..., 90% of pixels (int(H * W * f) pixels, as their
        pertubation_eval_from_hdf5.py) or of patch tokens (int(N * f)); top-1 accuracy against the labels at each
        step, step 0 the unperturbed input. `perturbation_auc` integrates it.
    insertion_deletion  Petsiuk, Das & Saenko (BMVC 2018, RISE): the target's softmax probability while pixels
        (or tokens) are deleted, most relevant first, towards a substrate ("zero" by default), or inserted into
        the substrate ("blur" by default); `rise_auc`.
    road  Rong et al. (ICML 2022): `perturbation_curves` with noisy linear imputation; MoRF = "positive",
        LeRF = "negative".
    saco  Wu et al. (CVPR 2024): patches ranked by the map, split into K equal groups; each group removed alone;
        pairwise agreement of salience differences with probability drops, weighted by the salience difference.

AUC conventions (tested on hand-computed curves):
    perturbation_auc(accuracy_percent, fractions) = trapezoid rule over the removed fraction x in
        [0, 0.1, ..., 0.9] including x = 0 (the unperturbed accuracy), y in percent: 90 for a curve at 100%, 0 for
        one at 0%. (Chefer et al. report "AUC for erasing 10%-90%"; whether their x-axis includes the unperturbed
        point is not in their code; this one does.)
    rise_auc(scores) = (sum(scores) - (scores[0] + scores[-1]) / 2) / (n - 1): the trapezoid over a [0, 1] axis of
        n equally spaced steps, RISE's `auc`.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Union

import numpy as np

from ._arrays import check_finite, to_numpy
from .engine import compiled, logits_function

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
FILLS = ("zero", "blur", "road")
UPSAMPLING = ("nearest", "bilinear")
REMOVALS = ("pixels", "tokens")
ROAD_NOISE = 0.01


# -- AUCs ----------------------------------------------------------------------------------------------------------
def trapezoid(y, x) -> float:
    """Area under y(x) by the trapezoid rule (x ascending)."""
    y, x = np.asarray(y, np.float64), np.asarray(x, np.float64)
    if y.shape != x.shape or y.ndim != 1:
        raise ValueError(f"y and x must be 1-D of the same length, got {y.shape} and {x.shape}")
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def perturbation_auc(accuracy_percent, fractions=(0.0,) + FRACTIONS) -> float:
    """Chefer et al.'s perturbation AUC: trapezoid of accuracy (percent) over the removed fraction, the unperturbed
    point (fraction 0) included. With the default fractions a constant 100% gives 90.0."""
    return trapezoid(accuracy_percent, fractions)


def rise_auc(scores) -> np.ndarray:
    """RISE's normalised AUC of curves (..., n): (sum - first / 2 - last / 2) / (n - 1)."""
    s = np.asarray(scores, np.float64)
    if s.shape[-1] < 2:
        raise ValueError("a curve needs at least 2 points")
    return (s.sum(-1) - s[..., 0] / 2 - s[..., -1] / 2) / (s.shape[-1] - 1)


# -- the model on a subset of patch tokens --------------------------------------------------------------------------
def _build_subset(model):
    import tensorflow as tf

    def fn(images, keep):
        tokens = model._embed(images, False)
        p = model.config.num_prefix_tokens
        patches = tf.gather(tokens[:, p:], keep, axis=1, batch_dims=1)
        h = tf.concat([tokens[:, :p], patches], axis=1)
        for block in model.blocks:
            h, _ = block(h, training=False, return_attention=False)
        return tf.cast(model.forward_head(model.norm(h))["logits"], tf.float32)
    return fn


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

    c = model.config
    if c.head_type not in ("token", "distilled"):
        raise ValueError(f"token removal supports head types 'token' and 'distilled', not {c.head_type!r}")
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


# -- orders, fills, imputation --------------------------------------------------------------------------------------
def _maps(maps, batch: int, grid) -> np.ndarray:
    m = check_finite("maps", to_numpy(maps, np.float64))
    if m.shape != (batch, *grid):
        raise ValueError(f"maps must be (B, gh, gw) = {(batch, *grid)}, got {m.shape}")
    return m


def patch_order(maps, most_relevant_first: bool = True) -> np.ndarray:
    """(B, gh, gw) -> (B, N) patch indices, highest map value first (or lowest first), ties by patch index."""
    flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
    return np.argsort(-flat if most_relevant_first else flat, axis=-1, kind="stable")


def pixel_order(maps, patch_size: int, upsample: str = "nearest", most_relevant_first: bool = True) -> np.ndarray:
    """(B, gh, gw) -> (B, H * W) row-major pixel indices in removal order (see the module docstring)."""
    if upsample not in UPSAMPLING:
        raise ValueError(f"upsample must be one of {UPSAMPLING}, got {upsample!r}")
    m = np.asarray(maps, np.float64)
    b, gh, gw = m.shape
    p = patch_size
    w = gw * p
    if upsample == "bilinear":
        from .heatmaps import resize_maps

        pixels = resize_maps(m, (gh * p, w)).reshape(b, -1)
        return np.argsort(-pixels if most_relevant_first else pixels, axis=-1, kind="stable")
    ranks = np.empty((b, gh * gw), np.int64)  # rank of each patch in removal order
    np.put_along_axis(ranks, patch_order(m, most_relevant_first), np.arange(gh * gw)[None], axis=-1)
    rows, cols = np.divmod(np.arange(gh * p * w), w)
    patch = (rows // p) * gw + cols // p
    within = (rows % p) * p + cols % p
    return np.argsort(ranks[:, patch] * (p * p) + within[None], axis=-1, kind="stable")


def black_fill(recipe) -> np.ndarray:
    """The model-input value of a black pixel, -mean / std per channel: Chefer et al.'s removal (pixels set to 0
    before normalisation)."""
    return -np.asarray(recipe.mean, np.float64) / np.asarray(recipe.std, np.float64)


def gaussian_blur(images, size: int = 11, sigma: float = 5.0) -> np.ndarray:
    """RISE's insertion substrate: each channel convolved with a normalised size x size Gaussian, zero padding."""
    x = np.asarray(images, np.float64)
    r = np.arange(size) - size // 2
    k = np.exp(-r ** 2 / (2.0 * sigma ** 2))
    k /= k.sum()
    # The 2-D kernel of RISE's gkern is the outer product of this 1-D one, normalised: separable.
    pad = size // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (0, 0), (0, 0)))
    x = sum(k[i] * padded[:, i:i + x.shape[1]] for i in range(size))
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (0, 0)))
    return sum(k[i] * padded[:, :, i:i + x.shape[2]] for i in range(size))


_NEIGHBOURS = ((-1, -1, 1 / 12), (-1, 0, 1 / 6), (-1, 1, 1 / 12), (0, -1, 1 / 6), (0, 1, 1 / 6),
               (1, -1, 1 / 12), (1, 0, 1 / 6), (1, 1, 1 / 12))


def noisy_linear_impute(image, missing, noise: float = ROAD_NOISE, rng=None) -> np.ndarray:
    """ROAD's imputation of one image (H, W, C): every missing pixel equals the weighted mean of its in-image
    neighbours (weights 1/6 direct, 1/12 diagonal, renormalised at borders), solved jointly as a sparse linear
    system (known neighbours on the right-hand side); then N(0, noise^2) is added to the imputed values.

    Args:
        missing: bool (H, W), True where the pixel is replaced; some pixel must stay known.
        rng: a `numpy.random.Generator` (default: seeded with 0).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import spsolve

    img = np.asarray(image, np.float64)
    h, w, c = img.shape
    miss = np.asarray(missing, bool).reshape(-1)
    idx = np.flatnonzero(miss)
    out = img.reshape(-1, c).copy()
    if idx.size == 0:
        return out.reshape(h, w, c)
    if idx.size == miss.size:
        raise ValueError("noisy linear imputation needs at least one known pixel")
    var = np.full(miss.size, -1)
    var[idx] = np.arange(idx.size)
    r, col = np.divmod(idx, w)
    rows, cols, vals = [], [], []
    diagonal = np.zeros(idx.size)
    rhs = np.zeros((idx.size, c))
    for dr, dc, weight in _NEIGHBOURS:
        rr, cc = r + dr, col + dc
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        eq = np.flatnonzero(inside)
        nb = rr[inside] * w + cc[inside]
        diagonal[eq] += weight
        unknown = miss[nb]
        rows.append(eq[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), -weight))
        rhs[eq[~unknown]] += weight * out[nb[~unknown]]  # each equation appears once per offset
    rows.append(np.arange(idx.size))
    cols.append(np.arange(idx.size))
    vals.append(diagonal)
    a = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(idx.size,) * 2)
    solved = spsolve(a.tocsc(), rhs).reshape(idx.size, c)
    rng = np.random.default_rng(0) if rng is None else rng
    out[idx] = solved + noise * rng.standard_normal(solved.shape)
    return out.reshape(h, w, c)


def _substrate(images: np.ndarray, fill) -> Optional[np.ndarray]:
    """The full replacement image for a constant or blur fill (None for "road", which depends on the mask)."""
    if isinstance(fill, str):
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, a number or 3 numbers, got {fill!r}")
        if fill == "zero":
            return np.zeros_like(images)
        if fill == "blur":
            return gaussian_blur(images)
        return None
    value = np.asarray(fill, np.float64)
    if value.shape not in ((), (3,)):
        raise ValueError(f"a fill value must be a number or 3 numbers (per channel), got shape {value.shape}")
    return np.broadcast_to(value, images.shape).copy()


def _painted(images, order, count: int, fill, substrate, seed=0) -> np.ndarray:
    """Images with the first `count` pixels of each row of `order` replaced. ROAD's noise for every image comes
    from `default_rng(seed)`, so an image's result does not depend on the batch it is in."""
    b, h, w, c = images.shape
    mask = np.zeros((b, h * w), bool)
    np.put_along_axis(mask, order[:, :count], True, axis=-1)
    if isinstance(fill, str) and fill == "road":
        return np.stack([noisy_linear_impute(images[i], mask[i].reshape(h, w), rng=np.random.default_rng(seed))
                         for i in range(b)])
    return np.where(mask.reshape(b, h, w, 1), substrate, images)


def _probabilities(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _logits(model, images) -> np.ndarray:
    import tensorflow as tf

    return np.asarray(logits_function(model)(tf.constant(np.asarray(images, np.float32))),
                      np.float64)


def _setup(model, images, maps, removal):
    if removal not in REMOVALS:
        raise ValueError(f"removal must be one of {REMOVALS}, got {removal!r}")
    x = np.asarray(to_numpy(images), np.float64)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got {x.shape}")
    p = model.config.patch_size
    grid = (x.shape[1] // p, x.shape[2] // p)
    return x, _maps(maps, x.shape[0], grid), p, grid


def _classes(values, batch: int, name: str) -> np.ndarray:
    v = np.asarray(values)
    v = np.broadcast_to(v, (batch,)) if v.ndim == 0 else v
    if v.shape != (batch,) or v.dtype.kind not in "iu":
        raise ValueError(f"{name} must be one class index per image ({batch}), got {np.shape(values)}")
    return v.astype(np.int64)


def _kept(order: np.ndarray, count: int) -> np.ndarray:
    """Patches left after removing the first `count` of each row of `order`, in grid order (B, N - count)."""
    return np.sort(order[:, count:], axis=-1)


# -- the tests ------------------------------------------------------------------------------------------------------
def perturbation_curves(model, images, maps, labels, *, targets=None, mode: str = "positive",
                        fractions: Sequence[float] = FRACTIONS, fill: Union[str, float, Sequence[float]] = "zero",
                        upsample: str = "nearest", removal: str = "pixels", seed: int = 0) -> Dict[str, np.ndarray]:
    """Chefer et al.'s perturbation test on a batch (ROAD with `fill="road"`).

    Args:
        model: a `VisionTransformer` (any head for pixels; "token"/"distilled" for tokens).
        images: (B, H, W, 3) preprocessed; maps: (B, gh, gw), larger = more relevant.
        labels: (B,) ground-truth classes (accuracy is measured against them).
        targets: (B,) class whose probability is recorded (default `labels`).
        mode: "positive" removes the most relevant first, "negative" the least relevant first.
        fractions: removed fractions (each in (0, 1)); pixels removed = int(H * W * f), tokens int(N * f).
        fill, upsample: see the module docstring (pixels only). seed: ROAD's noise (`default_rng((seed, step))`
            for every image at each step).
    Returns:
        {"fractions": (S + 1,) with 0.0 first, "predicted": (B, S + 1) int64 top-1 classes, "correct": (B, S + 1)
        bool, "probability": (B, S + 1) softmax probability of `targets`}; column 0 is the unperturbed input.
    """
    if mode not in ("positive", "negative"):
        raise ValueError(f"mode must be 'positive' or 'negative', got {mode!r}")
    fr = [float(f) for f in fractions]
    if any(not 0.0 < f < 1.0 for f in fr):
        raise ValueError(f"fractions must lie in (0, 1), got {fr}")
    x, m, p, grid = _setup(model, images, maps, removal)
    b = x.shape[0]
    labels = _classes(labels, b, "labels")
    targets = labels if targets is None else _classes(targets, b, "targets")
    positive = mode == "positive"
    logits = [_logits(model, x)]
    if removal == "tokens":
        order = patch_order(m, positive)
        n = order.shape[1]
        logits += [forward_token_subset(model, x, _kept(order, int(n * f))) for f in fr]
    else:
        order = pixel_order(m, p, upsample, positive)
        substrate = _substrate(x, fill)
        hw = x.shape[1] * x.shape[2]
        logits += [_logits(model, _painted(x, order, int(hw * f), fill, substrate, (seed, step)))
                   for step, f in enumerate(fr)]
    z = np.stack(logits, axis=1)  # (B, S + 1, classes)
    predicted = z.argmax(-1)
    prob = np.take_along_axis(_probabilities(z), targets[:, None, None], axis=-1)[..., 0]
    return {"fractions": np.asarray([0.0] + fr), "predicted": predicted, "correct": predicted == labels[:, None],
            "probability": prob}


def road(model, images, maps, labels, *, targets=None, mode: str = "positive",
         fractions: Sequence[float] = FRACTIONS, upsample: str = "nearest", seed: int = 0) -> Dict[str, np.ndarray]:
    """ROAD (Rong et al. 2022): `perturbation_curves` with noisy linear imputation; mode "positive" is MoRF (most
    relevant first), "negative" LeRF."""
    return perturbation_curves(model, images, maps, labels, targets=targets, mode=mode, fractions=fractions,
                               fill="road", upsample=upsample, removal="pixels", seed=seed)


def insertion_deletion(model, images, maps, targets, *, mode: str = "deletion", step: Optional[int] = None,
                       substrate: Optional[Union[str, float, Sequence[float]]] = None, upsample: str = "nearest",
                       removal: str = "pixels") -> Dict[str, np.ndarray]:
    """RISE's deletion and insertion games (Petsiuk et al. 2018) on a batch.

    Deletion starts from the image and moves `step` pixels per step, most relevant first, to the substrate;
    insertion starts from the substrate and restores them. With tokens, deletion drops `step` patches per step and
    insertion starts from the prefix tokens alone and adds `step` patches per step.

    Args:
        targets: (B,) class whose softmax probability is scored.
        step: pixels (patches for tokens) per step; default one patch (p * p pixels, or 1 token).
        substrate: "zero" for deletion and "blur" for insertion by default (RISE's choices); any pixel `fill`.
    Returns:
        {"scores": (B, n + 1) probabilities after 0, 1, ..., n steps (n = ceil(total / step)), "auc": (B,)
        `rise_auc`}.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    x, m, p, grid = _setup(model, images, maps, removal)
    b = x.shape[0]
    targets = _classes(targets, b, "targets")
    deleting = mode == "deletion"
    step = (1 if removal == "tokens" else p * p) if step is None else int(step)
    if step < 1:
        raise ValueError(f"step must be at least 1, got {step}")
    scores = []
    if removal == "tokens":
        order = patch_order(m, True)
        n_total = order.shape[1]
        for i in range(math.ceil(n_total / step) + 1):
            count = min(i * step, n_total)
            keep = _kept(order, count) if deleting else np.sort(order[:, :count], axis=-1)
            scores.append(forward_token_subset(model, x, keep))
    else:
        order = pixel_order(m, p, upsample, True)
        n_total = x.shape[1] * x.shape[2]
        fill = substrate if substrate is not None else ("zero" if deleting else "blur")
        if isinstance(fill, str) and fill == "road":
            raise ValueError("insertion/deletion take a constant or blurred substrate, not 'road'")
        other = _substrate(x, fill)
        start, finish = (x, other) if deleting else (other, x)
        for i in range(math.ceil(n_total / step) + 1):
            scores.append(_logits(model, _painted(start, order, min(i * step, n_total), fill, finish)))
    z = np.stack(scores, axis=1)
    s = np.take_along_axis(_probabilities(z), targets[:, None, None], axis=-1)[..., 0]
    return {"scores": s, "auc": rise_auc(s)}


def saco_coefficient(salience, drops) -> np.ndarray:
    """SaCo from group saliences and probability drops, both (B, K) with groups most salient first:
    F = sum_{i<j} sign_ij (s_i - s_j) / sum_{i<j} |s_i - s_j|, sign_ij = +1 if drop_i >= drop_j else -1.
    NaN where every salience difference is 0."""
    s, d = np.asarray(salience, np.float64), np.asarray(drops, np.float64)
    i, j = np.triu_indices(s.shape[-1], k=1)
    diff = s[:, i] - s[:, j]
    signed = np.where(d[:, i] >= d[:, j], diff, -diff)
    total = np.abs(signed).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, signed.sum(-1) / np.where(total > 0, total, 1.0), np.nan)


def saco(model, images, maps, targets, *, groups: int = 10, fill: Union[str, float, Sequence[float]] = "zero",
         removal: str = "pixels") -> Dict[str, np.ndarray]:
    """Salience-guided faithfulness coefficient (Wu et al., CVPR 2024) on a batch.

    Patches are ranked by the map (ties by index) and split into `groups` groups of equal size (sizes differ by at
    most one, larger first); s(G_i) = the map's sum over the group; drop(G_i) = p(target | x) - p(target | x with
    only G_i removed: its pixels painted with `fill`, or its tokens dropped). See `saco_coefficient`.

    Returns:
        {"saco": (B,) in [-1, 1] (NaN when all group saliences are equal), "salience": (B, K), "drops": (B, K)}.
    """
    x, m, p, grid = _setup(model, images, maps, removal)
    b = x.shape[0]
    targets = _classes(targets, b, "targets")
    order = patch_order(m, True)
    n = order.shape[1]
    if not 2 <= groups <= n:
        raise ValueError(f"groups must be in 2..{n} (the number of patches), got {groups}")
    parts = np.array_split(np.arange(n), groups)
    flat = m.reshape(b, -1)
    salience = np.stack([np.take_along_axis(flat, order[:, part], -1).sum(-1) for part in parts], axis=1)
    base = np.take_along_axis(_probabilities(_logits(model, x)), targets[:, None], -1)[:, 0]
    substrate = None if removal == "tokens" else _substrate(x, fill)
    gh, gw = grid
    drops = []
    for part in parts:
        removed = order[:, part]
        if removal == "tokens":
            keep = np.stack([np.setdiff1d(np.arange(n), r) for r in removed])
            z = forward_token_subset(model, x, keep)
        else:
            mask = np.zeros((b, n), bool)
            np.put_along_axis(mask, removed, True, -1)
            pixels = np.repeat(np.repeat(mask.reshape(b, gh, gw), p, 1), p, 2)[..., None]
            if isinstance(fill, str) and fill == "road":
                painted = np.stack([noisy_linear_impute(x[i], pixels[i, ..., 0]) for i in range(b)])
            else:
                painted = np.where(pixels, substrate, x)
            z = _logits(model, painted)
        drops.append(base - np.take_along_axis(_probabilities(z), targets[:, None], -1)[:, 0])
    drops = np.stack(drops, axis=1)
    return {"saco": saco_coefficient(salience, drops), "salience": salience, "drops": drops}


# -- streaming ------------------------------------------------------------------------------------------------------
class CurveMeans:
    """Running sums of per-image values (scalars or curves) under names, over any number of batches; memory is
    one array per name. `add(name, values)` with values (B,) or (B, S); NaNs are skipped (counted per entry)."""

    def __init__(self):
        self._sum: Dict[str, np.ndarray] = {}
        self._count: Dict[str, np.ndarray] = {}

    def add(self, name: str, values) -> None:
        v = np.asarray(values, np.float64)
        finite = np.isfinite(v)
        s = np.where(finite, v, 0.0).sum(0)
        n = finite.sum(0)
        if name in self._sum:
            if self._sum[name].shape != s.shape:
                raise ValueError(f"{name}: shape {s.shape} differs from earlier batches' {self._sum[name].shape}")
            self._sum[name] += s
            self._count[name] += n
        else:
            self._sum[name], self._count[name] = s, n.astype(np.int64)

    def names(self):
        return list(self._sum)

    def count(self, name: str) -> np.ndarray:
        return self._count[name]

    def mean(self, name: str) -> np.ndarray:
        n = self._count[name]
        return np.where(n > 0, self._sum[name] / np.maximum(n, 1), np.nan)
