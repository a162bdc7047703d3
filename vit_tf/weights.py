"""Load timm-layout state dicts (`blocks.0.attn.qkv.weight`, ...) into `VisionTransformer`.

Every key is accounted for: a missing, unexpected, mis-shaped or non-finite weight is an error that lists the keys.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
from typing import Callable, Dict, FrozenSet, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into the requested model; the message names the file and keys."""


# -- layout transforms, each named once ---------------------------------------------------------------------------
def identity(w: np.ndarray) -> np.ndarray:
    return w


def torch_linear_to_dense(w: np.ndarray) -> np.ndarray:  # (out, in) -> (in, out)
    return w.T


def torch_conv_to_keras(w: np.ndarray) -> np.ndarray:  # (out, in, kh, kw) -> (kh, kw, in, out)
    return w.transpose(2, 3, 1, 0)


def dense_to_torch_linear(w: np.ndarray) -> np.ndarray:  # (in, out) -> (out, in)
    return w.T


def keras_conv_to_torch(w: np.ndarray) -> np.ndarray:  # (kh, kw, in, out) -> (out, in, kh, kw)
    return w.transpose(3, 2, 0, 1)


# Each load transform and the one that undoes it (for writing our weights back in timm layout).
INVERSE = {identity: identity, torch_linear_to_dense: dense_to_torch_linear, torch_conv_to_keras: keras_conv_to_torch}


def to_numpy(value) -> np.ndarray:
    """A torch tensor, TF tensor or array -> float32 NumPy array (bf16/fp16 checkpoints are widened)."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def timm_weight_map(model) -> Dict[str, Tuple[object, Callable[[np.ndarray], np.ndarray]]]:
    """timm key -> (Keras variable, transform from the timm array to the variable's layout).

    Layers are looked up by name (`patch_embed`, `transformer_block_{i}`, `norm`, `head`, ...).
    """
    def linear(prefix, layer):
        return {f"{prefix}.weight": (layer.kernel, torch_linear_to_dense), f"{prefix}.bias": (layer.bias, identity)}

    def layer_norm(prefix, layer):
        return {f"{prefix}.weight": (layer.gamma, identity), f"{prefix}.bias": (layer.beta, identity)}

    proj = model.get_layer("patch_embed").proj
    m = {
        "cls_token": (model.cls_token, identity),
        "pos_embed": (model.pos_embed, identity),
        "patch_embed.proj.weight": (proj.kernel, torch_conv_to_keras),
        "patch_embed.proj.bias": (proj.bias, identity),
    }
    if model.dist_token is not None:
        m["dist_token"] = (model.dist_token, identity)
    if getattr(model, "reg_token", None) is not None:
        m["reg_token"] = (model.reg_token, identity)
    for i in range(model.config.depth):
        block = model.get_layer(f"transformer_block_{i}")
        p = f"blocks.{i}"
        m.update(layer_norm(f"{p}.norm1", block.norm1))
        m.update(linear(f"{p}.attn.qkv", block.attn.qkv))
        m.update(linear(f"{p}.attn.proj", block.attn.proj))
        m.update(layer_norm(f"{p}.norm2", block.norm2))
        m.update(linear(f"{p}.mlp.fc1", block.mlp.fc1))  # SwiGLU: timm's packed (2 * hidden, D) [x1; x2]
        m.update(linear(f"{p}.mlp.fc2", block.mlp.fc2))
        for scale in ("ls1", "ls2"):
            if getattr(block, scale, None) is not None:
                m[f"{p}.{scale}.gamma"] = (getattr(block, scale).gamma, identity)
    m.update(layer_norm("norm", model.get_layer("norm")))
    if model.pre_logits is not None:
        m.update(linear("pre_logits.fc", model.pre_logits))  # timm's pre-1.0 name for the representation layer
    if model.head is not None:
        m.update(linear("head", model.head))
    if model.head_dist is not None:
        m.update(linear("head_dist", model.head_dist))
    if not model.config.qkv_bias:
        for i in range(model.config.depth):
            m.pop(f"blocks.{i}.attn.qkv.bias")
    return m


def timm_state_dict(model) -> Dict[str, np.ndarray]:
    """The model's weights as a timm-layout state dict (float32, C-contiguous), e.g. to save as `.safetensors` or
    load into the timm model of the same architecture."""
    return {key: np.ascontiguousarray(INVERSE[transform](np.asarray(variable.numpy(), np.float32)))
            for key, (variable, transform) in timm_weight_map(model).items()}


def resample_pos_embed(pos_embed: np.ndarray, new_grid: Tuple[int, int], num_prefix_tokens: int,
                       old_grid: Optional[Tuple[int, int]] = None, mode: str = "timm_antialias") -> np.ndarray:
    """(1, P + gh*gw, D) -> (1, P + new_h*new_w, D), resampled as `mode` (a `POS_EMBED_INTERPOLATIONS` value; timm's
    antialiased bicubic by default). P is the number of prefix rows the checkpoint's pos_embed has."""
    from .layers import resample_grid  # TensorFlow import kept out of module import time

    n = pos_embed.shape[1] - num_prefix_tokens
    if old_grid is None:
        side = int(round(n ** 0.5))
        if side * side != n:
            raise CheckpointError(f"pos_embed has {n} grid positions, which is not a square grid; "
                                  f"pass the checkpoint's grid size explicitly")
        old_grid = (side, side)
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    grid = np.asarray(resample_grid(grid.reshape(1, *old_grid, -1), new_grid, mode)).reshape(
        1, -1, pos_embed.shape[-1])
    return np.concatenate([prefix, grid], axis=1)


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What loading a checkpoint did, in timm-layout keys.

    Attributes:
        loaded: keys assigned to the model.
        ignored: keys dropped by an `ignore` pattern (from the checkpoint, or model weights left at their initial
            values).
        missing: model weights the checkpoint lacks, left at their initial values (only with `strict=False`).
        unexpected: checkpoint keys the model has no place for, skipped (only with `strict=False`).
    """

    loaded: FrozenSet[str]
    ignored: FrozenSet[str] = frozenset()
    missing: FrozenSet[str] = frozenset()
    unexpected: FrozenSet[str] = frozenset()


def _matches(key: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def load_timm_state_dict(model, state_dict: Mapping[str, object], source: str = "state dict",
                         ignore: Iterable[str] = (), old_grid: Optional[Tuple[int, int]] = None,
                         strict: bool = True) -> LoadReport:
    """Assign a timm-layout state dict to `model`.

    Args:
        model: a `VisionTransformer`.
        state_dict: key -> array or tensor, timm layout.
        source: what to call the checkpoint in error messages (usually its path).
        ignore: keys or shell-style patterns (`"head.*"`) dropped on both sides: checkpoint keys that are not
            loaded, and model weights that keep their initial values.
        old_grid: the checkpoint's position grid (gh, gw) when it is not square.
        strict: with False, missing and unexpected keys are logged and listed in the report instead of raising.
            Mis-shaped or non-finite weights raise either way.
    Returns:
        a `LoadReport`.
    Raises:
        CheckpointError listing missing, unexpected, mis-shaped or non-finite keys. Nothing is assigned then.
    """
    patterns = [ignore] if isinstance(ignore, str) else list(ignore)
    all_targets = timm_weight_map(model)
    targets = {k: v for k, v in all_targets.items() if not _matches(k, patterns)}
    ignored = {k for k in set(all_targets) | set(state_dict) if _matches(k, patterns)}
    missing = sorted(set(targets) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(targets) - ignored)
    problems = []
    if strict and missing:
        problems.append(f"missing keys: {missing}")
    if strict and unexpected:
        problems.append(f"unexpected keys: {unexpected}")
    values = {}
    wrong_shape, non_finite = [], []
    for key, (variable, transform) in targets.items():
        if key not in state_dict:
            continue
        value = to_numpy(state_dict[key])
        if key == "pos_embed" and value.shape != tuple(variable.shape) and value.ndim == 3 \
                and value.shape[-1] == variable.shape[-1]:
            before = value.shape
            try:
                value = resample_pos_embed(value, model.config.grid_size, model.config.num_pos_prefix_tokens,
                                           old_grid, model.config.pos_embed_interpolation)
            except CheckpointError as e:  # e.g. a checkpoint with another number of prefix tokens
                wrong_shape.append(f"pos_embed: checkpoint {before} cannot be resampled ({e})")
                continue
            logger.info("%s: resampled pos_embed %s -> %s", source, before, value.shape)
        value = transform(value)
        if value.shape != tuple(variable.shape):
            wrong_shape.append(f"{key}: checkpoint {tuple(state_dict_shape(state_dict[key]))} "
                               f"-> {value.shape}, model expects {tuple(variable.shape)}")
            continue
        if not np.all(np.isfinite(value)):
            non_finite.append(key)
        values[key] = value
    if wrong_shape:
        problems.append("mis-shaped keys: " + "; ".join(wrong_shape))
    if non_finite:
        problems.append(f"keys with NaN or Inf values: {sorted(non_finite)}")
    if problems:
        raise CheckpointError(f"{source} does not fit {model.name} "
                              f"({describe(model.config)}): " + " | ".join(problems))
    for key, value in values.items():
        targets[key][0].assign(value)
    if ignored:
        logger.info("%s: ignored %s", source, sorted(ignored))
    if missing:
        logger.warning("%s: not in the checkpoint, left at their initial values: %s", source, missing)
    if unexpected:
        logger.warning("%s: not used by %s: %s", source, model.name, unexpected)
    return LoadReport(frozenset(values), frozenset(ignored), frozenset(missing if not strict else ()),
                      frozenset(unexpected if not strict else ()))


def state_dict_shape(value) -> Tuple[int, ...]:
    return tuple(getattr(value, "shape", np.shape(value)))


def describe(config) -> str:
    return (f"embed_dim={config.embed_dim}, depth={config.depth}, heads={config.num_heads}, "
            f"patch={config.patch_size}, classes={config.num_classes}, head={config.head_type}")


def read_state_dict(path: str) -> Dict[str, np.ndarray]:
    """Read a timm-layout `.safetensors` or `.pth`/`.pt`/`.bin` file (torch.load with weights_only=True).

    A `.pth` holding {"model": state_dict} or {"state_dict": state_dict} is unwrapped.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    lower = path.lower()
    if lower.endswith(".safetensors"):
        from safetensors.numpy import load_file
        try:
            return load_file(path)
        except Exception as e:  # safetensors raises its own error types for truncated or foreign files
            raise CheckpointError(f"{path} is not a readable .safetensors file: {e}") from e
    if lower.endswith((".pth", ".pt", ".bin")):
        obj = torch_load(path)
        for wrapper in ("model", "state_dict"):
            if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
                obj = obj[wrapper]
        if not isinstance(obj, dict):
            raise CheckpointError(f"{path} does not hold a state dict (found {type(obj).__name__})")
        return {k: to_numpy(v) for k, v in obj.items() if hasattr(v, "shape")}
    raise CheckpointError(f"{path}: unknown checkpoint extension; expected .safetensors, .pth, .pt, .bin or .npz")


def torch_load(path: str):
    """`torch.load(path, weights_only=True)`: tensors and plain containers only, never arbitrary pickles."""
    try:
        import torch
    except ImportError as e:
        raise ImportError(f"reading {path} needs PyTorch: pip install 'vit_tf[torch]' "
                          f"(or convert it to .safetensors elsewhere)") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for code-running pickles, RuntimeError for truncated zips
        raise CheckpointError(f"{path} could not be read safely with torch.load(weights_only=True): "
                              f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
