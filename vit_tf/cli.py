"""`vit-tf` command line: a thin layer of argument parsing over the library.

Each subcommand lives in `vit_tf.commands.<name>` and exposes `add_parser(subparsers)`, which registers the
subcommand and sets `func(args) -> int` as its handler, and optionally `check(args)`, which validates the
arguments cheaply (files, model names, ranges) before TensorFlow is loaded.

Nothing here imports TensorFlow: `--help`, `--version`, argument errors and `vit-tf models` answer at once. The
other commands import TensorFlow after their checks, quietly unless `--verbose` (its C++ start-up messages such
as the oneDNN notice or `failed call to cuInit` are discarded). Every error is one line
`vit-tf COMMAND: error: ...` and exit status 2 for bad input (1 for anything unexpected); `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import tempfile

COMMANDS = ("models", "probe", "distance", "video", "eval", "convert", "explain", "faithfulness", "similarity", "heads",
            "app", "explain-benchmark")
NO_TENSORFLOW = frozenset({"models"})  # commands that never need TensorFlow


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to each option's help, except where the default is None, False or empty."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or default in ([], ()) \
                or "%(default)" in text:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose help shows defaults (used for `vit-tf` and each subcommand)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def version() -> str:
    try:
        from . import __version__

        return __version__
    except ImportError:  # pragma: no cover - a package without __version__
        from importlib.metadata import version as dist_version

        return dist_version("vit_tf")


def _global_flags(parser, default):
    # On the main parser (default False) and on every subcommand (default SUPPRESS, so that `vit-tf -v probe ...`
    # and `vit-tf probe ... -v` both work without the subcommand resetting the flag).
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="log progress details, and TensorFlow's own start-up and device messages")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="on error, show the full Python traceback instead of one line")


def build_parser() -> argparse.ArgumentParser:
    """The `vit-tf` parser. Importing the subcommands' modules does not import TensorFlow."""
    parser = Parser(prog="vit-tf", description="Vision Transformers that show their attention.",
                    epilog="Run `vit-tf COMMAND --help` for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    _global_flags(parser, False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        p = importlib.import_module(f"vit_tf.commands.{name.replace('-', '_')}").add_parser(sub)
        _global_flags(p, argparse.SUPPRESS)
    return parser


# -- TensorFlow, quietly ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _stderr_captured():
    """Send file descriptor 2 (where TensorFlow's C++ logging writes) to a temporary file; yields a function that
    returns what was written."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            def captured() -> str:
                sys.stderr.flush()
                tmp.seek(0)
                return tmp.read().decode("utf-8", "replace")

            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow(verbose: bool = False):
    """Import TensorFlow and Keras before any command needs them.

    Unless `verbose`: TF_CPP_MIN_LOG_LEVEL=3 silences TensorFlow's C++ logging below FATAL once it is set up, and
    what TensorFlow prints while its libraries load (before that setting takes effect: the oneDNN notice, "Could
    not find cuda drivers", cpu_feature_guard, absl's "WARNING: All log messages before absl::InitializeLog()")
    is captured and discarded; if the import fails, it is shown. GPUs stay visible: nothing hides devices.
    """
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if not verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        for name in ("absl", "tensorflow", "h5py"):  # Python-side loggers of TensorFlow and Keras
            logging.getLogger(name).setLevel(logging.ERROR)
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    if verbose:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
        return
    error = None
    with _stderr_captured() as captured:
        try:
            import tensorflow  # noqa: F401
            import keras  # noqa: F401
        except BaseException as e:  # show what TensorFlow said about it
            error, text = e, captured()
    if error is not None:
        sys.stderr.write(text)
        raise error


# -- errors ----------------------------------------------------------------------------------------------------------
BAD_INPUT = (ValueError, KeyError, OSError, ImportError)


def describe_error(error: BaseException):
    """-> (one-line message, exit status): 2 for bad input, 1 for anything else."""
    if isinstance(error, KeyError) and error.args:
        message = str(error.args[0])
    else:
        message = str(error).strip() or type(error).__name__
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        first = message.splitlines()[0] if message else ""
        return f"out of memory ({first[:200]}); lower --batch-size or use a smaller model", 1
    if isinstance(error, BAD_INPUT):
        return message, 2
    first = message.splitlines()[0] if message else ""
    return f"unexpected {type(error).__name__}: {first} (rerun with --debug for the traceback)", 1


def _configure_logging(verbose: bool):
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    logging.getLogger("vit_tf").setLevel(logging.INFO if verbose else logging.WARNING)


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, argument errors (argparse printed the message)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    _configure_logging(args.verbose)
    try:
        check = getattr(args, "check", None)
        if check is not None:
            check(args)
        if args.command not in NO_TENSORFLOW:
            import_tensorflow(args.verbose)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"vit-tf {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line, no traceback: the message names the argument or file at fault
        if args.debug:
            raise
        message, status = describe_error(e)
        print(f"vit-tf {args.command}: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
