"""Architecture configs as data.

The size table follows Dosovitskiy et al. 2020, "An Image is Worth 16x16 Words", Table 1 (Base, Large,
Huge) and Touvron et al. 2021, "Training data-efficient image transformers", Table 1 (Tiny, Small). DINOv2's
ViT-g/14 (Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision"; the official
`vit_giant2` of facebookresearch/dinov2) is `DINOV2_GIANT`: its SwiGLU MLP does not fit the GELU size table.
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
#   "dinov2_linear":  DINOv2 hub classifier with 1 layer: [final-norm class token, mean of final-norm patch tokens]
#                     concatenated (registers excluded from the mean), as `dinov2.hub.classifiers`.
#   "dinov2_linear4": DINOv2 hub classifier with 4 layers: the final-normed class tokens of the last 4 blocks, then
#                     the mean of the last block's final-normed patch tokens, concatenated.
HEAD_TYPES = ("token", "distilled", "dino_last4", "dino_avgpool", "dinov2_linear", "dinov2_linear4")

# The MLP of a block: "gelu" is fc1 -> exact GELU -> fc2; "swiglu" is DINOv2's SwiGLUFFN in timm's packed layout:
# fc1 (D -> 2 * mlp_dim) split in halves x1, x2, then fc2(silu(x1) * x2).
MLP_TYPES = ("gelu", "swiglu")

# How position embeddings are resampled to another grid (at load time and for other input sizes):
#   "timm_antialias": timm's `resample_abs_pos_embed`: bicubic with antialias, output size given (also what the
#                     official DINOv2 backbones with registers and Hugging Face Dinov2WithRegisters do).
#   "bicubic":        `F.interpolate(mode="bicubic", align_corners=False)` without antialias, output size given:
#                     Hugging Face ViT / DeiT / Dinov2 (and their ONNX exports).
#   "bicubic_offset": official DINOv2 backbones without registers (`interpolate_offset=0.1`): no antialias, scale
#                     factor (n + 0.1) / M per axis, skipped when the grid is the checkpoint's.
POS_EMBED_INTERPOLATIONS = ("timm_antialias", "bicubic", "bicubic_offset")

# DINOv2 ViT-g/14 (`vit_giant2`, ffn_layer="swiglufused": hidden (int(4 * 1536 * 2 / 3) + 7) // 8 * 8 = 4096).
DINOV2_GIANT = dict(embed_dim=1536, depth=40, num_heads=24, mlp_dim=4096, mlp_type="swiglu")


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
        layer_norm_eps: LayerNorm epsilon (1e-6 in ViT, DeiT, DINO and DINOv2; 1e-12 in Hugging Face ViT/DeiT).
        num_register_tokens: learned register tokens after the class token (Darcet et al. 2024; 4 in DINOv2-reg).
        no_embed_class: position embeddings cover the patch grid only and prefix tokens get none (timm's flag; the
            DINOv2 register models, whose class-token position is folded into `cls_token` when read).
        init_values: LayerScale (`ls1`, `ls2` with weight `gamma`) on both residual branches, initialised to this
            value; None for no layer scale (DINOv2 has it, ViT/DeiT/DINO do not).
        mlp_type: one of MLP_TYPES.
        pos_embed_interpolation: one of POS_EMBED_INTERPOLATIONS.
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
    num_register_tokens: int = 0
    no_embed_class: bool = False
    init_values: Optional[float] = None
    mlp_type: str = "gelu"
    pos_embed_interpolation: str = "timm_antialias"

    def __post_init__(self):
        object.__setattr__(self, "img_size", to_2tuple(self.img_size))
        if self.head_type not in HEAD_TYPES:
            raise ValueError(f"head_type must be one of {HEAD_TYPES}, got {self.head_type!r}")
        if self.mlp_type not in MLP_TYPES:
            raise ValueError(f"mlp_type must be one of {MLP_TYPES}, got {self.mlp_type!r}")
        if self.pos_embed_interpolation not in POS_EMBED_INTERPOLATIONS:
            raise ValueError(f"pos_embed_interpolation must be one of {POS_EMBED_INTERPOLATIONS}, got "
                             f"{self.pos_embed_interpolation!r}")
        if self.num_register_tokens < 0:
            raise ValueError(f"num_register_tokens must be >= 0, got {self.num_register_tokens}")
        if self.num_register_tokens and self.head_type == "distilled":
            raise ValueError("register tokens are not supported together with a distillation token")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        for side in self.img_size:
            if side % self.patch_size:
                raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches: class, then distillation (DeiT) or registers (DINOv2-reg)."""
        return (2 if self.head_type == "distilled" else 1) + self.num_register_tokens

    @property
    def num_pos_prefix_tokens(self) -> int:
        """Rows of `pos_embed` before the patch grid: 0 with `no_embed_class`, else `num_prefix_tokens`."""
        return 0 if self.no_embed_class else self.num_prefix_tokens

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
