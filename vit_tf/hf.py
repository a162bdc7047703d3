"""Hugging Face `transformers` checkpoints of ViT, DeiT, DINO and DINOv2, read into timm layout.

Layouts read (the names `save_pretrained` writes, i.e. those of the files on the Hub):
  - `ViTModel` / `ViTForImageClassification` (`google/vit-*`, and DINO's `facebook/dino-*`, which are ViTModel),
    `DeiTModel` / `DeiTForImageClassification` / `DeiTForImageClassificationWithTeacher`;
  - `Dinov2Model` / `Dinov2ForImageClassification` and `Dinov2WithRegistersModel` (`facebook/dinov2-*`).
A checkpoint is `model.safetensors` (optionally sharded with `model.safetensors.index.json`) or `pytorch_model.bin`,
with `config.json` beside it for the architecture (`config_from_hf`).

Every key is accounted for: keys with no place in our model are on a stated allow-list (`HF_UNUSED`: the ViT/DeiT
pooler and DINOv2's mask token, both unused at inference) and logged; any other unknown key is an error naming it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from .configs import ViTConfig
from .weights import CheckpointError, read_state_dict, to_numpy

logger = logging.getLogger(__name__)

# `base_model_prefix` of each transformers class: the backbone's keys sit under it in the task models.
HF_PREFIXES = ("vit.", "deit.", "dinov2.", "dinov2_with_registers.")
# Keys with no place in our model, dropped with a log line: the tanh pooler of ViTModel/DeiTModel (its output is not
# the class-token feature our models return) and the masked-image-modelling token of Dinov2 (training only).
HF_UNUSED = ("pooler.dense.weight", "pooler.dense.bias", "embeddings.mask_token")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


# -- layout transforms, each named once -------------------------------------------------------------------------------
def hf_qkv_to_torch_linear(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    # 3 x (D, D) or 3 x (D,) -> (3D, D) or (3D,): timm's fused qkv rows are [q; k; v].
    return np.concatenate([q, k, v], axis=0)


def hf_gate_up_to_packed(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    # 2 x (hidden, D) or 2 x (hidden,) -> (2 * hidden, ...): timm's packed SwiGLU fc1 is [gate; up].
    return np.concatenate([gate, up], axis=0)


def fold_class_position(cls_token: np.ndarray, pos_embed: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    # (1, 1, D), (1, 1 + N, D) -> (1, 1, D) class token with its position added, (1, N, D) patch positions.
    # DINOv2 with registers adds the class position before inserting the registers, which get none; timm's
    # `no_embed_class` layout (and ours) carries the same model with the class position inside the token.
    return cls_token + pos_embed[:, :1], pos_embed[:, 1:]


# -- how transformers runs the model -----------------------------------------------------------------------------------
def hf_interpolation(with_registers: bool) -> str:
    """transformers' `interpolate_pos_encoding` as a `ViTConfig.pos_embed_interpolation`: `F.interpolate(size=...,
    mode="bicubic", align_corners=False)` for ViT, DeiT and Dinov2, with `antialias=True` for Dinov2WithRegisters."""
    return "timm_antialias" if with_registers else "bicubic"


def hf_source_fields(config: Optional[Mapping[str, object]], state_dict: Mapping[str, object]) -> Dict[str, object]:
    """The `ViTConfig` fields by which a transformers checkpoint behaves like transformers: its interpolation
    (`hf_interpolation`, by `model_type`, else by the register tokens) and its `layer_norm_eps` (transformers'
    defaults where config.json lacks it: 1e-12 for ViT/DeiT, 1e-6 for Dinov2). `state_dict` is in timm layout."""
    config = config or {}
    if "model_type" in config:
        with_registers = config["model_type"] == "dinov2_with_registers"
    else:
        with_registers = "reg_token" in state_dict
    eps = config.get("layer_norm_eps")
    if eps is None:
        eps = 1e-6 if any(k.endswith(".ls1.gamma") for k in state_dict) else 1e-12  # layer scale: Dinov2
    return {"pos_embed_interpolation": hf_interpolation(with_registers), "layer_norm_eps": float(eps)}


def onnx_resize_interpolation(attributes: Mapping[str, object]) -> Optional[str]:
    """The `ViTConfig.pos_embed_interpolation` an ONNX `Resize` of the position grid computes, or None when it is
    none of ours. `torch.onnx.export` writes transformers' bicubic as mode "cubic", cubic_coeff_a -0.75 and
    half-pixel coordinates (which equal align_corners=False when the output size is given)."""
    if (attributes.get("mode") == "cubic" and float(attributes.get("cubic_coeff_a", -0.75)) == -0.75
            and attributes.get("coordinate_transformation_mode") in ("half_pixel", "pytorch_half_pixel")
            and not attributes.get("antialias", 0) and not attributes.get("exclude_outside", 0)):
        return "bicubic"
    return None


# -- key map ----------------------------------------------------------------------------------------------------------
_BLOCK = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
# Per-block HF name -> timm name (single-tensor renames).
_BLOCK_RENAMES = {
    "layernorm_before": "norm1", "layernorm_after": "norm2",  # ViT, DeiT
    "norm1": "norm1", "norm2": "norm2",  # Dinov2
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",  # ViT, DeiT
    "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",  # Dinov2 (GELU)
    "mlp.weights_in": "mlp.fc1", "mlp.weights_out": "mlp.fc2",  # Dinov2 SwiGLU, packed [gate; up] as timm's fc1
}
_TOP_RENAMES = {
    "embeddings.cls_token": "cls_token", "embeddings.distillation_token": "dist_token",
    "embeddings.register_tokens": "reg_token", "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias",
    "classifier.weight": "head.weight", "classifier.bias": "head.bias",
    "cls_classifier.weight": "head.weight", "cls_classifier.bias": "head.bias",
    "distillation_classifier.weight": "head_dist.weight", "distillation_classifier.bias": "head_dist.bias",
}


def strip_hf_prefix(sd: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Remove the task models' backbone prefix (`vit.`, `deit.`, `dinov2.`, ...) from the keys that carry it."""
    out = {}
    for key, value in sd.items():
        for prefix in HF_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        out[key] = value
    return out


def looks_like_hf(keys) -> bool:
    """True for a state dict in the transformers layout of ViT, DeiT or Dinov2 (with or without task prefix)."""
    return any(k.endswith("embeddings.patch_embeddings.projection.weight") for k in keys)


def hf_to_timm(sd: Mapping[str, object], source: str = "state dict") -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """A transformers-layout state dict -> (timm-layout state dict, timm key -> HF key(s) it came from).

    query/key/value are fused into `qkv`; SwiGLU gate/up halves packed into `fc1`; a checkpoint with register tokens
    gets the class position folded into the class token (`fold_class_position`). `HF_UNUSED` keys are dropped and
    logged. Raises CheckpointError naming unknown keys or incomplete query/key/value groups.
    """
    sd = strip_hf_prefix({k: to_numpy(v) for k, v in sd.items()})
    out, origin, unknown, dropped = {}, {}, [], []
    groups: Dict[Tuple[int, str, str], Dict[str, str]] = {}  # (block, kind, weight|bias) -> {part: hf key}
    for key in sorted(sd):
        if key in HF_UNUSED:
            dropped.append(key)
            continue
        if key in _TOP_RENAMES:
            out[_TOP_RENAMES[key]], origin[_TOP_RENAMES[key]] = sd[key], key
            continue
        m = _BLOCK.match(key)
        if not m:
            unknown.append(key)
            continue
        i, rest = int(m.group(1)), m.group(2)
        name, _, kind = rest.rpartition(".")
        qkv = re.fullmatch(r"attention\.attention\.(query|key|value)", name)
        swiglu = re.fullmatch(r"mlp\.(gate_proj|up_proj|down_proj)", name)
        if qkv:
            groups.setdefault((i, "qkv", kind), {})[qkv.group(1)] = key
        elif swiglu and swiglu.group(1) != "down_proj":
            groups.setdefault((i, "gate_up", kind), {})[swiglu.group(1)] = key
        elif swiglu:
            out[f"blocks.{i}.mlp.fc2.{kind}"], origin[f"blocks.{i}.mlp.fc2.{kind}"] = sd[key], key
        elif name in _BLOCK_RENAMES and kind in ("weight", "bias"):
            target = f"blocks.{i}.{_BLOCK_RENAMES[name]}.{kind}"
            out[target], origin[target] = sd[key], key
        elif re.fullmatch(r"layer_scale[12]", name) and kind == "lambda1":
            target = f"blocks.{i}.ls{name[-1]}.gamma"
            out[target], origin[target] = sd[key], key
        else:
            unknown.append(key)
    incomplete = []
    for (i, what, kind), parts in sorted(groups.items()):
        names = ("query", "key", "value") if what == "qkv" else ("gate_proj", "up_proj")
        if set(parts) != set(names):
            incomplete.append(f"block {i} {what} {kind}: has {sorted(parts)}")
            continue
        target = f"blocks.{i}.attn.qkv.{kind}" if what == "qkv" else f"blocks.{i}.mlp.fc1.{kind}"
        fuse = hf_qkv_to_torch_linear if what == "qkv" else hf_gate_up_to_packed
        out[target] = fuse(*(sd[parts[n]] for n in names))
        origin[target] = " + ".join(parts[n] for n in names)
    if unknown or incomplete:
        raise CheckpointError(f"{source}: not a ViT / DeiT / Dinov2 checkpoint in the transformers layout: "
                              + (f"unknown keys {unknown[:12]}" if unknown else "")
                              + (f" incomplete groups {incomplete}" if incomplete else ""))
    if "reg_token" in out and "pos_embed" in out:
        out["cls_token"], out["pos_embed"] = fold_class_position(out["cls_token"], out["pos_embed"])
        origin["cls_token"] += " + embeddings.position_embeddings[:, 0]"
        logger.info("%s: folded the class position into the class token (registers get no position)", source)
    if dropped:
        logger.info("%s: dropped keys unused by the model: %s", source, dropped)
    return out, origin


# -- files ------------------------------------------------------------------------------------------------------------
def hf_weight_files(path: str) -> Tuple[List[str], Optional[str]]:
    """(weight files, config.json or None) of a transformers checkpoint directory or single weight file."""
    path = os.fspath(path)
    if os.path.isdir(path):
        config = os.path.join(path, "config.json")
        config = config if os.path.isfile(config) else None
        for name in WEIGHT_FILES:
            full = os.path.join(path, name)
            if not os.path.isfile(full):
                continue
            if name.endswith(".index.json"):
                with open(full, encoding="utf-8") as f:
                    shards = sorted(set(json.load(f)["weight_map"].values()))
                return [os.path.join(path, s) for s in shards], config
            return [full], config
        raise CheckpointError(f"{path} holds none of {list(WEIGHT_FILES)}")
    config = os.path.join(os.path.dirname(path), "config.json")
    return [path], (config if os.path.isfile(config) else None)


def read_hf_state_dict(path: str) -> Tuple[Dict[str, np.ndarray], Optional[dict]]:
    """(raw transformers-layout state dict, config.json contents or None) of a directory or weight file."""
    files, _ = hf_weight_files(path)
    sd: Dict[str, np.ndarray] = {}
    for f in files:
        sd.update(read_state_dict(f))
    return sd, read_hf_config(path)


def read_hf_config(path: str) -> Optional[dict]:
    """The config.json of a transformers checkpoint directory, or beside a weight file; None when there is none.
    Raises CheckpointError when it is not a JSON object."""
    path = os.fspath(path)
    config_path = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), "config.json")
    if not os.path.isfile(config_path):
        return None
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_path} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} must hold a JSON object, found {type(config).__name__}")
    return config


def is_hf_dir(path) -> bool:
    """A transformers checkpoint directory: config.json with a `model_type` and one of `WEIGHT_FILES` (and no
    `model.keras`, which marks a directory written by `vit-tf convert`)."""
    path = os.fspath(path)
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, "model.keras")):
        return False
    if not any(os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES):
        return False
    try:
        return "model_type" in (read_hf_config(path) or {})
    except (OSError, CheckpointError):
        return False


def config_from_hf(hf: Mapping[str, object]) -> ViTConfig:
    """transformers `config.json` (ViT, DeiT, Dinov2, Dinov2WithRegisters) -> ViTConfig with the same architecture,
    head and position-embedding interpolation (bicubic without antialias for ViT/DeiT/Dinov2; antialiased for
    Dinov2WithRegisters, as their `interpolate_pos_encoding`)."""
    model_type = hf.get("model_type")
    if model_type not in ("vit", "deit", "dinov2", "dinov2_with_registers"):
        raise ValueError(f"config.json: model_type {model_type!r} is not vit, deit, dinov2 or dinov2_with_registers")
    if hf.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"config.json: hidden_act {hf.get('hidden_act')!r} is not supported (exact GELU only)")
    width = int(hf["hidden_size"])
    dinov2 = model_type.startswith("dinov2")
    swiglu = bool(hf.get("use_swiglu_ffn", False))
    if dinov2:
        hidden = int(width * hf.get("mlp_ratio", 4))
        mlp = (int(hidden * 2 / 3) + 7) // 8 * 8 if swiglu else hidden  # transformers' (and DINOv2's) SwiGLU rule
    else:
        mlp = int(hf["intermediate_size"])
    architectures = list(hf.get("architectures") or [])
    arch = architectures[0] if architectures else ""
    registers = int(hf.get("num_register_tokens", 0)) if model_type == "dinov2_with_registers" else 0
    num_labels = len(hf["id2label"]) if "id2label" in hf else int(hf.get("num_labels", 2))
    if arch.endswith("ForImageClassificationWithTeacher"):
        head_type, classes = "distilled", num_labels
    elif arch.endswith("ForImageClassification"):
        head_type, classes = ("dinov2_linear" if dinov2 else "token"), num_labels
    else:
        head_type, classes = "token", 0
    size = hf.get("image_size", 224)
    patch = hf.get("patch_size", 16)
    patch = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
    return ViTConfig(
        img_size=size, patch_size=patch, embed_dim=width, depth=int(hf["num_hidden_layers"]),
        num_heads=int(hf["num_attention_heads"]), mlp_dim=mlp, num_classes=classes, head_type=head_type,
        qkv_bias=bool(hf.get("qkv_bias", True)), layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)),
        num_register_tokens=registers, no_embed_class=bool(registers),
        init_values=float(hf.get("layerscale_value", 1.0)) if dinov2 else None,
        mlp_type="swiglu" if swiglu else "gelu",
        pos_embed_interpolation=hf_interpolation(model_type == "dinov2_with_registers"))


# -- ONNX exports -------------------------------------------------------------------------------------------------------
def onnx_hf_state_dict(path: str, prefix: str = "") -> Tuple[Dict[str, np.ndarray], dict]:
    """Weights of a transformers ViT/Dinov2 exported to ONNX by `torch.onnx.export`, back in the transformers layout.

    Named initializers keep their names. Linear weights become anonymous `MatMul` inputs stored (in, out); each is
    matched to its layer through the bias `Add` that follows the MatMul (`<layer>.bias` -> `<layer>.weight`,
    transposed to (out, in)). The position embedding is split by the export into the class row (an input of the
    `Concat` after the grid's `Resize`) and the patch grid (the input of that `Resize`); they are joined again.

    Args:
        path: the `.onnx` file.
        prefix: the backbone's prefix in the initializer names (e.g. "backbone."); keys outside it are ignored.
    Returns:
        (state dict in the transformers layout without `prefix`, info: {"resize": the grid Resize's attributes,
        "ignored": initializers outside the backbone}).
    Raises:
        ImportError without the `onnx` package; CheckpointError when the graph does not have that structure.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise ImportError("reading an ONNX graph needs the onnx package: pip install onnx") from e

    graph = onnx.load(os.fspath(path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: Dict[str, list] = {}
    producer = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
        for name in node.output:
            producer[name] = node
    sd, used = {}, set()
    for name, value in init.items():
        if name.startswith(prefix) and not name.startswith("onnx::"):
            sd[name[len(prefix):]] = value.astype(np.float32)
            used.add(name)
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in init or not node.input[1].startswith("onnx::"):
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        biases = [i for n in adds for i in n.input if i in init and i.startswith(prefix) and i.endswith(".bias")]
        if len(biases) != 1:
            raise CheckpointError(f"{path}: MatMul {node.name} is not followed by exactly one bias Add")
        key = biases[0][len(prefix):-len(".bias")] + ".weight"
        sd[key] = np.ascontiguousarray(init[node.input[1]].T).astype(np.float32)  # (in, out) -> (out, in)
        used.add(node.input[1])
    resizes = [n for n in graph.node if n.op_type == "Resize" and "embeddings" in n.name]
    if len(resizes) != 1:
        raise CheckpointError(f"{path}: expected one Resize of the position grid, found {len(resizes)}")
    resize = resizes[0]
    name = resize.input[0]
    while name not in init:  # back through Cast / Transpose / Reshape to the stored grid
        name = producer[name].input[0]
    grid = init[name]
    used.add(name)
    frontier, cls_pos = [resize.output[0]], None
    while frontier and cls_pos is None:  # forward to the Concat that prepends the class position
        node = consumers[frontier.pop()][0]
        if node.op_type == "Concat":
            (cls_name,) = [i for i in node.input if i in init]
            cls_pos = init[cls_name]
            used.add(cls_name)
        else:
            frontier.append(node.output[0])
    sd["embeddings.position_embeddings"] = np.concatenate(
        [cls_pos.reshape(1, 1, -1), grid.reshape(1, -1, grid.shape[-1])], axis=1).astype(np.float32)
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in resize.attribute}
    ignored = sorted(n for n in init if n not in used)
    return sd, {"resize": {k: v.decode() if isinstance(v, bytes) else v for k, v in attributes.items()},
                "ignored": ignored}


def from_hf(path, **overrides):
    """A `VisionTransformer` built from a transformers checkpoint (directory, or weight file with `config.json`
    beside it) with its weights loaded, every key accounted for; `overrides` are ViTConfig fields (e.g.
    `img_size=518`). The recipe has the model's size and the mean/std of `preprocessor_config.json` when present
    (ImageNet's otherwise)."""
    from .model import VisionTransformer
    from .registry import IMAGENET_MEAN, IMAGENET_STD, Recipe
    from .weights import load_timm_state_dict

    path = os.fspath(path)
    raw, config = read_hf_state_dict(path)
    if config is None:
        raise CheckpointError(f"{path}: no config.json beside the weights; build the model yourself and use "
                              f"vit_tf.load_checkpoint")
    vit_config = config_from_hf(config).replace(**overrides)
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    processor = os.path.join(path if os.path.isdir(path) else os.path.dirname(path), "preprocessor_config.json")
    if os.path.isfile(processor):
        with open(processor, encoding="utf-8") as f:
            fields = json.load(f)
        mean, std = tuple(fields.get("image_mean", mean)), tuple(fields.get("image_std", std))
    model = VisionTransformer(vit_config, recipe=Recipe(input_size=vit_config.img_size, mean=mean, std=std),
                              name=str(config.get("model_type", "vit")))
    state_dict, _ = hf_to_timm(raw, path)
    load_timm_state_dict(model, state_dict, source=path)
    return model
