"""Open saved models — the one loading path for every saved artifact.

- a directory written by `vit-tf convert` (`model.keras` + `config.json`), or a `.keras` file -> `VisionTransformer`
  with its `recipe` (a truncated or corrupt `.keras` file is named as such);
- a Hugging Face checkpoint directory -> `VisionTransformer` running as transformers does (`vit_tf.hf.from_hf`);
- any SavedModel directory, or a `.zip` holding one (ours, or the keras.io example "Investigating Vision
  Transformer representations" (sayakpaul/probing-vits), whose models return `[logits, {"transformer_block_{i}_att":
  ...}]`) -> `SavedModel`;
- a Google Drive id or link (the example's zips), a TF-Hub handle, or a keras.io alias with a Drive id;
- a registry name -> `create_model(name, pretrained=True)`.

Every result is a callable `images -> (outputs, attention_scores)`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, Optional, Tuple

import numpy as np

from .download import cache_home
from .files import atomic_directory, sha256_of
from .registry import Recipe

logger = logging.getLogger(__name__)

_ATTENTION_KEY = re.compile(r"transformer_block_(\d+)_att")
_DRIVE_ID = re.compile(r"^[A-Za-z0-9_-]{20,}$")
_DRIVE_URL = re.compile(r"https?://drive\.google\.com/")

# Drive ids of the keras.io example's zipped SavedModels (as published in the example). The example's other model
# names are aliases of registry weights (`vit_tf.ALIASES`) and load the official checkpoints instead.
KERAS_IO_DRIVE_IDS = {
    "vit_base_i21k_patch16_224": "1mbtnliT3jRb3yJUHhbItWw8unfYZw8KJ",
    "vit_base_i1k_patch16_224": "1ApOdYe4NXxhPhJABefgZ3KVvqsQzhCL7",
    "vit_dino_base16": "16_1oDm0PeCGJ_KGBG5UKVN7TsAtiRNrN",
}

# Name of the string variable that `export_saved_model` stores the model's config and recipe in.
METADATA = "vit_tf_metadata"


class UnsafeArchiveError(ValueError):
    """A zip entry would be written outside the extraction directory."""


def load(path_or_handle):
    """Open a saved model; see `vit_tf.load`.

    Args:
        path_or_handle: a directory written by `vit-tf convert`, or a `.keras` file of a `VisionTransformer`; a
            Hugging Face checkpoint directory (config.json
            with a `model_type`, and model.safetensors or pytorch_model.bin: `vit_tf.hf.from_hf`, which runs as
            transformers does, its position interpolation included); a SavedModel directory; a `.zip` holding one; a
            Google Drive file id or link (`gdrive:<id>` forces that reading); a TF-Hub handle (`https://tfhub.dev/...`,
            `https://www.kaggle.com/models/...`, or `hub:<handle>`); a keras.io alias with a Drive id
            (`KERAS_IO_DRIVE_IDS`); any other registry name or alias (official weights, downloaded once).
    Returns:
        a callable `images (B, H, W, 3) float32 -> (outputs, attention_scores)`: a `VisionTransformer` for converted
        directories and registry names, else a `SavedModel`.
    """
    from .registry import ALIASES, WEIGHTS, resolve

    handle = os.fspath(path_or_handle)
    if os.path.isdir(handle):
        from .hf import from_hf, is_hf_dir

        if is_hf_dir(handle):
            return from_hf(handle)
        if is_converted_dir(handle):
            return load_converted(handle)
        return SavedModel(find_saved_model(Path(handle)))
    if handle.lower().endswith(".keras") and (os.path.isfile(handle) or not os.path.exists(handle)):
        return load_keras_file(handle)
    if os.path.isfile(handle):
        if zipfile.is_zipfile(handle):
            return SavedModel(find_saved_model(extract_zip(Path(handle))))
        raise ValueError(f"{handle} is neither a directory nor a zip archive holding a SavedModel")
    if handle in KERAS_IO_DRIVE_IDS:
        return SavedModel(find_saved_model(extract_zip(fetch_drive(KERAS_IO_DRIVE_IDS[handle]))))
    if handle in ALIASES or handle in WEIGHTS:
        from .factory import create_model

        resolve(handle)
        return create_model(handle, pretrained=True)
    if handle.startswith("gdrive:") or _DRIVE_URL.match(handle) or _DRIVE_ID.match(handle):
        return SavedModel(find_saved_model(extract_zip(fetch_drive(handle))))
    if handle.startswith("hub:") or handle.startswith(("http://", "https://")):
        return load_hub(handle[len("hub:"):] if handle.startswith("hub:") else handle)
    raise FileNotFoundError(f"{handle!r} is not an existing path, a registry name, a Google Drive id or a TF-Hub "
                            f"handle")


# -- directories written by `vit-tf convert` --------------------------------------------------------------------------
def is_converted_dir(path) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))


def read_json(path: str) -> dict:
    """A JSON object from `path`; errors name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not a UTF-8 text file: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, found {type(value).__name__}")
    return value


def recipe_from_dict(d: dict, where: str) -> Recipe:
    """A `Recipe` from its `to_dict()` form; a missing or bad field is an error naming `where`."""
    try:
        return Recipe(input_size=tuple(int(s) for s in d["input_size"]), crop_pct=float(d["crop_pct"]),
                      interpolation=str(d["interpolation"]), mean=tuple(float(m) for m in d["mean"]),
                      std=tuple(float(s) for s in d["std"]))
    except KeyError as e:
        raise ValueError(f"{where}: the preprocessing recipe lacks {e.args[0]!r}") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: malformed preprocessing recipe {d!r} ({e})") from None


def load_converted(directory) -> "object":
    """`DIR/model.keras` of `vit-tf convert` -> `VisionTransformer` whose `recipe` is the one in `DIR/config.json`.

    The architecture in `config.json` must be the one in `model.keras`; otherwise the directory was assembled from
    two conversions and is refused; a truncated or corrupt `model.keras` is named as such (`load_keras_file`).
    """
    from .hf import is_hf_dir

    directory = os.fspath(directory)
    if is_hf_dir(directory):
        raise ValueError(f"{directory} is a Hugging Face checkpoint, not a directory written by `vit-tf convert`: "
                         f"open it with vit_tf.load, or pass it as a checkpoint of a registry name (--checkpoint)")
    config_path = os.path.join(directory, "config.json")
    info = read_json(config_path)
    keras_path = os.path.join(directory, "model.keras")
    if not os.path.isfile(keras_path):
        raise FileNotFoundError(f"{directory} has config.json but no model.keras; run `vit-tf convert` again")
    if "preprocessing" not in info:
        raise ValueError(f"{config_path} lacks the 'preprocessing' recipe; run `vit-tf convert` again")
    recipe = recipe_from_dict(info["preprocessing"], config_path)
    model = load_keras_file(keras_path, again=f"run `vit-tf convert ... --output {directory} --overwrite` again")
    expected = info.get("config")
    if expected is not None and expected != model.config.to_dict():
        diff = sorted(k for k in set(expected) | set(model.config.to_dict())
                      if expected.get(k) != model.config.to_dict().get(k))
        raise ValueError(f"{directory}: config.json describes another model than model.keras (fields differ: "
                         f"{diff}); the directory mixes two conversions")
    model.recipe = recipe
    model.weight_name = info.get("name", model.weight_name)
    return model


def load_keras_file(path, again: str = "copy or save it again") -> "object":
    """A `.keras` file -> the `VisionTransformer` it holds.

    A `.keras` file is a zip archive. One that is cut short (its central directory, at the end, is gone) or whose
    entries fail their CRC check is reported as "truncated or corrupt .keras file <path>" with `again` (what to do),
    rather than Keras's own "File not found" about a file that exists. The CRCs are checked before Keras reads the
    file (one pass over it): h5py reads the weights out of the archive by seeking, which may never reach the end of
    the entry where zipfile checks its CRC, so damaged weights could otherwise load without an error.
    Raises FileNotFoundError for a missing file, ValueError otherwise.
    """
    import keras

    from .model import VisionTransformer

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f".keras file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"truncated or corrupt .keras file {path} ({os.path.getsize(path)} bytes): it is not a "
                         f"complete zip archive, which a .keras file is (a copy or download cut short?); {again}")
    damaged = _damaged_entry(path)
    if damaged is not None:
        raise ValueError(f"truncated or corrupt .keras file {path}: {damaged}; {again}")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises ValueError, OSError, zipfile and h5py errors for broken files
        raise ValueError(f"{path} could not be loaded: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"{path} holds a {type(model).__name__}, not a vit_tf VisionTransformer")
    return model


def _damaged_entry(path: str) -> Optional[str]:
    """What is broken in a zip archive (an entry failing its CRC, unreadable data), or None when it reads whole."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        return f"its zip data cannot be read ({type(e).__name__}: {e})"
    return None if bad is None else f"entry {bad!r} fails its CRC check"


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
    return SavedModel(Path(hub.resolve(handle)))


# -- running a SavedModel ---------------------------------------------------------------------------------------------
class SavedModel:
    """The one wrapper of a SavedModel, with the `(outputs, attention_scores)` contract.

    Reads, in this order: the `serving_attention` signature of `vit_tf.export_saved_model` (its `serving_default`
    returns the outputs alone); a restored `__call__` (Keras 2 models such as the keras.io example's, returning
    `[outputs, {name: attention}]`); any other `serving_default` signature, whose flat outputs are split into
    attention (`transformer_block_{i}_att`) and the rest.

    Args:
        path: the SavedModel directory.
        patch_size, num_prefix_tokens: known from the metadata `export_saved_model` stores, or a `config.json`
            beside the SavedModel or one level up; otherwise inferred on the first call (2 prefix tokens when the
            model returns "dist_logits"; the patch size from the token count and the image size).

    Attributes:
        path, name, recipe (a `Recipe`, or None when the SavedModel does not carry one), config (dict or None).
    """

    def __init__(self, path, patch_size: Optional[int] = None, num_prefix_tokens: Optional[int] = None):
        import tensorflow as tf

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"SavedModel not found: {self.path}")
        self.module = tf.saved_model.load(str(self.path))
        meta = self._metadata()
        self.config = meta.get("config")
        self.recipe = recipe_from_dict(meta["preprocessing"], str(self.path)) if "preprocessing" in meta else None
        self.name = meta.get("name") or self.path.name
        if self.config:
            patch_size = patch_size or int(self.config["patch_size"])
            if num_prefix_tokens is None:  # class (+ distillation) + registers, as the model counts them
                from .configs import ViTConfig

                num_prefix_tokens = ViTConfig(**self.config).num_prefix_tokens
        self._patch_size, self._num_prefix_tokens = patch_size, num_prefix_tokens
        signatures = getattr(self.module, "signatures", {})
        self._call = None
        if "serving_attention" in signatures:
            self.signature = signatures["serving_attention"]
            self._plain = signatures.get("serving_default")
        else:
            call = getattr(self.module, "__call__", None)
            if call is not None and getattr(call, "concrete_functions", None):
                self._call, self.signature = call, None
            elif "serving_default" in signatures:
                self.signature = signatures["serving_default"]
            else:
                raise ValueError(f"{self.path} has neither a callable model nor a serving_default signature")
            self._plain = None
        if self.signature is not None:
            _, kwargs = self.signature.structured_input_signature
            if len(kwargs) != 1:
                raise ValueError(f"{self.path}: the signature takes {sorted(kwargs)}; expected one image input")
            self.input_name = next(iter(kwargs))

    def _metadata(self) -> dict:
        variable = getattr(self.module, METADATA, None)
        if variable is not None:
            return json.loads(variable.numpy().decode("utf-8"))
        for directory in (self.path, self.path.parent):
            if (directory / "config.json").is_file():
                cfg = read_json(str(directory / "config.json"))
                return {"name": cfg.get("name"), "config": cfg.get("config", cfg),
                        **({"preprocessing": cfg["preprocessing"]} if "preprocessing" in cfg else {})}
        return {}

    def forward_all(self, images, training: bool = False, return_attention=True):
        """({output name: tensor}, {"transformer_block_{i}_att": (B, heads, T, T)}); the attention dict is empty
        with `return_attention=False` where the SavedModel has a signature without maps."""
        import tensorflow as tf

        images = tf.convert_to_tensor(np.asarray(images, np.float32) if not tf.is_tensor(images) else images)
        if self._call is not None:
            try:
                result = self._call(images, training=training)
            except (TypeError, ValueError):
                result = self._call(images)  # functions saved without a `training` argument
            outputs, attention = split_outputs(result)
            outputs = {"logits": outputs} if not isinstance(outputs, dict) else outputs
        else:
            fn = self._plain if (return_attention is False and self._plain is not None) else self.signature
            outputs, attention = split_outputs(fn(**{self.input_name: images}), as_dict=True)
        if self._num_prefix_tokens is None:
            self._num_prefix_tokens = 2 if "dist_logits" in outputs else 1
        if self._patch_size is None and attention:  # inferred when asked for (see `patch_size`)
            self._seen = (int(next(iter(attention.values())).shape[-1]), *images.shape[1:3])
        if return_attention is not True and return_attention is not False:
            keep = {f"transformer_block_{i % len(attention)}_att" for i in return_attention}
            attention = {k: v for k, v in attention.items() if k in keep}
        elif return_attention is False:
            attention = {}
        return outputs, attention

    def __call__(self, images, training: bool = False, return_attention=True) -> Tuple[object, Dict[str, object]]:
        outputs, attention = self.forward_all(images, training=training, return_attention=return_attention)
        return main_output(outputs), attention

    def _need(self, value, what):
        if value is None:
            raise ValueError(f"{what} of {self.path} is not known yet: pass it, or call the model once")
        return value

    @property
    def patch_size(self) -> int:
        seen = getattr(self, "_seen", None)
        if self._patch_size is None and seen is not None:
            t, h, w = seen
            n = t - self.num_prefix_tokens
            p = int(round((h * w / n) ** 0.5)) if n > 0 else 0
            if p == 0 or p * p * n != h * w:
                raise ValueError(f"cannot infer the patch size of {self.path} from {t} tokens at {h}x{w}; "
                                 f"pass patch_size=")
            self._patch_size = p
        return self._need(self._patch_size, "patch_size")

    @property
    def num_prefix_tokens(self) -> int:
        return self._need(self._num_prefix_tokens, "num_prefix_tokens")

    def variable(self, *names) -> np.ndarray:
        """A restored weight by attribute path, e.g. `variable("patch_embed", "proj", "kernel")`."""
        obj = getattr(self.module, "model", None)
        if obj is None:
            raise ValueError(f"{self.path} does not expose the model's weights")
        for name in names:
            # Restored Keras layers keep their variables under the private attribute names.
            obj = getattr(obj, name) if hasattr(obj, name) else getattr(obj, "_" + name)
        return np.asarray(obj.numpy())

    def patch_kernel(self) -> np.ndarray:
        """(p, p, 3, D)."""
        return self.variable("patch_embed", "proj", "kernel")

    def position_embedding(self) -> np.ndarray:
        """(1, T, D)."""
        return self.variable("pos_embed")


def main_output(outputs):
    """The main output of an outputs dict: `logits`, else `features`, else its only entry."""
    if not isinstance(outputs, dict):
        return outputs
    for key in ("logits", "features"):
        if key in outputs:
            return outputs[key]
    if len(outputs) == 1:
        return next(iter(outputs.values()))
    raise ValueError(f"cannot tell the main output among {sorted(outputs)}")


def split_outputs(result, as_dict: bool = False) -> Tuple[object, Dict[str, object]]:
    """A model's raw result -> (outputs, {"transformer_block_{i}_att": ...} in block order). A flat dict's non-
    attention entries are the outputs: the main one (`main_output`), or all of them with `as_dict`."""
    if isinstance(result, (list, tuple)) and len(result) == 2 and isinstance(result[1], dict):
        outputs, attention = result
    elif isinstance(result, dict):
        attention = {k: v for k, v in result.items() if _ATTENTION_KEY.search(k)}
        rest = {k: v for k, v in result.items() if k not in attention}
        outputs = rest if as_dict else main_output(rest)
    else:
        raise ValueError(f"the model returned {type(result).__name__}; expected [outputs, attention dict] or a dict")
    named = {}
    for key, value in attention.items():
        match = _ATTENTION_KEY.search(key)
        if not match:
            raise ValueError(f"attention output {key!r} is not named transformer_block_<i>_att")
        named[int(match.group(1))] = value
    return outputs, {f"transformer_block_{i}_att": named[i] for i in sorted(named)}
