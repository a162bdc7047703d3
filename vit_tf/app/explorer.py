"""The explorer: loads each model once (`vit_tf.loading`) and runs each (model, image, resize mode) once, keeping
models, forward passes and upload digests in bounded least-recently-used caches (a hosted app's memory stays flat);
the page's fields come in, `Run`s go out. It also writes the downloads."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import tempfile
import threading
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..analysis import probe, top_k
from ..analysis.sources import KerasSource
from ..loading import RANDOM_WEIGHTS, Fields
from .cache import LRUCache
from .common import (CACHE_BYTES, CROP, DEFAULT_MODEL, MASK_KEEP, MAX_IMAGES, MAX_MODELS, MAX_PIXELS, MAX_UPLOAD_BYTES,
                     SAMPLES, UPLOAD, InputError, whole)
from .images import model_input, picture_scale, sample_image, scale_picture
from .run import LoadedModel, ModelSpec, Run, compiled_forward
from .views import patch_view

# How the page's model fields are named in loading errors (`vit_tf.loading.Fields`).
PAGE_FIELDS = Fields(model="model", checkpoint="a checkpoint", random_weights=f"'{RANDOM_WEIGHTS}'",
                     offline=f"tick '{RANDOM_WEIGHTS}' for a smoke test, give a local checkpoint, or a directory "
                             f"written by `vit-tf convert`")


def _is_path(name: str) -> bool:
    """Whether a model field names a place on disk rather than a registry name (which has no separators and does
    not start with a dot)."""
    return "/" in name or "\\" in name or name.startswith((".", "~")) or os.path.exists(name)


class _RunSource(KerasSource):
    """An attention source answering with a Run's cached arrays, so `probe` does not run the model again."""

    def __init__(self, run: Run):
        super().__init__(run.model.model)
        self.run = run

    def __call__(self, images):
        return self.run.outputs, self.run.attention


class Explorer:
    """Loads models once, runs each (model, image, resize mode) once, and answers the views from the cache.

    Args:
        models: registry names, directories written by `vit-tf convert`, or `VisionTransformer` objects (offered as
            "<weight_name or name> (given model)", or as the label of a (label, model) pair; weights as given),
            listed first in the model box; the first is the default (else `DEFAULT_MODEL`).
        checkpoint: default local checkpoint for a registry name.
        random_weights, seed: default of the random-weights tick (offline smoke test) and its seed.
        max_pixels: decoded pixels allowed per image; max_upload_bytes: bytes allowed per upload.
        local_paths: whether the page may name folders and checkpoint files on this machine; off for a public
            app (a Space, a share link), where only `models`, `checkpoint` and registry names are opened.
        max_models: models kept loaded (least recently used first out, with their forward passes).
        max_images: forward passes (model, image, resize mode) kept, and upload digests remembered.
        cache_bytes: memory for cached forward passes (the latest is always kept).
    """

    def __init__(self, models: Sequence[Union[str, object]] = (), *, checkpoint: Optional[str] = None,
                 random_weights: bool = False, seed: int = 0, max_pixels: Optional[int] = MAX_PIXELS,
                 max_upload_bytes: int = MAX_UPLOAD_BYTES, local_paths: bool = True, max_models: int = MAX_MODELS,
                 max_images: int = MAX_IMAGES, cache_bytes: int = CACHE_BYTES):
        self.objects: Dict[str, object] = {}
        names = []
        for m in models:
            if isinstance(m, str):
                names.append(m)
                continue
            if isinstance(m, tuple):
                label, m = m
            else:  # labelled apart from registry names, which build the architecture afresh
                label = f"{getattr(m, 'weight_name', None) or m.name} (given model)"
            self.objects[label] = m
            names.append(label)
        self.default_model = names[0] if names else DEFAULT_MODEL
        self.model_names = list(dict.fromkeys(names + [DEFAULT_MODEL] + self._registry()))
        self.checkpoint, self.random_weights, self.seed = checkpoint, random_weights, seed
        self.local_paths, self._listed = bool(local_paths), set(names)
        self.max_pixels, self.max_upload_bytes, self.cache_bytes = max_pixels, max_upload_bytes, cache_bytes
        # Bounded: spec -> LoadedModel; (spec, image key, mode) -> Run; upload identity -> digest. A model that
        # leaves takes its forward passes with it, so no Run keeps a forgotten model alive.
        self._models = LRUCache(max_models, on_evict=self._forget_runs)
        self._runs = LRUCache(max_images)
        self._digests = LRUCache(max_images)
        self._samples: Dict[str, np.ndarray] = {}  # at most len(SAMPLES) small photos
        self._load_lock, self._compute_lock = threading.Lock(), threading.Lock()
        self._downloads: Optional[str] = None  # made on the first download, removed by close()
        self._download_dirs: collections.deque = collections.deque()

    @staticmethod
    def _registry() -> List[str]:
        from ..registry import list_models

        return list_models(pretrained=True)

    def close(self):
        """Remove the downloads' temporary folder."""
        if self._downloads is not None:
            shutil.rmtree(self._downloads, ignore_errors=True)
            self._downloads = None

    # -- models --------------------------------------------------------------------------------------------------
    def spec(self, name, checkpoint=None, random_weights=None, seed=None) -> ModelSpec:
        """The page's model fields -> a ModelSpec (blank fields take the explorer's defaults)."""
        name = (name or "").strip() or self.default_model
        checkpoint = (checkpoint or "").strip() or None
        random_weights = self.random_weights if random_weights is None else bool(random_weights)
        seed = self.seed if seed is None else whole(seed, "seed")
        if name in self.objects:  # a given object runs with its own weights
            return ModelSpec(name)
        if not self.local_paths:
            if checkpoint not in (None, self.checkpoint):
                raise InputError("this app opens no checkpoint files: pick a model from the list")
            if name not in self._listed and _is_path(name):
                raise InputError(f"{name}: this app opens no folders; pick a registry name or a listed model")
        return ModelSpec(name, checkpoint, random_weights, seed if random_weights else 0)

    def load(self, spec: ModelSpec) -> LoadedModel:
        """The model of `spec`, loaded on first use and kept (the `max_models` most recently used are)."""
        with self._load_lock:  # one load at a time: models are large, and random weights use the global seed
            loaded = self._models.get(spec)
            if loaded is None:
                loaded = self._load(spec)
                self._models.put(spec, loaded)
            return loaded

    def _forget_runs(self, spec: ModelSpec, loaded: LoadedModel):
        self._runs.remove(lambda key, run: key[0] == spec)

    def _load(self, spec: ModelSpec) -> LoadedModel:
        from ..loading import is_random, load_model_for_analysis

        if spec.name in self.objects:
            net = self.objects[spec.name]
            return LoadedModel(net, net.recipe, spec.name, "model object given to the app (weights as given)", False,
                               compiled_forward(net))
        net, recipe, info = load_model_for_analysis(spec.name, spec.checkpoint, spec.random_weights, spec.seed,
                                                    fields=PAGE_FIELDS)
        return LoadedModel(net, recipe, info["name"], info["source"], is_random(info), compiled_forward(net))

    # -- images --------------------------------------------------------------------------------------------------
    def image(self, source: str, upload=None) -> Tuple[str, str, object]:
        """The page's image fields -> (cache key, display name, function returning the image as an array or
        bytes)."""
        if source in SAMPLES:
            if source not in self._samples:
                self._samples[source] = sample_image(source)
            return f"sample:{source}", source, lambda: self._samples[source]
        if source != UPLOAD:
            raise InputError(f"image source must be one of {SAMPLES + (UPLOAD,)}, got {source!r}")
        if not upload:
            raise InputError("no image uploaded: upload a photo, or pick a sample")
        path = os.fspath(upload)
        name = os.path.basename(path) or "upload"
        if not os.path.isfile(path):
            raise InputError(f"{name}: the uploaded file is gone; upload it again")
        stat = os.stat(path)
        if stat.st_size > self.max_upload_bytes:
            raise InputError(f"{name} is {stat.st_size / 2 ** 20:.1f} MB, more than the "
                             f"{self.max_upload_bytes / 2 ** 20:.0f} MB allowed")

        def read() -> bytes:
            with open(path, "rb") as f:
                return f.read()

        # Every view names the upload again: its digest is remembered by file identity, so it is read once here.
        identity = (path, stat.st_size, stat.st_mtime_ns)
        digest = self._digests.get(identity)
        if digest is None:
            digest = hashlib.sha1(read()).hexdigest()
            self._digests.put(identity, digest)
        return f"upload:{digest}", name, read

    # -- forward passes ------------------------------------------------------------------------------------------
    def run(self, source: str, upload=None, model=None, checkpoint=None, random_weights=None, mode: str = CROP,
            seed=None) -> Run:
        """The page's inputs -> the cached forward pass (computed on first use)."""
        spec = self.spec(model, checkpoint, random_weights, seed)
        key_image, name, image = self.image(source, upload)
        key = (spec, key_image, mode)
        run = self._runs.get(key)
        if run is not None:
            self._models.get(spec)  # a model in use is a recent one
            return run
        with self._compute_lock:  # views that arrive together with a new run wait for it instead of redoing it
            run = self._runs.get(key)
            return run if run is not None else self._compute(key, spec, name, image, mode)

    def _compute(self, key, spec: ModelSpec, name: str, image, mode: str) -> Run:
        loaded = self.load(spec)
        x, shown = model_input(image(), loaded.recipe, loaded.config.patch_size, mode, name=name,
                               max_pixels=self.max_pixels)
        outputs, attention = loaded.forward(x)
        logits = outputs.get("logits")
        scale = picture_scale(shown.shape)
        run = Run(loaded, name, mode, x, shown, scale_picture(shown, scale), scale, outputs, attention,
                  None if logits is None else top_k(logits, 5)[0])
        if spec in self._models:  # (a model forgotten meanwhile keeps no forward pass)
            self._runs.put(key, run)
            while len(self._runs) > 1 and sum(r.nbytes for _, r in self._runs.items()) > self.cache_bytes:
                self._runs.pop_oldest()
        return run

    # -- downloads -----------------------------------------------------------------------------------------------
    def downloads(self, run: Run, *, block=-1, token: str = "class", head_fusion: str = "mean",
                  discard_ratio: float = 0.0, start_block=0, keep: float = MASK_KEEP, row=0, col=0,
                  dpi: int = 120) -> List[str]:
        """`vit-tf probe`'s figures for the current settings, the clicked patch's figure and summary.json, written
        into a fresh folder (the last 8 are kept); returns the paths."""
        from .. import plotting

        b, index, start = run.block(block), run.token(token), run.block(start_block)
        r, c = run.patch(row, col)
        query = {"class": "cls", "distillation": "dist"}.get(token, index)
        result = probe(_RunSource(run), run.x, image=run.image, token=query, head_fusion=head_fusion,
                       discard_ratio=float(discard_ratio), start_block=start, heatmap_block=b, mask_keep=float(keep))
        figures = plotting.render_probe_figures(result, label=run.model.label)
        patch = patch_view(run, b, r, c).arrays["maps"]
        figures["patch_attention"] = plotting.heatmaps_figure(
            run.image, patch, token=run.num_prefix_tokens + r * run.grid_size[1] + c,
            title=f"{run.model.label}: block {b}, attention of patch ({r}, {c}) per head")
        if self._downloads is None:
            self._downloads = tempfile.mkdtemp(prefix="vit-tf-app-")
        folder = tempfile.mkdtemp(dir=self._downloads)
        self._download_dirs.append(folder)
        while len(self._download_dirs) > 8:
            shutil.rmtree(self._download_dirs.popleft(), ignore_errors=True)
        paths = [plotting.save_figure(fig, os.path.join(folder, f"{name}.png"), dpi) for name, fig in figures.items()]
        summary = {**run.summary(), **result.summary(), "model": run.model.name, "weights": run.model.source,
                   "token": token, "patch": {"block": b, "row": r, "col": c},
                   "figures": {name: f"{name}.png" for name in figures}}
        path = os.path.join(folder, "summary.json")
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(summary, indent=2) + "\n")
        return [path] + paths


__all__ = ["Explorer", "PAGE_FIELDS"]
