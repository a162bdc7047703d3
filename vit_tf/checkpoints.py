"""Load checkpoints into models: local files of every official format, downloads of the registry's weights, and
`load` for saved artifacts (converted directories, SavedModels, the keras.io example's zips, Drive ids and TF-Hub
handles). The readers and the download cache live in the `conversion` package."""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

PathLike = Union[str, os.PathLike]


def load_checkpoint(model, path: Union[PathLike, Sequence[PathLike]], format: Optional[str] = None) -> set:
    """Load checkpoint file(s) in any supported format into `model`; returns the consumed timm-layout keys.

    Args:
        model: a `VisionTransformer`.
        path: a `.npz` (Google), `.pth` (DeiT, DINO backbone, DINO linear head, timm) or `.safetensors` (timm)
            file, or a list of them for a model spread over files (DINO backbone + linear head).
        format: a `conversion.formats.FORMATS` value to require; None detects it from each file.
    Raises:
        CheckpointError naming the file and every missing, unexpected, mis-shaped or non-finite key; nothing is
        assigned then.
    """
    from conversion.formats import load_checkpoints, read_checkpoint

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    return load_checkpoints(model, [read_checkpoint(p, format) for p in paths])


def load_pretrained(model, entry, progress: bool = True) -> set:
    """Download (once, into `$VIT_TF_HOME`) and load the official checkpoint files of a registry entry."""
    from conversion.download import fetch
    from conversion.formats import load_checkpoints, read_checkpoint

    if not entry.sources:
        raise ValueError(f"{entry.name} has no checkpoint source")
    return load_checkpoints(model, [read_checkpoint(fetch(s, progress=progress), s.format) for s in entry.sources])


def load(path_or_handle: PathLike):
    """Open a saved model; returns a callable `images -> (outputs, attention_scores)`.

    Accepts a directory written by `vit-tf convert` (gives the `VisionTransformer`), a SavedModel directory or a
    `.zip` holding one (ours or the keras.io example's), a Google Drive file id or link (needs `gdown`), or a
    TF-Hub handle (needs `tensorflow_hub`). See `conversion.legacy.load`.
    """
    from conversion.legacy import load as _load

    return _load(path_or_handle)
