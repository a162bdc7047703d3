"""The step-by-step faithfulness tests as they were before the steps were batched (one forward call per step, inputs
painted in NumPy): the oracle that `vit_tf.analysis.faithfulness`'s batched tests must equal. Built only from the
package's public pieces (orders, substrates, imputation, the token-subset forward) and `logits_function`."""

from __future__ import annotations

import math

import numpy as np

from vit_tf.analysis import faithfulness as F


def logits(model, images):
    return F.forward_logits(model, images)


def _painted(images, order, count, fill, substrate, seed=0):
    b, h, w, c = images.shape
    mask = np.zeros((b, h * w), bool)
    np.put_along_axis(mask, order[:, :count], True, axis=-1)
    if isinstance(fill, str) and fill == "road":
        return np.stack([F.noisy_linear_impute(images[i], mask[i].reshape(h, w), rng=np.random.default_rng(seed))
                         for i in range(b)])
    return np.where(mask.reshape(b, h, w, 1), substrate, images)


def _kept(order, count):
    return np.sort(order[:, count:], axis=-1)


def perturbation_curves(model, images, maps, labels, *, targets=None, mode="positive", fractions=F.FRACTIONS,
                        fill="zero", upsample="nearest", removal="pixels", seed=0):
    x = np.asarray(images, np.float64)
    labels = np.asarray(labels)
    targets = labels if targets is None else np.asarray(targets)
    p = model.config.patch_size
    positive = mode == "positive"
    z = [logits(model, x)]
    if removal == "tokens":
        order = F.patch_order(maps, positive)
        n = order.shape[1]
        z += [F.forward_token_subset(model, x, _kept(order, int(n * f))) for f in fractions]
    else:
        order = F.pixel_order(maps, p, upsample, positive)
        substrate = F.substrate(x, fill)
        hw = x.shape[1] * x.shape[2]
        z += [logits(model, _painted(x, order, int(hw * f), fill, substrate, (seed, step)))
              for step, f in enumerate(fractions)]
    z = np.stack(z, axis=1)
    prob = np.take_along_axis(F.softmax(z), targets[:, None, None], axis=-1)[..., 0]
    return {"predicted": z.argmax(-1), "probability": prob}


def insertion_deletion(model, images, maps, targets, *, mode="deletion", step=None, substrate=None,
                       upsample="nearest", removal="pixels"):
    x = np.asarray(images, np.float64)
    p = model.config.patch_size
    deleting = mode == "deletion"
    step = (1 if removal == "tokens" else p * p) if step is None else step
    scores = []
    if removal == "tokens":
        order = F.patch_order(maps, True)
        n_total = order.shape[1]
        for i in range(math.ceil(n_total / step) + 1):
            count = min(i * step, n_total)
            keep = _kept(order, count) if deleting else np.sort(order[:, :count], axis=-1)
            scores.append(F.forward_token_subset(model, x, keep))
    else:
        order = F.pixel_order(maps, p, upsample, True)
        n_total = x.shape[1] * x.shape[2]
        fill = substrate if substrate is not None else ("zero" if deleting else "blur")
        other = F.substrate(x, fill)
        start, finish = (x, other) if deleting else (other, x)
        for i in range(math.ceil(n_total / step) + 1):
            scores.append(logits(model, _painted(start, order, min(i * step, n_total), fill, finish)))
    z = np.stack(scores, axis=1)
    return {"predicted": z.argmax(-1),
            "scores": np.take_along_axis(F.softmax(z), np.asarray(targets)[:, None, None], axis=-1)[..., 0]}


def saco(model, images, maps, targets, *, groups=10, fill="zero", removal="pixels"):
    x = np.asarray(images, np.float64)
    b = x.shape[0]
    p = model.config.patch_size
    gh, gw = maps.shape[1:]
    targets = np.asarray(targets)
    order = F.patch_order(maps, True)
    n = order.shape[1]
    parts = np.array_split(np.arange(n), groups)
    prob = lambda z: np.take_along_axis(F.softmax(z), targets[:, None], -1)[:, 0]  # noqa: E731
    base = prob(logits(model, x))
    substrate = None if removal == "tokens" else F.substrate(x, fill)
    drops = []
    for part in parts:
        removed = order[:, part]
        if removal == "tokens":
            z = F.forward_token_subset(model, x, np.stack([np.setdiff1d(np.arange(n), r) for r in removed]))
        else:
            mask = np.zeros((b, n), bool)
            np.put_along_axis(mask, removed, True, -1)
            pixels = np.repeat(np.repeat(mask.reshape(b, gh, gw), p, 1), p, 2)[..., None]
            if isinstance(fill, str) and fill == "road":
                painted = np.stack([F.noisy_linear_impute(x[i], pixels[i, ..., 0]) for i in range(b)])
            else:
                painted = np.where(pixels, substrate, x)
            z = logits(model, painted)
        drops.append(base - prob(z))
    return {"drops": np.stack(drops, axis=1)}
