"""Where attention maps come from: our Keras models, SavedModels written by `vit-tf convert` /
`export_saved_model`, and timm (PyTorch) models through `timm.utils.AttentionExtract`.

Every source is a callable `images (B, H, W, 3) float32 -> (outputs, attention)` with NumPy values, attention keyed
`transformer_block_{i}_att` (B, heads, T, T), and carries `patch_size`, `num_prefix_tokens` and `name`; so the
analysis functions run unchanged on all three.
"""

from __future__ import annotations

import json
import os
from typing import Dict, Optional, Tuple

import numpy as np

from ..compat import import_timm
from ._arrays import to_numpy


Arrays = Dict[str, np.ndarray]


def _numpy_dict(d) -> Arrays:
    return {k: to_numpy(v) for k, v in d.items()}


def _split_outputs(values: Arrays) -> Tuple[Arrays, Arrays]:
    attention = {k: v for k, v in values.items() if k.startswith("transformer_block_") and k.endswith("_att")}
    return {k: v for k, v in values.items() if k not in attention}, attention


class KerasSource:
    """A `VisionTransformer` (from `create_model`, `.keras` files or `vit-tf convert`)."""

    def __init__(self, model):
        self.model = model
        self.patch_size = int(model.config.patch_size)
        self.num_prefix_tokens = int(model.config.num_prefix_tokens)
        self.name = model.name

    def __call__(self, images) -> Tuple[Arrays, Arrays]:
        outputs, attention = self.model.forward_all(np.asarray(images, np.float32), training=False)
        return _numpy_dict(outputs), _numpy_dict(attention)

    def patch_kernel(self) -> np.ndarray:
        """(p, p, 3, D)."""
        return to_numpy(self.model.get_layer("patch_embed").proj.kernel)

    def position_embedding(self) -> np.ndarray:
        """(1, T, D) for the model's `img_size` grid."""
        return to_numpy(self.model.pos_embed)

    @property
    def grid_size(self) -> Tuple[int, int]:
        """Grid of the position embedding."""
        return tuple(self.model.config.grid_size)


def _find_saved_model(path: str) -> str:
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path):
        found = sorted(os.path.join(path, d) for d in os.listdir(path)
                       if os.path.isfile(os.path.join(path, d, "saved_model.pb")))
        if len(found) == 1:
            return found[0]
    raise FileNotFoundError(f"no SavedModel (saved_model.pb) in {path} or one level below it")


def _read_config(*dirs: str) -> dict:
    for d in dirs:
        f = os.path.join(d, "config.json")
        if os.path.isfile(f):
            with open(f, encoding="utf-8") as fh:
                cfg = json.load(fh)
            return cfg.get("config", cfg) if isinstance(cfg, dict) else {}
    return {}


class SavedModelSource:
    """A SavedModel with the `serving_default(images=...)` signature of `vit_tf.export_saved_model`.

    Args:
        path: the SavedModel directory, or a directory holding exactly one SavedModel (as `vit-tf convert` writes).
        patch_size, num_prefix_tokens: read from a `config.json` beside the SavedModel when not given; otherwise
            inferred on the first call (2 prefix tokens when the signature returns "dist_logits", and the patch
            size from the token count and the image size).
    """

    def __init__(self, path, patch_size: Optional[int] = None, num_prefix_tokens: Optional[int] = None):
        import tensorflow as tf

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"SavedModel not found: {path}")
        self.path = _find_saved_model(path)
        self.loaded = tf.saved_model.load(self.path)
        if "serving_default" not in self.loaded.signatures:
            raise ValueError(f"{self.path} has no serving_default signature")
        self._serve = self.loaded.signatures["serving_default"]
        cfg = _read_config(self.path, os.path.dirname(self.path.rstrip(os.sep)))
        if patch_size is None and "patch_size" in cfg:
            patch_size = int(cfg["patch_size"])
        if num_prefix_tokens is None and "head_type" in cfg:
            num_prefix_tokens = 2 if cfg["head_type"] == "distilled" else 1
        self._patch_size, self._num_prefix_tokens = patch_size, num_prefix_tokens
        self.name = cfg.get("name", os.path.basename(os.path.normpath(path)))

    def __call__(self, images) -> Tuple[Arrays, Arrays]:
        import tensorflow as tf

        images = np.asarray(images, np.float32)
        outputs, attention = _split_outputs(_numpy_dict(self._serve(images=tf.constant(images))))
        if self._num_prefix_tokens is None:
            self._num_prefix_tokens = 2 if "dist_logits" in outputs else 1
        if self._patch_size is None:
            t = next(iter(attention.values())).shape[-1]
            h, w = images.shape[1:3]
            p = int(round((h * w / (t - self._num_prefix_tokens)) ** 0.5))
            if p * p * (t - self._num_prefix_tokens) != h * w:
                raise ValueError(f"cannot infer the patch size of {self.path} from {t} tokens at {h}x{w}; "
                                 f"pass patch_size=")
            self._patch_size = p
        return outputs, attention

    def _need(self, value, what):
        if value is None:
            raise ValueError(f"{what} of {self.path} is not known yet: pass it, or call the source once")
        return value

    @property
    def patch_size(self) -> int:
        return self._need(self._patch_size, "patch_size")

    @property
    def num_prefix_tokens(self) -> int:
        return self._need(self._num_prefix_tokens, "num_prefix_tokens")

    def _variable(self, *names):
        obj = self.loaded.model
        for name in names[:-1]:
            obj = getattr(obj, name)
        # Restored Keras layers keep their variables under the private attribute names.
        last = names[-1]
        return to_numpy(getattr(obj, last, None) if hasattr(obj, last) else getattr(obj, "_" + last))

    def patch_kernel(self) -> np.ndarray:
        """(p, p, 3, D)."""
        return self._variable("patch_embed", "proj", "kernel")

    def position_embedding(self) -> np.ndarray:
        """(1, T, D)."""
        return self._variable("pos_embed")


class TimmSource:
    """A timm ViT / DeiT through `timm.utils.AttentionExtract(model, method="hook")`.

    Fused attention (`F.scaled_dot_product_attention`) never materialises the probabilities, so it is turned off on
    every module that has it; the hooks then read the output of each block's `attn_drop`, which in eval mode is the
    softmax attention itself.

    Args:
        model: a timm `VisionTransformer` (or any timm model whose attention modules end in `attn_drop`).
        device: torch device for the forward pass (default the model's).
    """

    def __init__(self, model, device=None):
        import_timm()
        import torch
        from timm.utils import AttentionExtract

        self.model = model.eval()
        for module in self.model.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = False
        self.extract = AttentionExtract(self.model, method="hook")
        self.device = device or next(self.model.parameters()).device
        self.patch_size = int(_first(self.model.patch_embed.patch_size))
        self.num_prefix_tokens = int(getattr(self.model, "num_prefix_tokens", 1))
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        self.name = cfg.get("architecture") or type(self.model).__name__
        self._torch = torch

    def __call__(self, images) -> Tuple[Arrays, Arrays]:
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(images, np.float32).transpose(0, 3, 1, 2)))
        x = x.to(self.device)
        with torch.no_grad():
            out = self.model(x)  # the hooks record while the model runs
            hooked = self.extract.hooks.get_output(device=x.device)
        key = "logits" if getattr(self.model, "num_classes", 0) else "features"
        attention = {f"transformer_block_{i}_att": to_numpy(v) for i, v in enumerate(hooked.values())}
        return {key: to_numpy(out)}, attention

    @property
    def grid_size(self) -> Tuple[int, int]:
        """Grid of the position embedding."""
        return tuple(int(g) for g in self.model.patch_embed.grid_size)

    def patch_kernel(self) -> np.ndarray:
        """(p, p, 3, D), from PyTorch's (D, 3, p, p)."""
        return to_numpy(self.model.patch_embed.proj.weight).transpose(2, 3, 1, 0)

    def position_embedding(self) -> np.ndarray:
        """(1, T, D)."""
        return to_numpy(self.model.pos_embed)


def _first(v):
    return v[0] if isinstance(v, (tuple, list)) else v


def attention_source(obj, **kwargs):
    """Wrap a model as an attention source.

    Args:
        obj: a `VisionTransformer`, a torch `nn.Module` from timm, a path to a SavedModel (or a directory from
            `vit-tf convert`, loading its `model.keras` when present), or a source already.
        **kwargs: passed to `SavedModelSource` (patch_size, num_prefix_tokens).
    Returns:
        `KerasSource`, `TimmSource` or `SavedModelSource`.
    """
    if isinstance(obj, (KerasSource, TimmSource, SavedModelSource)):
        return obj
    if hasattr(obj, "forward_all") and hasattr(obj, "config"):
        return KerasSource(obj)
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        keras_file = os.path.join(path, "model.keras")
        if os.path.isfile(keras_file) and not os.path.isfile(os.path.join(path, "saved_model.pb")):
            import keras

            return KerasSource(keras.saving.load_model(keras_file, compile=False))
        return SavedModelSource(path, **kwargs)
    if type(obj).__module__.startswith("timm") or hasattr(obj, "patch_embed") and hasattr(obj, "blocks"):
        return TimmSource(obj)
    raise TypeError(f"cannot take attention from {type(obj).__name__}; pass a VisionTransformer, a timm model or "
                    f"a SavedModel path")
