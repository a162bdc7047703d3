"""Open saved models: our converted directories and SavedModels, and the artifacts of the keras.io example
"Investigating Vision Transformer representations" (sayakpaul/probing-vits): zipped SavedModels on Google Drive
and TF-Hub handles, whose models return `[logits, {"transformer_block_{i}_att": ...}]`.

Every loader returns a callable `images -> (outputs, attention_scores)`.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, Tuple

import numpy as np

from .download import atomic_directory, cache_home, sha256_of

logger = logging.getLogger(__name__)

_ATTENTION_KEY = re.compile(r"transformer_block_(\d+)_att")
_DRIVE_ID = re.compile(r"^[A-Za-z0-9_-]{20,}$")
_DRIVE_URL = re.compile(r"https?://drive\.google\.com/")

# Drive ids of the keras.io example's zipped SavedModels (as published in the example).
KERAS_IO_DRIVE_IDS = {
    "vit_base_i21k_patch16_224": "1mbtnliT3jRb3yJUHhbItWw8unfYZw8KJ",
    "vit_base_i1k_patch16_224": "1ApOdYe4NXxhPhJABefgZ3KVvqsQzhCL7",
    "vit_dino_base16": "16_1oDm0PeCGJ_KGBG5UKVN7TsAtiRNrN",
}


class UnsafeArchiveError(ValueError):
    """A zip entry would be written outside the extraction directory."""


def load(path_or_handle):
    """Open a saved model; see `vit_tf.load`.

    Args:
        path_or_handle: a directory written by `vit-tf convert`; a SavedModel directory; a `.zip` holding one; a
            Google Drive file id or link (`gdrive:<id>` forces that reading); a TF-Hub handle (`https://tfhub.dev/...`,
            `https://www.kaggle.com/models/...`, or `hub:<handle>`).
    Returns:
        a callable `images (B, H, W, 3) float32 -> (outputs, attention_scores)`; a converted directory gives the
        `VisionTransformer` itself.
    """
    handle = os.fspath(path_or_handle)
    if os.path.isdir(handle):
        if os.path.isfile(os.path.join(handle, "config.json")) and os.path.isfile(os.path.join(handle, "model.keras")):
            return load_converted(handle)
        return SavedModelRunner(find_saved_model(Path(handle)))
    if os.path.isfile(handle):
        if zipfile.is_zipfile(handle):
            return SavedModelRunner(find_saved_model(extract_zip(Path(handle))))
        raise ValueError(f"{handle} is neither a directory nor a zip archive holding a SavedModel")
    if handle.startswith("gdrive:") or _DRIVE_URL.match(handle) or _DRIVE_ID.match(handle):
        return SavedModelRunner(find_saved_model(extract_zip(fetch_drive(handle))))
    if handle.startswith("hub:") or handle.startswith(("http://", "https://")):
        return load_hub(handle[len("hub:"):] if handle.startswith("hub:") else handle)
    raise FileNotFoundError(f"{handle!r} is not an existing path, a Google Drive id or a TF-Hub handle")


def load_converted(directory: str):
    """`DIR/model.keras` of `vit-tf convert`, with `.entry` (registry entry or None) and `.recipe` attached."""
    from vit_tf.commands.common import load_model
    from vit_tf.registry import WEIGHTS

    model, recipe, info = load_model(directory)
    model.recipe, model.entry = recipe, WEIGHTS.get(info["name"])
    return model


# -- zip archives -----------------------------------------------------------------------------------------------------
def safe_members(archive: zipfile.ZipFile, target: Path):
    """The archive's members, refusing absolute paths, `..`, drive letters and symlinks that would escape
    `target` (the "zip slip")."""
    root = target.resolve()
    for info in archive.infolist():
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
        dest = (root / Path(*parts)).resolve() if parts else root
        if name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name) or is_link \
                or (dest != root and root not in dest.parents):
            raise UnsafeArchiveError(f"refusing zip entry {name!r}: it would be written outside {target}")
        yield info


def extract_zip(path: Path) -> Path:
    """Extract `path` once into `$VIT_TF_HOME/legacy/<stem>-<digest>/` (temporary name, then rename)."""
    digest = sha256_of(path)[:12]
    target = cache_home() / "legacy" / f"{path.stem}-{digest}"
    if target.is_dir():
        return target
    with atomic_directory(target, replace=True) as tmp, zipfile.ZipFile(path) as archive:
        members = list(safe_members(archive, Path(tmp)))  # check every entry before writing any
        archive.extractall(tmp, members=members)
    return target


def find_saved_model(root: Path) -> Path:
    """The one directory under `root` (itself included, at most 3 levels down) that holds `saved_model.pb`."""
    found = sorted({p.parent for p in root.glob("saved_model.pb")} | {p.parent for p in root.glob("*/saved_model.pb")}
                   | {p.parent for p in root.glob("*/*/saved_model.pb")}
                   | {p.parent for p in root.glob("*/*/*/saved_model.pb")})
    if not found:
        raise FileNotFoundError(f"no SavedModel (saved_model.pb) under {root}")
    if len(found) > 1:
        raise ValueError(f"{root} holds several SavedModels: {[str(p) for p in found]}; pass one of them")
    return found[0]


# -- Google Drive and TF-Hub ------------------------------------------------------------------------------------------
def fetch_drive(handle: str) -> Path:
    """Download a Google Drive file with gdown into `$VIT_TF_HOME/legacy/gdrive/` (once)."""
    try:
        import gdown
    except ImportError as e:
        raise ImportError(f"{handle!r} is not an existing path; as a Google Drive id it needs gdown: "
                          f"pip install 'vit_tf[legacy]'") from e
    handle = handle[len("gdrive:"):] if handle.startswith("gdrive:") else handle
    match = re.search(r"/d/([A-Za-z0-9_-]+)|[?&]id=([A-Za-z0-9_-]+)", handle)
    file_id = (match.group(1) or match.group(2)) if match else handle
    dest = cache_home() / "legacy" / "gdrive" / f"{file_id}.zip"
    if dest.is_file() and zipfile.is_zipfile(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        result = gdown.download(id=file_id, output=str(tmp), quiet=False)
        if not result or not tmp.is_file():
            raise OSError(f"gdown could not download Google Drive file {file_id}; download it by hand and pass the "
                          f"zip path to vit_tf.load")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def load_hub(handle: str):
    """A TF-Hub (or Kaggle Models) handle, resolved and cached by tensorflow_hub."""
    try:
        import tensorflow_hub as hub
    except ImportError as e:
        raise ImportError("loading a TF-Hub handle needs tensorflow_hub: pip install 'vit_tf[legacy]'") from e
    return SavedModelRunner(Path(hub.resolve(handle)))


# -- running a SavedModel ---------------------------------------------------------------------------------------------
class SavedModelRunner:
    """Call a SavedModel with the `(outputs, attention_scores)` contract.

    Uses the restored `__call__` when the SavedModel has one (Keras 2 models such as the keras.io example's: it
    returns `[outputs, {name: attention}]`), else the `serving_default` signature, whose flat outputs are split
    into attention (`transformer_block_{i}_att`) and the rest (`logits`, else `features`, else the only other one).

    Attributes:
        path: the SavedModel directory.
        signature_outputs: the signature's output names, when the signature is used.
    """

    def __init__(self, path: Path):
        import tensorflow as tf

        self.path = Path(path)
        self.module = tf.saved_model.load(str(self.path))
        self._call = getattr(self.module, "__call__", None)
        if self._call is not None and not hasattr(self._call, "concrete_functions"):
            self._call = None
        if self._call is not None and not self._call.concrete_functions:
            self._call = None
        self.signature = None if self._call is not None else self._signature()

    def _signature(self):
        signatures = getattr(self.module, "signatures", {})
        if "serving_default" not in signatures:
            raise ValueError(f"{self.path} has neither a callable model nor a serving_default signature")
        fn = signatures["serving_default"]
        _, kwargs = fn.structured_input_signature
        if len(kwargs) != 1:
            raise ValueError(f"{self.path}: serving_default takes {sorted(kwargs)}; expected one image input")
        self.input_name = next(iter(kwargs))
        return fn

    def __call__(self, images, training: bool = False) -> Tuple[object, Dict[str, object]]:
        import tensorflow as tf

        images = tf.convert_to_tensor(np.asarray(images, np.float32) if not tf.is_tensor(images) else images)
        if self._call is not None:
            try:
                result = self._call(images, training=training)
            except (TypeError, ValueError):
                result = self._call(images)  # functions saved without a `training` argument
            return split_outputs(result)
        return split_outputs(self.signature(**{self.input_name: images}))


def split_outputs(result) -> Tuple[object, Dict[str, object]]:
    """A model's raw result -> (outputs, {"transformer_block_{i}_att": ...} in block order)."""
    if isinstance(result, (list, tuple)) and len(result) == 2 and isinstance(result[1], dict):
        outputs, attention = result
    elif isinstance(result, dict):
        attention = {k: v for k, v in result.items() if _ATTENTION_KEY.search(k)}
        rest = {k: v for k, v in result.items() if k not in attention}
        if "logits" in rest:
            outputs = rest["logits"]
        elif "features" in rest:
            outputs = rest["features"]
        elif len(rest) == 1:
            outputs = next(iter(rest.values()))
        else:
            raise ValueError(f"cannot tell the main output among {sorted(rest)}")
    else:
        raise ValueError(f"the model returned {type(result).__name__}; expected [outputs, attention dict] or a dict")
    named = {}
    for key, value in attention.items():
        match = _ATTENTION_KEY.search(key)
        if not match:
            raise ValueError(f"attention output {key!r} is not named transformer_block_<i>_att")
        named[int(match.group(1))] = value
    return outputs, {f"transformer_block_{i}_att": named[i] for i in sorted(named)}
