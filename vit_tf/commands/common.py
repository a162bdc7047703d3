"""Arguments, checks, model loading and output writing shared by the subcommands.

Nothing at module level imports TensorFlow (or NumPy): the parsers and the checks run before it is loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import tempfile
from typing import Iterator, Optional, Tuple

# The commands import these loading names from here (`load_model` and `load_for_analysis` are below).
from ..loading import RANDOM_WEIGHTS, Fields, figure_label, is_converted_dir, is_random  # noqa: F401
from ..registry import Recipe


# -- argument types: argparse reports "argument --dpi: must be at least 1, got 0" and exits with status 2 -----------
def _number(text, kind):
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def name_list(text: str, choices, what: str, everything: Optional[str] = None, nothing: Optional[str] = None):
    """A comma-separated list of names from `choices` -> the names, in order, without repeats; `everything` (e.g.
    "all") gives every choice and `nothing` (e.g. "none") an empty list. Unknown or no names: an argparse error
    naming the choices."""
    text = text.strip()
    if everything is not None and text == everything:
        return list(choices)
    if nothing is not None and text == nothing:
        return []
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        words = " or ".join(repr(w) for w in (everything, nothing) if w is not None)
        raise argparse.ArgumentTypeError(f"unknown {what}(s) {unknown or [text]}; choose from {', '.join(choices)} "
                                         f"(comma-separated){' or ' + words if words else ''}")
    return list(dict.fromkeys(names))


def positive_int(text) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def unit_interval(low_open: bool = False, high_open: bool = False):
    """A float type for [0, 1], (0, 1], [0, 1) or (0, 1)."""
    interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")

    def parse(text) -> float:
        value = _number(text, float)
        low_ok = value > 0 if low_open else value >= 0
        high_ok = value < 1 if high_open else value <= 1
        if not (low_ok and high_ok):
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
        return value

    parse.__name__ = f"number in {interval}"
    return parse


# -- arguments -------------------------------------------------------------------------------------------------------
def add_model_arguments(parser, required: bool = True, multiple: bool = False):
    parser.add_argument("--model", required=required, action="append" if multiple else "store",
                        help="registry name (`vit-tf models` lists them) or a directory written by `vit-tf convert`"
                             + ("; repeat to compare models" if multiple else ""))
    parser.add_argument("--checkpoint", default=None,
                        help="local checkpoint in any supported format (.npz, .pth, .safetensors); "
                             "without it the official weights are downloaded on first use")


def add_analysis_arguments(parser, out_help: str, multiple: bool = False):
    """--model/--checkpoint, --random-weights, --seed and --out, shared by probe, distance and video."""
    add_model_arguments(parser, multiple=multiple)
    parser.add_argument("--random-weights", action="store_true",
                        help="SMOKE TEST ONLY: build the architecture with random weights instead of loading "
                             "weights (no download); the figures then show no learned structure and say so")
    parser.add_argument("--seed", type=int, default=0, help="seed of --random-weights (same weights every run)")
    parser.add_argument("--out", required=True, help=out_help)


DTYPES = ("float32", "bfloat16", "float16", "mixed_bfloat16", "mixed_float16")


def add_compute_arguments(parser, strategy: bool = False):
    """--dtype (and --strategy for dataset commands)."""
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="compute dtype of the blocks; attention, softmax and outputs stay float32")
    if strategy:
        parser.add_argument("--strategy", choices=("none", "mirrored", "multiworker"), default="none",
                            help="tf.distribute: mirrored = every local GPU (or the CPU); multiworker = hosts "
                                 "listed in TF_CONFIG, each running this same command")


def with_dtype(net, dtype: str):
    """The loaded model in `--dtype` (same weights and recipe)."""
    from ..factory import rebuild

    return rebuild(net, dtype=None if dtype == "float32" else dtype)


# -- checks before TensorFlow is loaded ------------------------------------------------------------------------------
def _nearest_existing(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _check_writable(path: str, flag: str):
    base = _nearest_existing(path)
    if not os.path.isdir(base):
        raise NotADirectoryError(f"{flag} {path}: {base} is a file, so nothing can be written under it")
    if not os.access(base, os.W_OK | os.X_OK):
        raise PermissionError(f"{flag} {path}: no permission to write in {base}")


def check_output_dir(path: str, flag: str = "--out"):
    """An output folder: absent (created at the end) or an existing folder, somewhere writable."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{flag} {path}: exists and is not a folder")
    _check_writable(path, flag)


def check_output_file(path: str, flag: str = "--output", suffixes: Tuple[str, ...] = ()):
    """An output file: not a folder, with one of `suffixes` when given, somewhere writable."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{flag} {path}: is a folder; give a file name")
    if suffixes and os.path.splitext(path)[1].lower() not in suffixes:
        raise ValueError(f"{flag} {path}: give a file name ending in {' or '.join(suffixes)}")
    _check_writable(path, flag)


def check_input_file(path: str, what: str, flag: Optional[str] = None):
    """An existing regular file (a folder or a missing path is an error naming the argument)."""
    name = f"{flag} {path}" if flag else f"{what} {path}"
    if os.path.isdir(path):
        raise IsADirectoryError(f"{name}: is a folder, not {'an' if what[0] in 'aeiou' else 'a'} {what} file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{name}: no permission to read it")


def check_image(path: str):
    """An image file that decodes completely (truncated or non-image files fail here, before any model is
    loaded)."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"image {path}: is a folder, not an image file (for a folder of images use "
                                f"`vit-tf distance`)")
    check_input_file(path, "image")
    from ..preprocessing import to_rgb_image

    to_rgb_image(path)  # ValueError "... is not a readable image: ..."


def model_config(model: str):
    """The ViTConfig `--model` will have, read without loading it (registry or config.json), or None."""
    from ..configs import ViTConfig
    from ..registry import arch_config, resolve

    try:
        if os.path.isdir(model):
            with open(os.path.join(model, "config.json"), encoding="utf-8") as f:
                fields = json.load(f).get("config") or {}
            return ViTConfig(**fields)
        arch, entry = resolve(model)
        return entry.config if entry is not None else arch_config(arch)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def check_model(model: str, checkpoint: Optional[str] = None, random_weights: bool = False):
    """`--model` is a registry name (a misspelling gets the closest names) or a converted directory; a local
    `--checkpoint` exists; `--random-weights` goes with a registry name only."""
    from ..registry import resolve

    if os.path.isdir(model):
        if not is_converted_dir(model):
            raise ValueError(f"--model {model}: a directory passed as a model must be written by `vit-tf convert` "
                             f"(config.json missing)")
    elif os.path.isfile(model):
        raise ValueError(f"--model {model}: is a file; pass a registry name with --checkpoint {model}, or a "
                         f"directory written by `vit-tf convert`")
    else:
        resolve(model)  # KeyError: unknown model 'x'; did you mean 'y'?
    if random_weights and (checkpoint is not None or is_converted_dir(model)):
        raise ValueError("--random-weights builds a registry architecture; it takes neither --checkpoint nor "
                         "a converted directory")
    if checkpoint is not None:
        check_checkpoint(checkpoint)


def check_checkpoint(path: str):
    """--checkpoint: a URL, or an existing file or Hugging Face checkpoint folder."""
    if "://" in path:
        return
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"--checkpoint {path}: no permission to read it")


def check_block(config, block: Optional[int], name: str, flag: str = "--block"):
    """`block` indexes the model's blocks (negative counts from the end)."""
    if config is None or block is None:
        return
    depth = config.depth
    if not -depth <= block < depth:
        raise ValueError(f"{flag} {block}: out of range for {name}, which has {depth} blocks "
                         f"(use 0..{depth - 1}, or -1 for the last)")


def check_token(config, token: str, name: str, flag: str = "--token"):
    # head_type, not num_prefix_tokens: DINOv2 registers are prefix tokens too, but not a distillation token
    if config is not None and token == "dist" and getattr(config, "head_type", None) != "distilled":
        raise ValueError(f"{flag} dist: {name} has no distillation token (only distilled DeiT models do); "
                         f"use --token cls")


# -- loading: `vit_tf.loading`, with errors that name this command line's flags -------------------------------------
CLI_FIELDS = Fields(model="--model", checkpoint="--checkpoint", random_weights="--random-weights",
                    offline="pass local weights: --checkpoint FILE (an official .npz/.pth or timm .safetensors) or "
                            "--model DIR written by `vit-tf convert`; --random-weights runs a smoke test without "
                            "weights")


def load_model(model: str, checkpoint: Optional[str] = None) -> Tuple[object, Recipe, dict]:
    """`--model` / `--checkpoint` -> (VisionTransformer, its `recipe`, info dict with "name" and "source"); see
    `vit_tf.loading.load_model`."""
    from ..loading import load_model as load

    return load(model, checkpoint, fields=CLI_FIELDS)


def load_for_analysis(model: str, checkpoint=None, random_weights: bool = False, seed: int = 0):
    """`--model` / `--checkpoint` / `--random-weights` / `--seed` -> (VisionTransformer, recipe, info dict); see
    `vit_tf.loading.load_model_for_analysis` (seeded random weights; offline, the error says how to pass local
    weights)."""
    from ..loading import load_model_for_analysis

    # Weights are opened through this module's `load_model`, the one seam for the command line's loads.
    return load_model_for_analysis(model, checkpoint, random_weights, seed, fields=CLI_FIELDS,
                                   load=lambda m, c: load_model(m, c))


# -- outputs ---------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def output_directory(path: str) -> Iterator[str]:
    """Yield an empty temporary folder for a command's outputs; when the block completes they are moved into
    `path` (renamed as a whole when `path` does not exist, else file by file, keeping other files there). On any
    error or interrupt the temporary folder is removed, so `path` never holds a partial result.

    Enter it only once inputs are checked and the results computed: that is when `path` and its parents are made.
    """
    if not os.path.isdir(path):
        from ..files import atomic_directory

        with atomic_directory(path) as tmp:
            yield tmp
        return
    tmp = tempfile.mkdtemp(prefix=".vit-tf.tmp-", dir=path)
    try:
        yield tmp
        for name in sorted(os.listdir(tmp)):
            os.replace(os.path.join(tmp, name), os.path.join(path, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str, text: str):
    """Write a text file under a temporary name, renamed into place when complete."""
    from ..files import atomic_file

    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
