"""`vit-tf` command line: a thin layer of argument parsing over the library.

Each subcommand lives in `vit_tf.commands.<name>` and exposes `add_parser(subparsers)`, which registers the
subcommand and sets `func(args) -> int` as its handler.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS = ("convert", "eval", "probe", "distance", "video")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vit-tf", description="Vision Transformers that show their attention.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"vit_tf.commands.{name}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, KeyError, ImportError, OSError) as e:
        # One clear line for bad input; tracebacks only with --verbose.
        if args.verbose:
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"vit-tf {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
