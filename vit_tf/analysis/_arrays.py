"""Array plumbing shared by the analysis functions: any framework's tensors in, NumPy out; attention dicts and
lists as named per-block arrays; non-finite values and blocks that disagree in shape refused with the block's name;
prefix tokens split off explicitly; patch grids checked."""

from __future__ import annotations

import re
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

_BLOCK_KEY = re.compile(r"transformer_block_(\d+)_att$")


def to_numpy(x, dtype=None) -> np.ndarray:
    """NumPy array, TF tensor, torch tensor (any device) or nested list -> NumPy array."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    elif hasattr(x, "numpy") and not isinstance(x, np.ndarray):  # tf.Tensor / tf.Variable
        # np.asarray is a read-only view of a CPU tensor's buffer; `.numpy()` copies it (12 maps of ViT-B/16 at
        # batch 32 are 715 MB, a second or more of page faults on these machines).
        x = np.asarray(x)
    return np.asarray(x, dtype=dtype)


def named_blocks(attention) -> List[Tuple[str, np.ndarray]]:
    """Attention of one or more blocks -> [(name, (B, heads, T, T) array)] in block order.

    Accepts the dict our models return ({"transformer_block_{i}_att": ...}, other keys ignored, sorted by i), a
    list/tuple of per-block arrays, one block (B, heads, T, T), or a stack (B, blocks, heads, T, T). Names are the
    dict keys, "block {i}" for lists and stacks, "attention" for one block; errors use them.
    """
    if isinstance(attention, Mapping):
        keyed = [(int(m.group(1)), str(k), v) for k, v in attention.items() if (m := _BLOCK_KEY.search(str(k)))]
        if not keyed:
            raise ValueError(f"no 'transformer_block_{{i}}_att' keys in the attention dict (keys: "
                             f"{sorted(map(str, attention))[:8]})")
        blocks = [(k, to_numpy(v)) for _, k, v in sorted(keyed, key=lambda item: item[0])]
    elif isinstance(attention, (list, tuple)):
        blocks = [(f"block {i}", to_numpy(a)) for i, a in enumerate(attention)]
    else:
        a = to_numpy(attention)
        if a.ndim == 4:
            blocks = [("attention", a)]
        elif a.ndim == 5:
            blocks = [(f"block {i}", a[:, i]) for i in range(a.shape[1])]
        else:
            raise ValueError(f"attention must be (B, heads, T, T) or (B, blocks, heads, T, T), got {a.shape}")
    if not blocks:
        raise ValueError("no attention blocks given")
    for name, a in blocks:
        if a.ndim != 4 or a.shape[-1] != a.shape[-2]:
            raise ValueError(f"{name}: each block's attention must be (B, heads, T, T), got {a.shape}")
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{name}: attention must be real numbers, got dtype {a.dtype}")
        if a.shape[1] == 0 or a.shape[-1] == 0:
            raise ValueError(f"{name}: attention has no heads or no tokens, shape {a.shape}")
    return blocks


def block_list(attention) -> List[np.ndarray]:
    """Attention of one or more blocks -> list of per-block arrays (B, heads, T, T), in block order (see
    `named_blocks` for the accepted forms)."""
    return [a for _, a in named_blocks(attention)]


def check_finite(name: str, a: np.ndarray) -> np.ndarray:
    """`a` unchanged; a ValueError naming `name` when it holds NaN or Inf."""
    if a.dtype.kind == "f" and not np.isfinite(a.sum(dtype=np.float64)):  # one pass; exact check only on failure
        finite = np.isfinite(a)
        if not finite.all():
            bad = a.size - int(np.count_nonzero(finite))
            raise ValueError(f"{name} contains NaN/Inf ({bad} of {a.size} values): the forward pass produced "
                             f"non-finite attention (float16 overflow, broken weights or non-finite input images)")
    return a


def check_consistent(blocks: Sequence[Tuple[str, np.ndarray]], *, batch: bool = True, heads: bool = True) -> None:
    """Blocks [(name, (B, heads, T, T))] agree in token count (and batch size, head count when asked)."""
    first, ref = blocks[0]
    axes = [("tokens", -1, True), ("batch size", 0, batch), ("heads", 1, heads)]
    for name, a in blocks[1:]:
        for what, axis, wanted in axes:
            if wanted and a.shape[axis] != ref.shape[axis]:
                raise ValueError(f"attention blocks differ in {what}: {first} is {ref.shape} but {name} is "
                                 f"{a.shape} (B, heads, T, T); pass blocks from one forward pass of one model")


def is_single_block(attention) -> bool:
    """True for one block's array (B, heads, T, T); False for dicts, lists and (B, blocks, heads, T, T) stacks."""
    if isinstance(attention, (Mapping, list, tuple)):
        return False
    return len(getattr(attention, "shape", np.shape(attention))) == 4


def resolve_grid(num_patches: int, grid_size: Optional[Sequence[int]] = None) -> Tuple[int, int]:
    """(gh, gw) for `num_patches` tokens: `grid_size` checked, or the square grid when none is given."""
    if grid_size is not None:
        gh, gw = (int(s) for s in grid_size)
        if gh * gw != num_patches:
            raise ValueError(f"grid_size {gh}x{gw} = {gh * gw} patches, but the attention has {num_patches} "
                             f"patch tokens; check num_prefix_tokens and grid_size")
        return gh, gw
    side = int(round(num_patches ** 0.5))
    if side * side != num_patches:
        raise ValueError(f"{num_patches} patch tokens do not form a square grid; pass grid_size=(gh, gw)")
    return side, side


def check_prefix(num_tokens: int, num_prefix_tokens: int) -> int:
    """Number of patch tokens, after checking `num_prefix_tokens` against the token count."""
    if not 0 <= num_prefix_tokens < num_tokens:
        raise ValueError(f"num_prefix_tokens={num_prefix_tokens} does not fit {num_tokens} tokens")
    return num_tokens - num_prefix_tokens


def token_index(token: Union[int, str], num_prefix_tokens: int, num_tokens: int) -> int:
    """"cls"/"class" -> 0, "dist"/"distillation" -> 1 (distilled models only), or an int index."""
    if isinstance(token, str):
        names = {"cls": 0, "class": 0, "dist": 1, "distillation": 1}
        if token not in names:
            raise ValueError(f"token must be an index or one of {sorted(names)}, got {token!r}")
        index = names[token]
        if index >= num_prefix_tokens:
            raise ValueError(f"token {token!r} needs {index + 1} prefix tokens, the model has {num_prefix_tokens}")
        return index
    index = int(token)
    if not -num_tokens <= index < num_tokens:
        raise ValueError(f"token index {index} is out of range for {num_tokens} tokens")
    return index % num_tokens
