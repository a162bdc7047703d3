"""Architecture configs as data.

The size table follows Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words", Table 1 (Base, Large,
Huge) and Touvron et al. 2021, "Training data-efficient image transformers", Table 1 (Tiny, Small).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional, Tuple

# name -> (embed_dim, depth, num_heads, mlp_dim)
SIZES = {
    "Ti": (192, 12, 3, 768),
    "S": (384, 12, 6, 1536),
    "B": (768, 12, 12, 3072),
    "L": (1024, 24, 16, 4096),
    "H": (1280, 32, 16, 5120),
}

# What the model returns from its prefix tokens.
#   "token":          head on the class token (ViT, DeiT; or the class-token feature when num_classes == 0).
#   "distilled":      DeiT distilled: mean of head(class) and head_dist(distillation).
#   "dino_last4":     DINO ViT-S linear eval: class tokens of the last 4 blocks (each final-normed) concatenated.
#   "dino_avgpool":   DINO ViT-B linear eval: last block's class token and patch-token mean, interleaved per
#                     channel, exactly as `torch.cat((cls[..., None], avg[..., None]), -1).reshape(B, -1)`.
HEAD_TYPES = ("token", "distilled", "dino_last4", "dino_avgpool")


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """Architecture of one Vision Transformer.

    Args:
        img_size: (height, width) the position embeddings are built for.
        patch_size: side of the square patches.
        embed_dim: token width D.
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        mlp_dim: hidden width of the MLP.
        num_classes: classifier outputs; 0 means no classifier (features out).
        head_type: one of HEAD_TYPES.
        representation_size: width of the tanh "pre_logits" layer of the 2020 ImageNet-21k checkpoints, or None.
        qkv_bias: bias on the fused query/key/value projection.
        layer_norm_eps: LayerNorm epsilon (1e-6 in ViT, DeiT and DINO).
    """

    img_size: Tuple[int, int] = (224, 224)
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_dim: int = 3072
    num_classes: int = 1000
    head_type: str = "token"
    representation_size: Optional[int] = None
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6

    def __post_init__(self):
        object.__setattr__(self, "img_size", to_2tuple(self.img_size))
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"head_type must be one of {HEAD_TYPES}, got {self.head_type!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for side in self.img_size:
            if side % self.patch_size:
                raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")

    @property
    def num_prefix_tokens(self) -> int:
        return 2 if self.head_type == "distilled" else 1

    @property
    def grid_size(self) -> Tuple[int, int]:
        return (self.img_size[0] // self.patch_size, self.img_size[1] // self.patch_size)

    def replace(self, **changes) -> "ViTConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["img_size"] = list(self.img_size)
        return d


def to_2tuple(size) -> Tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"expected an int or (height, width), got {size!r}")
    return size


_ARCH_RE = re.compile(r"^(Ti|S|B|L|H)/(\d+)$")


def parse_arch(spec: str, **overrides) -> ViTConfig:
    """'B/16' -> ViTConfig of ViT-Base with 16x16 patches (big_vision's naming)."""
    m = _ARCH_RE.match(spec)
    if not m:
        raise ValueError(f"architecture spec must look like 'B/16' with size in {sorted(SIZES)}, got {spec!r}")
    width, depth, heads, mlp = SIZES[m.group(1)]
    return ViTConfig(patch_size=int(m.group(2)), embed_dim=width, depth=depth, num_heads=heads, mlp_dim=mlp,
                     **overrides)
