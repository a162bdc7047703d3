"""Where attention maps come from: our Keras models, SavedModels written by `vit-tf convert` /
`export_saved_model`, and timm (PyTorch) models through `timm.utils.AttentionExtract`.

Every source is a callable `images (B, H, W, 3) float32 -> (outputs, attention)` with NumPy values, attention keyed
`transformer_block_{i}_att` (B, heads, T, T), and carries `patch_size`, `num_prefix_tokens` and `name`; so the
analysis functions run unchanged on all three.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

import numpy as np

from ..compat import import_timm
from ._arrays import to_numpy


Arrays = Dict[str, np.ndarray]


def _numpy_dict(d) -> Arrays:
    return {k: to_numpy(v) for k, v in d.items()}


class KerasSource:
    """Our models: a `VisionTransformer` (from `create_model`, `.keras` files or `vit-tf convert`) or a
    `vit_tf.SavedModel`.

    Args:
        model: the model.
        return_attention: which blocks' maps to compute (True: all; a list of block indices: only those).
    """

    def __init__(self, model, return_attention=True):
        self.model = model
        self.return_attention = return_attention
        self.name = getattr(model, "weight_name", None) or model.name

    @property
    def patch_size(self) -> int:
        config = getattr(self.model, "config", None)
        return int(config.patch_size) if hasattr(config, "patch_size") else int(self.model.patch_size)

    @property
    def num_prefix_tokens(self) -> int:
        config = getattr(self.model, "config", None)
        return int(config.num_prefix_tokens) if hasattr(config, "num_prefix_tokens") \
            else int(self.model.num_prefix_tokens)

    @property
    def recipe(self):
        return getattr(self.model, "recipe", None)

    def __call__(self, images) -> Tuple[Arrays, Arrays]:
        outputs, attention = self.model.forward_all(np.asarray(images, np.float32), training=False,
                                                    return_attention=self.return_attention)
        return _numpy_dict(outputs), _numpy_dict(attention)

    def patch_kernel(self) -> np.ndarray:
        """(p, p, 3, D)."""
        if hasattr(self.model, "patch_kernel"):
            return self.model.patch_kernel()
        return to_numpy(self.model.get_layer("patch_embed").proj.kernel, np.float32)

    def position_embedding(self) -> np.ndarray:
        """(1, T, D) for the model's `img_size` grid."""
        if hasattr(self.model, "position_embedding"):
            return self.model.position_embedding()
        return to_numpy(self.model.pos_embed, np.float32)

    @property
    def grid_size(self) -> Tuple[int, int]:
        """Grid of the position embedding."""
        config = getattr(self.model, "config", None)
        if hasattr(config, "grid_size"):
            return tuple(config.grid_size)
        n = self.position_embedding().shape[1] - self.num_prefix_tokens
        side = int(round(n ** 0.5))
        return (side, side)


class SavedModelSource(KerasSource):
    """A SavedModel (written by `vit_tf.export_saved_model` / `vit-tf convert`, or the keras.io example's), opened
    with `vit_tf.SavedModel`.

    Args:
        path: the SavedModel directory, or a directory holding one (as `vit-tf convert` writes).
        patch_size, num_prefix_tokens: see `vit_tf.SavedModel`.
    """

    def __init__(self, path, patch_size: Optional[int] = None, num_prefix_tokens: Optional[int] = None,
                 return_attention=True):
        from pathlib import Path

        from ..saved import SavedModel, find_saved_model

        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"SavedModel not found: {path}")
        super().__init__(SavedModel(find_saved_model(Path(path)), patch_size, num_prefix_tokens), return_attention)
        self.path = self.model.path


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
    if hasattr(obj, "forward_all"):  # VisionTransformer, vit_tf.SavedModel
        return KerasSource(obj)
    if isinstance(obj, (str, os.PathLike)):
        from ..saved import is_converted_dir, load_converted

        path = os.fspath(obj)
        if is_converted_dir(path) and os.path.isfile(os.path.join(path, "model.keras")):
            return KerasSource(load_converted(path))
        return SavedModelSource(path, **kwargs)
    if type(obj).__module__.startswith("timm") or hasattr(obj, "patch_embed") and hasattr(obj, "blocks"):
        return TimmSource(obj)
    raise TypeError(f"cannot take attention from {type(obj).__name__}; pass a VisionTransformer, a timm model or "
                    f"a SavedModel path")
