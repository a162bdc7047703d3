"""A loaded model and one forward pass: what the views read. `Run` holds the input, the model's outputs and
attention, and its geometry (grid, prefix tokens, blocks, heads), and checks the block, token and patch a view asks
for."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..loading import figure_label
from .common import InputError, whole


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What the model box, the checkpoint box and the random-weights tick ask for.

    name: a registry name, a directory written by `vit-tf convert`, or the label of a model object given to the
    `Explorer`. checkpoint: a local checkpoint file for a registry name. random_weights, seed: build the registry
    architecture with seeded random weights (an offline smoke test).
    """

    name: str
    checkpoint: Optional[str] = None
    random_weights: bool = False
    seed: int = 0


@dataclasses.dataclass
class LoadedModel:
    """A model ready to run: `forward(x)` -> (outputs, attention) as NumPy dicts, traced once for every input size."""

    model: object
    recipe: object
    name: str
    source: str
    random: bool
    forward: object

    @property
    def config(self):
        return self.model.config

    @property
    def label(self) -> str:
        """The model's name for figure titles; random weights say so."""
        return figure_label({"name": self.name, "random_weights": self.random})


def compiled_forward(model):
    """`model.forward_all` traced once for (1, any height, any width, 3) inputs; NumPy in, NumPy dicts out."""
    import tensorflow as tf

    # One trace for every image size (the position grid is resampled in the graph); identical to the eager call.
    @tf.function(input_signature=[tf.TensorSpec((1, None, None, 3), tf.float32)], autograph=False)
    def forward(x):
        return model.forward_all(x, training=False, return_attention=True)

    def run(x):
        outputs, attention = forward(np.asarray(x, np.float32))
        return ({k: np.asarray(v) for k, v in outputs.items()}, {k: np.asarray(v) for k, v in attention.items()})

    return run


def token_choices(config) -> Dict[str, int]:
    """Prefix tokens by name -> token index: "class", then "distillation" (distilled DeiT) or "register i"."""
    tokens = {"class": 0}
    if config.head_type == "distilled":
        tokens["distillation"] = 1
    for i in range(config.num_register_tokens):
        tokens[f"register {i}"] = 1 + i
    return tokens


@dataclasses.dataclass
class Run:
    """One forward pass: the input, what the model returned, and its geometry.

    image: uint8 (H, W, 3) the model saw; picture: the same at `scale` for display; outputs / attention: NumPy
    dicts of the model call (attention (1, heads, T, T) per block); predictions: top-5 list or None.
    """

    model: LoadedModel
    image_name: str
    mode: str
    x: np.ndarray
    image: np.ndarray
    picture: np.ndarray
    scale: float
    outputs: Dict[str, np.ndarray]
    attention: Dict[str, np.ndarray]
    predictions: Optional[List[dict]]

    @property
    def patch_size(self) -> int:
        return int(self.model.config.patch_size)

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.model.config.num_prefix_tokens)

    @property
    def grid_size(self) -> Tuple[int, int]:
        return (self.x.shape[1] // self.patch_size, self.x.shape[2] // self.patch_size)

    @property
    def depth(self) -> int:
        return len(self.attention)

    @property
    def heads(self) -> int:
        return int(next(iter(self.attention.values())).shape[1])

    @property
    def tokens(self) -> Dict[str, int]:
        return token_choices(self.model.config)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.attention.values()) + self.x.nbytes + 2 * self.picture.nbytes

    def token(self, token: str) -> int:
        if token not in self.tokens:
            raise InputError(f"token {token!r}: {self.model.name} has {', '.join(self.tokens)}")
        return self.tokens[token]

    def block(self, block) -> int:
        b = whole(block, "block")
        if not -self.depth <= b < self.depth:
            raise InputError(f"block {b} is out of range: {self.model.name} has blocks 0..{self.depth - 1}")
        return b % self.depth

    def patch(self, row, col) -> Tuple[int, int]:
        r, c = whole(row, "patch row"), whole(col, "patch column")
        gh, gw = self.grid_size
        if not (0 <= r < gh and 0 <= c < gw):
            raise InputError(f"patch ({r}, {c}) is outside the {gh}x{gw} grid")
        return r, c

    def summary(self) -> dict:
        c = self.model.config
        gh, gw = self.grid_size
        return {"model": self.model.name, "weights": self.model.source, "random_weights": self.model.random,
                "image": self.image_name, "resize": self.mode, "input_size": [int(s) for s in self.x.shape[1:3]],
                "patch_size": self.patch_size, "grid_size": [gh, gw], "tokens": list(self.tokens),
                "blocks": self.depth, "heads": self.heads, "num_classes": c.num_classes,
                "prediction": self.predictions}


__all__ = ["LoadedModel", "ModelSpec", "Run", "compiled_forward", "token_choices"]
