"""`convert`: official checkpoint -> SavedModel + `.keras` + config + parity report, proven against timm.

Output directory (written under a temporary name beside it and renamed only when everything passed):
    saved_model/   serving_default: images (B, H, W, 3) float32 -> logits|features, ...; serving_attention: the same
                   plus every transformer_block_{i}_att
    model.keras    the Keras model (loads without custom_objects once vit_tf is imported)
    config.json    {"name", "entry", "config", "preprocessing", "sources": [{path, url, format, sha256}], ...}
    report.json    parity against timm per output and per block, SavedModel and .keras round trips
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from vit_tf.weights import CheckpointError

from vit_tf.download import fetch
from vit_tf.files import atomic_directory, sha256_of
from vit_tf.formats import all_zero_keys, load_checkpoints, read_checkpoint, source_config_fields

from . import reference

logger = logging.getLogger(__name__)

OUTPUT_TOLERANCE = 1e-4  # max abs difference of logits / features to timm
ATTENTION_TOLERANCE = 1e-5  # max abs difference of any attention probability to timm


class ParityError(RuntimeError):
    """The port differs from the reference beyond tolerance; `report` holds the measurements."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


def parity_inputs(img_size, batch: int = 4, seed: int = 0) -> np.ndarray:
    """Deterministic (batch, H, W, 3) inputs in the normalised range: smooth colour fields plus noise, so that the
    attention is neither uniform nor dominated by one patch."""
    rng = np.random.default_rng(seed)
    h, w = img_size
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    images = []
    for _ in range(batch):
        f = rng.uniform(0.5, 3.0, size=(3, 2))
        phase = rng.uniform(0, np.pi, size=3)
        smooth = np.stack([np.sin(f[c, 0] * np.pi * yy + f[c, 1] * np.pi * xx + phase[c]) for c in range(3)], -1)
        images.append(1.5 * smooth + 0.5 * rng.standard_normal((h, w, 3)))
    return np.stack(images).astype(np.float32)


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def top5_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of samples whose top-5 class sets agree."""
    k = min(5, a.shape[-1])
    ta, tb = np.argsort(-a, axis=-1)[:, :k], np.argsort(-b, axis=-1)[:, :k]
    return float(np.mean([set(x) == set(y) for x, y in zip(ta, tb)]))


def _resolve_checkpoints(entry, checkpoint, progress: bool) -> List[dict]:
    """[{"path", "url", "format"}] of the files to convert: the given local file(s) / URL(s), else the registry's."""
    if checkpoint is None:
        from vit_tf.packaged import is_packaged

        if any(is_packaged(s) for s in entry.sources):  # nothing to download or convert: the package holds it
            raise ValueError(f"{entry.name} is read in place from an installed package (vit_tf.packaged), not "
                             f"converted: use the name itself (vit_tf.create_model({entry.name!r}, pretrained=True), "
                             f"--model {entry.name}); its parity with onnxruntime is tests/test_real_weights.py")
        return [{"path": os.fspath(fetch(s, progress=progress)), "url": s.url, "format": s.format}
                for s in entry.sources]
    given = [checkpoint] if isinstance(checkpoint, (str, os.PathLike)) else list(checkpoint)
    files = []
    for item in given:
        item = os.fspath(item)
        if item.startswith(("http://", "https://")):
            declared = next((s for s in entry.sources if s.url == item), None) if entry else None
            source = declared or _AdHocSource(item)
            files.append({"path": os.fspath(fetch(source, progress=progress)), "url": item,
                          "format": declared.format if declared else None})
        else:
            files.append({"path": item, "url": None, "format": None})
    return files


@dataclasses.dataclass(frozen=True)
class _AdHocSource:
    url: str
    sha256: Optional[str] = None


def convert(name: str, output: Union[str, os.PathLike], checkpoint=None, parity: bool = True,
            output_tolerance: float = OUTPUT_TOLERANCE, attention_tolerance: float = ATTENTION_TOLERANCE,
            parity_batch: int = 4, overwrite: bool = False, progress: bool = True, img_size=None,
            **overrides) -> dict:
    """Convert one registry entry's checkpoint and prove it.

    Args:
        name: weight name (`deit_tiny_patch16_224.fb_in1k`), alias, or architecture with default weights.
        output: directory to create.
        checkpoint: local path(s) or URL(s) of the file(s); None downloads the registry's sources into the cache.
            A DINO linear model takes two: backbone and linear head.
        parity: run the timm reference when torch and timm are importable (otherwise it is recorded as skipped).
        output_tolerance, attention_tolerance: max abs differences to timm above which the conversion fails.
        parity_batch: number of deterministic test images.
        overwrite: replace an existing output directory.
        img_size, **overrides: `create_model` overrides (tiny test models, other resolutions).
    Returns:
        the report (also written to `output/report.json`).
    Raises:
        CheckpointError / DownloadError for bad inputs, ParityError above tolerance; no output directory is left.
    """
    import tensorflow as tf
    import keras

    import vit_tf
    from vit_tf.registry import resolve

    output = os.path.abspath(os.fspath(output))
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite (overwrite=True) to replace it")
    arch, entry = resolve(name)
    if entry is None:
        raise ValueError(f"{name!r} has no registered weights, so no eval recipe; use a weight name "
                         f"({vit_tf.list_models(arch + '.*')})")
    files = _resolve_checkpoints(entry, checkpoint, progress)
    checkpoints = [read_checkpoint(f["path"], f["format"]) for f in files]
    # the port behaves like the code its file comes from (position interpolation, ...) unless --set says otherwise
    model = vit_tf.create_model(name, img_size=img_size, **{**source_config_fields(checkpoints), **overrides})
    for f, ckpt in zip(files, checkpoints):
        f["format"] = ckpt.format
        f["sha256"] = sha256_of(ckpt.path)
    load_checkpoints(model, checkpoints)
    warnings = [f"{k} is all zeros in {c.path} (timm notes the 2020 ImageNet-21k release zeroed its classifier); "
                f"its logits carry no information" for c in checkpoints for k in all_zero_keys(c.state_dict)]

    with atomic_directory(output, replace=overwrite) as tmp:
        images = parity_inputs(model.config.img_size, parity_batch)
        keras_outputs, keras_attention = _numpy(model.forward_all(images))
        vit_tf.export_saved_model(model, os.path.join(tmp, "saved_model"))
        model.save(os.path.join(tmp, "model.keras"))
        served = tf.saved_model.load(os.path.join(tmp, "saved_model")).signatures["serving_attention"]
        sm = {k: v.numpy() for k, v in served(images=tf.constant(images)).items()}
        reloaded = keras.saving.load_model(os.path.join(tmp, "model.keras"), compile=False)
        kr_outputs, kr_attention = _numpy(reloaded.forward_all(images))
        ours = {k: v for k, v in sm.items() if not k.endswith("_att")}
        ours_attention = {k: v for k, v in sm.items() if k.endswith("_att")}

        report = {
            "name": entry.name, "architecture": arch, "created": _now(), "vit_tf_version": vit_tf.__version__,
            "config": model.config.to_dict(), "sources": files, "warnings": warnings,
            "inputs": {"batch": parity_batch, "size": list(model.config.img_size), "seed": 0,
                       "kind": "deterministic smooth colour fields + noise, already normalised"},
            "roundtrip": {
                "saved_model_vs_keras": _diffs({**keras_outputs, **keras_attention}, sm),
                "keras_file_vs_keras": _diffs({**keras_outputs, **keras_attention}, {**kr_outputs, **kr_attention}),
                # graph (SavedModel) and eager kernels round differently; the same bounds as against timm
                "tolerance": {"outputs": output_tolerance, "attention": attention_tolerance},
            },
            "parity": _parity(entry, model.config, files, images, ours, ours_attention, parity,
                              output_tolerance, attention_tolerance),
        }
        off = [f"{kind} {k} {v:.3g}" for kind in ("saved_model_vs_keras", "keras_file_vs_keras")
               for k, v in report["roundtrip"][kind].items()
               if not v <= (attention_tolerance if k.endswith("_att") else output_tolerance)]
        if off:
            raise ParityError("the exported model differs from the in-memory one: " + "; ".join(off), report)
        if report["parity"]["status"] == "failed":
            raise ParityError(f"{entry.name}: parity with timm FAILED: " + report["parity"]["summary"], report)
        config = {"name": entry.name, "entry": entry.to_dict(), "config": model.config.to_dict(),
                  "preprocessing": model.recipe.to_dict(), "output_key": model.output_key, "sources": files,
                  "vit_tf_version": vit_tf.__version__, "created": report["created"]}
        _write_json(os.path.join(tmp, "config.json"), config)
        _write_json(os.path.join(tmp, "report.json"), report)
    return report


def _parity(entry, config, files, images, ours, ours_attention, enabled, output_tolerance,
            attention_tolerance) -> dict:
    if not enabled:
        return {"status": "skipped", "reason": "disabled (--no-parity)"}
    ok, reason = reference.available()
    if not ok:
        return {"status": "skipped", "reason": reason}
    import timm

    model, head = reference.load_reference(config, [(f["path"], f["format"]) for f in files])
    ref, ref_attention = reference.run_reference(model, head, images)
    outputs = {k: max_abs(ours[k], v) for k, v in ref.items()}
    attention = {k: max_abs(ours_attention[k], v) for k, v in ref_attention.items()}
    main = "logits" if "logits" in ref else "features"
    result = {
        "status": "passed", "reference": f"timm {timm.__version__}",
        "tolerance": {"outputs": output_tolerance, "attention": attention_tolerance},
        "outputs_max_abs_diff": outputs, "attention_max_abs_diff": attention,
        "attention_max_abs_diff_overall": max(attention.values()),
    }
    if main == "logits":
        result["top5_agreement"] = top5_agreement(ours["logits"], ref["logits"])
    bad = [f"{k} {v:.3g} > {output_tolerance:g}" for k, v in outputs.items() if not v <= output_tolerance]
    bad += [f"{k} {v:.3g} > {attention_tolerance:g}" for k, v in attention.items() if not v <= attention_tolerance]
    if result.get("top5_agreement", 1.0) < 1.0:
        bad.append(f"top-5 agreement {result['top5_agreement']:.3f} < 1")
    if bad:
        result["status"] = "failed"
    result["summary"] = "; ".join(bad) if bad else (
        f"max |diff| {main} {outputs[main]:.2e}, attention {result['attention_max_abs_diff_overall']:.2e}")
    return result


def _numpy(pair):
    outputs, attention = pair
    return {k: np.asarray(v) for k, v in outputs.items()}, {k: np.asarray(v) for k, v in attention.items()}


def _diffs(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray]) -> Dict[str, float]:
    if set(a) != set(b):
        raise ParityError(f"exported outputs {sorted(b)} differ from the model's {sorted(a)}", {})
    return {k: max_abs(a[k], b[k]) for k in sorted(a)}


def _write_json(path: str, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write("\n")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def convert_all(output_root: Union[str, os.PathLike], names: Optional[Sequence[str]] = None, **kwargs) -> dict:
    """Convert every registry entry (or `names`) into `output_root/<name>`; returns {name: "ok" | error}.
    Entries already converted are kept unless `overwrite=True`."""
    from vit_tf.registry import WEIGHTS

    results = {}
    for name in names or sorted(WEIGHTS):
        out = os.path.join(os.fspath(output_root), name)
        if os.path.isdir(out) and not kwargs.get("overwrite"):
            results[name] = "exists"
            continue
        try:
            report = convert(name, out, **kwargs)
            results[name] = f"ok (parity {report['parity']['status']})"
        except (CheckpointError, ParityError, OSError, ValueError, ImportError) as e:
            logger.error("%s: %s", name, e)
            results[name] = f"error: {e}"
    return results
