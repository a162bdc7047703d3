"""Arguments and model loading shared by the subcommands."""

from __future__ import annotations

import json
import os
from typing import Optional, Tuple

from ..registry import Recipe


def add_model_arguments(parser, required: bool = True, multiple: bool = False):
    parser.add_argument("--model", required=required, action="append" if multiple else "store",
                        help="registry name (see vit_tf.list_models()) or a directory written by `vit-tf convert`")
    parser.add_argument("--checkpoint", default=None,
                        help="local checkpoint in any supported format (.npz, .pth, .safetensors); "
                             "without it the official weights are downloaded on first use")


def is_converted_dir(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))


def load_model(model: str, checkpoint: Optional[str] = None) -> Tuple[object, Recipe, dict]:
    """`--model` / `--checkpoint` -> (VisionTransformer, eval recipe, info dict with "name" and "source").

    A converted directory loads `DIR/model.keras` and the recipe in `DIR/config.json`.
    """
    from ..factory import create_model

    if is_converted_dir(model):
        import keras
        with open(os.path.join(model, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        keras_path = os.path.join(model, "model.keras")
        if not os.path.isfile(keras_path):
            raise FileNotFoundError(f"{model} has config.json but no model.keras; run `vit-tf convert` again")
        net = keras.saving.load_model(keras_path, compile=False)
        pre = cfg["preprocessing"]
        recipe = Recipe(input_size=tuple(pre["input_size"]), crop_pct=pre["crop_pct"],
                        interpolation=pre["interpolation"], mean=tuple(pre["mean"]), std=tuple(pre["std"]))
        net.entry = None
        return net, recipe, {"name": cfg.get("name", os.path.basename(model.rstrip("/"))), "source": model}
    if os.path.exists(model) and not is_converted_dir(model):
        raise ValueError(f"--model {model}: a directory passed as a model must be written by `vit-tf convert` "
                         f"(config.json missing)")
    net = create_model(model, pretrained=checkpoint is None, checkpoint_path=checkpoint)
    if net.entry is None:
        raise ValueError(f"--model {model}: no eval recipe is registered for it; use a weight name such as "
                         f"{model}.<tag> (see vit_tf.list_models('{model}.*'))")
    return net, net.entry.recipe, {"name": net.entry.name, "source": checkpoint or "official weights"}


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
    if random_weights:
        from ..factory import create_model
        from ..registry import Recipe

        if checkpoint is not None or is_converted_dir(model):
            raise ValueError("--random-weights builds a registry architecture; it takes neither --checkpoint nor "
                             "a converted directory")
        net = create_model(model, pretrained=False)
        recipe = net.entry.recipe if net.entry is not None else Recipe(input_size=net.config.img_size)
        return net, recipe, {"name": net.name, "source": "random weights (smoke test, no learned structure)"}
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
