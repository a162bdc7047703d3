"""`vit-tf convert`: official checkpoint -> SavedModel, .keras, config.json and a parity report against timm."""

from __future__ import annotations

import ast
import json
import sys


def add_parser(subparsers):
    p = subparsers.add_parser(
        "convert", help="convert official weights to a SavedModel and prove them against timm",
        description="Write DIR/saved_model/, DIR/model.keras, DIR/config.json and DIR/report.json. When torch and "
                    "timm are installed the port is compared with timm on the same inputs (exit status 1 above "
                    "tolerance); without them the report says the parity check was SKIPPED.")
    p.add_argument("model", nargs="?", help="weight name, e.g. deit_tiny_patch16_224.fb_in1k")
    p.add_argument("--all", action="store_true", help="convert every registry entry into OUTPUT/<name>/")
    p.add_argument("--checkpoint", action="append", default=None,
                   help="local file or URL instead of the registry's download; give it twice for a DINO linear "
                        "model (backbone, then linear head)")
    p.add_argument("--output", required=True, help="output directory")
    p.add_argument("--img-size", type=int, default=None, help="build for this resolution (resamples positions)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a ViTConfig field, e.g. --set depth=2 (for experiments and tests)")
    p.add_argument("--no-parity", action="store_true", help="do not run the timm reference (recorded as skipped)")
    p.add_argument("--atol-outputs", type=float, default=None, help="max abs logit/feature difference (1e-4)")
    p.add_argument("--atol-attention", type=float, default=None, help="max abs attention difference (1e-5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.add_argument("--quiet", action="store_true", help="no download progress bar")
    p.set_defaults(func=run)
    return p


def parse_overrides(items) -> dict:
    """["depth=2", "img_size=(32, 32)"] -> {"depth": 2, "img_size": (32, 32)}; values are Python literals."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes FIELD=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def run(args) -> int:
    from conversion.convert import ATTENTION_TOLERANCE, OUTPUT_TOLERANCE, ParityError, convert, convert_all

    if bool(args.model) == bool(args.all):
        raise ValueError("give either a model name or --all")
    kwargs = dict(parity=not args.no_parity, overwrite=args.overwrite, progress=not args.quiet,
                  output_tolerance=OUTPUT_TOLERANCE if args.atol_outputs is None else args.atol_outputs,
                  attention_tolerance=ATTENTION_TOLERANCE if args.atol_attention is None else args.atol_attention,
                  img_size=args.img_size, **parse_overrides(args.overrides))
    if args.all:
        if args.checkpoint:
            raise ValueError("--checkpoint applies to one model, not --all")
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
