"""`vit-tf convert`: official checkpoint -> SavedModel, .keras, config.json and a parity report against timm."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import os
import sys

from .common import check_checkpoint, check_output_dir, positive_float, positive_int


def add_parser(subparsers):
    p = subparsers.add_parser(
        "convert", help="convert official weights to a SavedModel and prove them against timm",
        description="Write DIR/saved_model/, DIR/model.keras, DIR/config.json and DIR/report.json (built under a "
                    "temporary name, renamed when complete). When torch and timm are installed the port is "
                    "compared with timm on the same inputs (exit status 1 above tolerance); without them the "
                    "report says the parity check was SKIPPED.")
    p.add_argument("model", nargs="?", help="weight name, e.g. deit_tiny_patch16_224.fb_in1k (`vit-tf models "
                                            "--pretrained` lists them)")
    p.add_argument("--all", action="store_true", help="convert every registry entry into OUTPUT/<name>/")
    p.add_argument("--checkpoint", action="append", default=None,
                   help="local file or URL instead of the registry's download; give it twice for a DINO linear "
                        "model (backbone, then linear head)")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--img-size", type=positive_int, default=None,
                   help="build for this resolution, a multiple of the patch size (resamples positions)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a ViTConfig field, e.g. --set depth=2 (for experiments and tests)")
    p.add_argument("--no-parity", action="store_true", help="do not run the timm reference (recorded as skipped)")
    p.add_argument("--atol-outputs", type=positive_float, default=None,
                   help="max abs logit/feature difference (default 1e-4)")
    p.add_argument("--atol-attention", type=positive_float, default=None,
                   help="max abs attention difference (default 1e-5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--quiet", action="store_true", help="no download progress bar")
    p.set_defaults(func=run, check=check)
    return p


# -- --set FIELD=VALUE -----------------------------------------------------------------------------------------------
def _config_fields() -> dict:
    from ..configs import ViTConfig

    return {f.name: str(f.type) for f in dataclasses.fields(ViTConfig)}


def _minimum(key: str) -> int:
    """Smallest value of an int field: 0 where 0 means "none" (num_classes, fields that default to 0), else 1."""
    from ..configs import ViTConfig

    default = {f.name: f.default for f in dataclasses.fields(ViTConfig)}.get(key)
    return 0 if key == "num_classes" or default == 0 else 1


def _valid_value(kind: str, value) -> bool:
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if kind == "int":
        return is_int(value)
    if kind == "float":
        return is_int(value) or isinstance(value, float)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind.startswith("Optional["):
        return value is None or _valid_value(kind[len("Optional["):-1], value)
    if kind.startswith("Tuple[int"):  # img_size: 224 or (224, 224)
        return is_int(value) or (isinstance(value, (tuple, list)) and len(value) == 2 and all(map(is_int, value)))
    return True


def parse_overrides(items) -> dict:
    """["depth=2", "img_size=(32, 32)"] -> {"depth": 2, "img_size": (32, 32)}; values are Python literals.

    Unknown fields (the valid ones are listed, with the closest first), values of the wrong type and sizes below 1
    are ValueErrors naming the --set item.
    """
    fields = _config_fields()
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set takes FIELD=VALUE, got {item!r}")
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"--set {item}: unknown ViTConfig field {key!r}; {hint}valid fields: "
                             f"{', '.join(fields)}")
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            parsed = value.strip()
        kind = fields[key]
        if not _valid_value(kind, parsed):
            raise ValueError(f"--set {item}: {key} takes {kind.replace('Tuple[int, int]', 'an int or (height, width)')}"
                             f", got {parsed!r}")
        if kind in ("int", "Optional[int]") and parsed is not None and parsed < _minimum(key):
            raise ValueError(f"--set {item}: {key} must be at least {_minimum(key)}")
        if key == "img_size":
            sizes = (parsed,) if isinstance(parsed, int) else parsed
            if min(sizes) < 1:
                raise ValueError(f"--set {item}: img_size must be positive")
        out[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def _check_config(name: str, img_size, overrides: dict):
    """The config `convert` will build: --img-size a multiple of the patch size, fields that fit together."""
    from ..configs import to_2tuple
    from ..registry import arch_config, resolve

    arch, entry = resolve(name)  # KeyError: unknown model 'x'; did you mean 'y'?
    base = entry.config if entry is not None else arch_config(arch)
    patch = overrides.get("patch_size", base.patch_size)
    if img_size is not None:
        size = to_2tuple(img_size)
        if any(s % patch for s in size):
            below = (size[0] // patch) * patch
            suggestion = f"e.g. {below} or {below + patch}" if below else f"e.g. {patch}"
            raise ValueError(f"--img-size {img_size}: not a multiple of the patch size {patch} of {name} "
                             f"({suggestion})")
        overrides = {**overrides, "img_size": size}
    try:
        base.replace(**overrides)
    except (ValueError, TypeError) as e:
        raise ValueError(f"--set/--img-size for {name}: {e}") from None


def check(args):
    if bool(args.model) == bool(args.all):
        raise ValueError("give either a model name or --all")
    overrides = parse_overrides(args.overrides)
    if "img_size" in overrides and args.img_size is not None:
        raise ValueError("give the resolution once: --img-size or --set img_size=..., not both")
    if args.all:
        if args.checkpoint:
            raise ValueError("--checkpoint applies to one model, not --all")
    else:
        _check_config(args.model, args.img_size, overrides)
    for path in args.checkpoint or ():
        check_checkpoint(path)
    check_output_dir(args.output, "--output")
    if not args.all and os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(f"--output {args.output}: exists; pass --overwrite to replace it")


def run(args) -> int:
    from conversion.convert import ATTENTION_TOLERANCE, OUTPUT_TOLERANCE, ParityError, convert, convert_all

    overrides = parse_overrides(args.overrides)
    img_size = args.img_size if args.img_size is not None else overrides.pop("img_size", None)
    kwargs = dict(parity=not args.no_parity, overwrite=args.overwrite, progress=not args.quiet,
                  output_tolerance=OUTPUT_TOLERANCE if args.atol_outputs is None else args.atol_outputs,
                  attention_tolerance=ATTENTION_TOLERANCE if args.atol_attention is None else args.atol_attention,
                  img_size=img_size, **overrides)
    if args.all:
        results = convert_all(args.output, **kwargs)
        print(json.dumps(results, indent=2))
        return int(any(r.startswith("error") for r in results.values()))
    try:
        report = convert(args.model, args.output, checkpoint=args.checkpoint, **kwargs)
    except ParityError as e:
        print(f"vit-tf convert: {e}", file=sys.stderr)
        if e.report:
            print(json.dumps(e.report.get("parity", {}), indent=2), file=sys.stderr)
        print(f"nothing was written to {args.output}", file=sys.stderr)
        return 1
    parity = report["parity"]
    if parity["status"] == "skipped":
        print(f"parity check SKIPPED: {parity['reason']} (the port was NOT compared with timm)")
    else:
        print(f"parity check {parity['status']} against {parity['reference']}: {parity['summary']}")
    print(f"wrote {args.output}: saved_model/, model.keras, config.json, report.json")
    return 0
