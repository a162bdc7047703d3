"""Load checkpoints from files into models. The conversion issue extends this with the official formats."""

from __future__ import annotations

from .weights import load_timm_state_dict, read_state_dict


def load_checkpoint(model, path: str):
    """Load a timm-layout `.safetensors` / `.pth` checkpoint into `model`; returns the consumed keys."""
    return load_timm_state_dict(model, read_state_dict(path), source=path)


def load_pretrained(model, entry):
    raise NotImplementedError("downloading official weights is not implemented yet")
