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
