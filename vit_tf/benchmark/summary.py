"""Summaries of a `BenchmarkResult`: per method and metric the mean over images with its standard error and a 95 %
interval (Student's t with n - 1 degrees of freedom; NaN images left out, n counts the rest), the sanity curves
(mean per step), one CSV row per method and a JSON-ready dict of everything."""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, List

import numpy as np

from .explanations import BETTER, FAMILIES, BenchmarkResult


def describe(values) -> Dict[str, float]:
    """{"mean", "se", "ci_low", "ci_high", "n"} of the finite values of a 1-D array: se = sd (ddof 1) / sqrt(n);
    the interval mean -/+ t(0.975, n - 1) se. NaN where undefined (no value: all; one value: se and interval)."""
    from scipy.stats import t

    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    n = int(v.size)
    mean = float(v.mean()) if n else math.nan
    se = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    half = float(t.ppf(0.975, n - 1) * se) if n > 1 else math.nan
    return {"mean": mean, "se": se, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def summarise(result: BenchmarkResult) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{source: {metric: describe(per-image values)}} for every metric of every family."""
    return {name: {metric: describe(result.scores[name][metric]) for family in FAMILIES.values()
                   for metric in family} for name in result.methods}


def sanity_curves(result: BenchmarkResult) -> Dict[str, Dict[str, dict]]:
    """{mode: {source: {"steps": [names], measure: [mean over images per step]}}}."""
    out = {}
    for mode, per in result.sanity.items():
        out[mode] = {name: {"steps": list(r.steps), **{k: v.tolist() for k, v in r.means().items()}}
                     for name, r in per.items()}
    return out


def csv_table(result: BenchmarkResult) -> List[list]:
    """Rows of the CSV: a header (method, images, then `metric` and `metric_se` for each metric), then one row per
    method with means and standard errors ("nan" where undefined)."""
    metrics = [m for family in FAMILIES.values() for m in family]
    header = ["method", "images"] + [c for m in metrics for c in (m, f"{m}_se")]
    rows = [header]
    summary = summarise(result)
    for name in result.methods:
        row = [name, len(result.labels)]
        for m in metrics:
            s = summary[name][m]
            row += [_number(s["mean"]), _number(s["se"])]
        rows.append(row)
    return rows


def _number(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.6f}"


def _json_value(x):
    """NumPy arrays and scalars -> lists / floats with NaN as None (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): _json_value(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_value(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_value(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(float(x)) else None
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    return x


def to_json(result: BenchmarkResult, **extra) -> dict:
    """Everything, JSON-ready (NaN -> null): settings, timings, accuracy, the summary, the per-image scores, every
    map, the sanity results (per step and image, with the randomised maps) and `extra` (e.g. the model's report)."""
    sanity = {mode: {name: {"steps": list(r.steps), "targets": r.targets, "spearman": r.spearman,
                            "spearman_abs": r.spearman_abs, "ssim": r.ssim, "original_maps": r.original,
                            "randomised_maps": r.randomised}
                     for name, r in per.items()} for mode, per in result.sanity.items()}
    data = {**extra, "settings": dataclasses.asdict(result.settings), "seconds": result.seconds,
            "methods": list(result.methods), "images": len(result.labels), "accuracy": result.accuracy,
            "labels": result.labels, "predicted": result.predicted,
            "metrics": {family: list(names) for family, names in FAMILIES.items()},
            "higher_is_better": {m: BETTER[m] > 0 for m in BETTER},
            "summary": summarise(result), "sanity_curves": sanity_curves(result), "per_image": result.scores,
            "maps": result.maps, "sanity": sanity}
    return _json_value(data)


__all__ = ["csv_table", "describe", "sanity_curves", "summarise", "to_json"]
