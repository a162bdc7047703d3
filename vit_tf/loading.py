"""One way to get a model for analysis, for the command line, the app and notebooks alike.

`load_model_for_analysis` takes what a user names: a registry name (official weights, downloaded once), a registry
name with a local checkpoint, a directory written by `vit-tf convert`, or a registry architecture with seeded random
weights (an offline smoke test, labelled as such). It returns the model, its eval recipe and an info dict whose
"source" says where the weights came from; `figure_label(info)` is the name to put in titles ("name [RANDOM
WEIGHTS]" for random weights).

Errors name the caller's own inputs: `Fields` holds how they are called (the CLI's flags, the app's boxes, this
module's argument names by default), so one loader serves every front end.

Nothing at module level imports TensorFlow: the command line imports this before its checks.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Tuple

RANDOM_WEIGHTS = "random weights"  # in info["source"] of randomly initialised models


@dataclasses.dataclass(frozen=True)
class Fields:
    """How the caller's inputs are named in error messages.

    model, checkpoint, random_weights: the names of those inputs (e.g. "--model", "--checkpoint",
    "--random-weights" on the command line). offline: what to do without a network, after "Offline, ".
    """

    model: str = "model"
    checkpoint: str = "checkpoint"
    random_weights: str = "random_weights=True"
    offline: str = ("pass local weights: checkpoint=FILE (an official .npz/.pth or timm .safetensors) or model=DIR "
                    "written by `vit-tf convert`; random_weights=True runs a smoke test without weights")


ARGUMENTS = Fields()
Loaded = Tuple[object, object, dict]  # (VisionTransformer, its Recipe, info)


def is_converted_dir(path) -> bool:
    """A directory written by `vit-tf convert` (config.json beside the weights)."""
    from .saved import is_converted_dir as converted

    return converted(path)


def check_checkpoint(path: str):
    """A URL, or an existing file or Hugging Face checkpoint folder; else FileNotFoundError("checkpoint not
    found: ...")."""
    if "://" not in path and not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")


def load_model(model: str, checkpoint: Optional[str] = None, *, fields: Fields = ARGUMENTS) -> Loaded:
    """A model with weights: (VisionTransformer, its `recipe`, info {"name", "source", "random_weights": False}).

    Args:
        model: a directory written by `vit-tf convert` (opened by `vit_tf.saved.load_converted`; `checkpoint` is not
            used), a Hugging Face checkpoint folder (`vit_tf.hf.from_hf`), or a registry name, whose weights come from `checkpoint` (a local file in any supported format,
            or a Hugging Face checkpoint folder) or the official download.
        fields: how `model` and `checkpoint` are named in errors.
    Raises KeyError for an unknown registry name (with the closest names), ValueError for a path that is not a
    converted directory, FileNotFoundError for a missing checkpoint, OSError when a download fails.
    """
    from .factory import create_model
    from .registry import resolve
    from .saved import load_converted

    from .hf import from_hf, is_hf_dir

    if is_hf_dir(model):  # a transformers checkpoint folder: the architecture and recipe come from its config
        net = from_hf(model)
        name = net.weight_name or os.path.basename(os.path.normpath(model))
        return net, net.recipe, {"name": name, "source": model, "random_weights": False}
    if is_converted_dir(model):
        net = load_converted(model)
        name = net.weight_name or os.path.basename(os.path.normpath(model))
        return net, net.recipe, {"name": name, "source": model, "random_weights": False}
    if os.path.isfile(model):
        raise ValueError(f"{fields.model} {model}: is a file; pass a registry name with {fields.checkpoint} {model}, "
                         f"or a directory written by `vit-tf convert`")
    if os.path.exists(model):
        raise ValueError(f"{fields.model} {model}: a directory passed as a model must be written by `vit-tf convert` "
                         f"(config.json missing)")
    resolve(model)  # KeyError: unknown model 'x'; did you mean 'y'?
    if checkpoint is not None:
        check_checkpoint(checkpoint)
    net = create_model(model, pretrained=checkpoint is None, checkpoint_path=checkpoint)
    return net, net.recipe, {"name": net.weight_name or net.name, "source": checkpoint or "official weights",
                             "random_weights": False}


def load_model_for_analysis(model: str, checkpoint: Optional[str] = None, random_weights: bool = False,
                            seed: int = 0, *, fields: Fields = ARGUMENTS,
                            load: Optional[Callable[[str, Optional[str]], Loaded]] = None) -> Loaded:
    """What a user names -> (VisionTransformer, its `recipe`, info dict with "name", "source", "random_weights").

    Args:
        model: a registry name, or a directory written by `vit-tf convert`.
        checkpoint: local weights for a registry name (see `load_model`); None: the official download.
        random_weights: build the registry architecture with random weights instead (no download; a smoke test:
            maps show no learned structure). They are seeded with `seed` (`keras.utils.set_random_seed`, which also
            seeds Python's and NumPy's generators), so a smoke test gives the same numbers every run; info["source"]
            then contains "random weights" and `figure_label` marks titles.
        fields: how the caller names its inputs in error messages (default: these argument names).
        load: the function (model, checkpoint) -> (model, recipe, info) that opens weights; default `load_model`
            (a front end passes its own, e.g. to keep the command line's error wording or to simulate being offline
            in a test).
    Raises ValueError when random weights are combined with a checkpoint or a converted directory; OSError saying
    how to pass local weights when the official download fails (offline); see `load_model` for the rest.
    """
    if random_weights:
        import keras

        from .factory import create_model
        from .registry import resolve

        if checkpoint is not None or is_converted_dir(model):
            raise ValueError(f"{fields.random_weights} builds a registry architecture; it takes neither "
                             f"{fields.checkpoint} nor a converted directory")
        resolve(model)  # KeyError: unknown model 'x'; did you mean 'y'?
        keras.utils.set_random_seed(seed)
        net = create_model(model, pretrained=False)
        return net, net.recipe, {"name": net.weight_name or net.name, "random_weights": True,
                                 "source": f"{RANDOM_WEIGHTS}, seed {seed} (smoke test, no learned structure)"}
    if load is None:
        def load(m, c):
            return load_model(m, c, fields=fields)

    if checkpoint is not None or is_converted_dir(model):
        return load(model, checkpoint)
    try:
        return load(model, None)
    except FileNotFoundError:
        raise
    except OSError as e:  # download failures (vit_tf.download.DownloadError) and other I/O
        raise OSError(f"could not get the official weights of {model} ({e}). Offline, {fields.offline}") from None


def is_random(info: dict) -> bool:
    """Whether the info dict of `load_model_for_analysis` describes random weights."""
    return bool(info.get("random_weights")) or RANDOM_WEIGHTS in str(info.get("source", ""))


def figure_label(info: dict) -> str:
    """The model's name for figure titles; random weights say so: "name [RANDOM WEIGHTS]"."""
    return f"{info['name']} [{RANDOM_WEIGHTS.upper()}]" if is_random(info) else info["name"]


__all__ = ["ARGUMENTS", "Fields", "RANDOM_WEIGHTS", "figure_label", "is_random", "load_model",
           "load_model_for_analysis"]
