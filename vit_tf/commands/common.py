"""Arguments and model loading shared by the subcommands."""

from __future__ import annotations

import os
from typing import Optional, Tuple

from ..registry import Recipe


def add_model_arguments(parser, required: bool = True, multiple: bool = False):
    parser.add_argument("--model", required=required, action="append" if multiple else "store",
                        help="registry name (see vit_tf.list_models()) or a directory written by `vit-tf convert`")
    parser.add_argument("--checkpoint", default=None,
                        help="local checkpoint in any supported format (.npz, .pth, .safetensors); "
                             "without it the official weights are downloaded on first use")


def load_model(model: str, checkpoint: Optional[str] = None) -> Tuple[object, Recipe, dict]:
    """`--model` / `--checkpoint` -> (VisionTransformer, its `recipe`, info dict with "name" and "source").

    A converted directory is opened by `vit_tf.saved.load_converted`; a registry name gets its weights from
    `--checkpoint` or the official download.
    """
    from ..factory import create_model
    from ..saved import is_converted_dir, load_converted

    if is_converted_dir(model):
        net = load_converted(model)
        return net, net.recipe, {"name": net.weight_name or os.path.basename(model.rstrip("/")), "source": model}
    if os.path.exists(model):
        raise ValueError(f"--model {model}: a directory passed as a model must be written by `vit-tf convert` "
                         f"(config.json missing)")
    net = create_model(model, pretrained=checkpoint is None, checkpoint_path=checkpoint)
    return net, net.recipe, {"name": net.weight_name or net.name, "source": checkpoint or "official weights"}


def add_analysis_arguments(parser, out_help: str, multiple: bool = False):
    """--model/--checkpoint, --random-weights and --out, shared by probe, distance and video."""
    add_model_arguments(parser, multiple=multiple)
    parser.add_argument("--random-weights", action="store_true",
                        help="SMOKE TEST ONLY: build the architecture with random weights instead of loading "
                             "weights (no download); the figures then show no learned structure")
    parser.add_argument("--out", required=True, help=out_help)


def load_for_analysis(model: str, checkpoint=None, random_weights: bool = False):
    """`--model` / `--checkpoint` / `--random-weights` -> (VisionTransformer, recipe, info dict).

    Without a checkpoint the official weights are downloaded; when that fails (offline) the error says how to pass
    local weights instead.
    """
    from ..saved import is_converted_dir

    if random_weights:
        from ..factory import create_model

        if checkpoint is not None or is_converted_dir(model):
            raise ValueError("--random-weights builds a registry architecture; it takes neither --checkpoint nor "
                             "a converted directory")
        net = create_model(model, pretrained=False)
        return net, net.recipe, {"name": net.weight_name or net.name, "source": "random weights (smoke test, no learned structure)"}
    if checkpoint is not None or is_converted_dir(model):
        return load_model(model, checkpoint)
    try:
        return load_model(model, None)
    except FileNotFoundError:
        raise
    except OSError as e:  # download failures (conversion.download.DownloadError) and other I/O
        raise OSError(f"could not get the official weights of {model} ({e}). Offline, pass local weights: "
                      f"--checkpoint FILE (an official .npz/.pth or timm .safetensors) or --model DIR written by "
                      f"`vit-tf convert`; --random-weights runs a smoke test without weights") from None
