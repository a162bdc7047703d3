"""`create_model`: registry name -> `VisionTransformer`, optionally with weights (timm's signature)."""

from __future__ import annotations

import os
from typing import Optional

from .configs import to_2tuple
from .registry import arch_config, resolve


def create_model(name: str, pretrained: bool = False, checkpoint_path: Optional[str] = None,
                 img_size=None, **overrides):
    """Build a registry model.

    Args:
        name: architecture (`deit_small_patch16_224`), weight name (`vit_base_patch16_224.dino`) or keras.io alias.
        pretrained: download (once, into the cache) and load the official weights of the weight name.
        checkpoint_path: a local checkpoint in any supported format (timm `.safetensors`/`.pth`, official `.npz`
            and `.pth` layouts) loaded instead of downloading.
        img_size: int or (height, width) to build the position grid for; checkpoints of another grid are
            resampled. The model runs on other multiples of the patch size either way.
        **overrides: `ViTConfig` fields (`num_classes`, `depth`, ...) or dropout rates for `VisionTransformer`.
    Returns:
        a built `VisionTransformer` whose `.entry` holds the registry entry (recipe, sources) or None.
    """
    from .model import VisionTransformer

    arch, entry = resolve(name)
    base = entry.config if entry is not None else arch_config(arch)
    model_kwargs = {k: overrides.pop(k) for k in ("drop_rate", "attn_drop_rate", "drop_path_rate") if k in overrides}
    if img_size is not None:
        overrides["img_size"] = to_2tuple(img_size)
    config = base.replace(**overrides)
    model = VisionTransformer(config, name=arch, **model_kwargs)
    model.entry = entry
    if checkpoint_path is not None:
        from .checkpoints import load_checkpoint
        load_checkpoint(model, os.fspath(checkpoint_path))
    elif pretrained:
        if entry is None:
            raise ValueError(f"{name!r} has no registered weights; pass checkpoint_path=")
        from .checkpoints import load_pretrained
        load_pretrained(model, entry)
    return model
