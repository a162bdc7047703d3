"""Scores of the faithfulness tests from their curves: the AUC conventions (trapezoid over the removed fraction for
Chefer et al.'s perturbation test, RISE's normalised AUC), SaCo's coefficient, and running means over a stream of
batches (`CurveMeans`). Pure NumPy; tested on hand-computed curves."""

from __future__ import annotations

from typing import Dict

import numpy as np

FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


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
