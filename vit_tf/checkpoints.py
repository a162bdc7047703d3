"""Load checkpoints into models: local files of every official format (readers in `vit_tf.formats`) and downloads
of the registry's weights (cache in `vit_tf.download`). Saved artifacts open with `vit_tf.load` (`vit_tf.saved`)."""

from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence, Union

from .formats import LoadReport, load_checkpoints, read_checkpoint

PathLike = Union[str, os.PathLike]


def load_checkpoint(model, path: Union[PathLike, Sequence[PathLike]], format: Optional[str] = None,
                    strict: bool = True, ignore: Iterable[str] = ()) -> LoadReport:
    """Load checkpoint file(s) in any supported format into `model`.

    Args:
        model: a `VisionTransformer`.
        path: a `.npz` (Google), `.pth` (DeiT, DINO backbone, DINO linear head, timm) or `.safetensors` (timm)
            file, or a list of them for a model spread over files (DINO backbone + linear head).
        format: a `vit_tf.formats.FORMATS` value to require; None detects it from each file.
        strict: with False, weights the checkpoint lacks keep their initial values and checkpoint keys the model
            has no place for are skipped; both are logged and listed in the report. Mis-shaped and non-finite
            weights are errors either way.
        ignore: shell-style patterns of timm-layout keys to drop on both sides (e.g. `["head.*"]`): the model's
            matching weights keep their initial values.
    Returns:
        a `LoadReport` (loaded, ignored, missing, unexpected keys).
    Raises:
        CheckpointError naming the file and every offending key; nothing is assigned then.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    return load_checkpoints(model, [read_checkpoint(p, format) for p in paths], strict=strict, ignore=ignore)
