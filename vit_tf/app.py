"""`vit-tf app`: an attention explorer in the browser (Gradio), run locally or as a Hugging Face Space.

What the Spaces of the keras.io example "Investigating Vision Transformer representations" (Gosthipaty & Paul,
2022) showed, for any registry model, directory written by `vit-tf convert` or local checkpoint: the top-5
prediction; every head's map of any block and prefix token (class, distillation, registers); DINO mass masks
(Caron et al. 2021); attention rollout (Abnar & Zuidema 2020); the block x head grid; mean attention distance;
where a clicked patch attends in every head; and `vit-tf probe`'s figures and summary.json to download.

Two layers. The pure one: `Explorer` loads each model once and runs the forward pass once per (model, image,
resize mode), keeping the attention in a bounded cache, and the `*_view` functions turn a `Run` into a `View` (a
uint8 picture, the arrays it shows, JSON-ready numbers) with `vit_tf.analysis` calls; moving a slider reruns a
view, never the model. `build_app` lays Gradio components over them; Gradio is imported there only
(`pip install 'vit_tf[app]'`).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import importlib.util
import json
import logging
import math
import os
import shutil
import tempfile
import threading
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .analysis import (apply_mask, attention_grid, attention_mass_mask, attention_rollout, colorize,
                       mean_attention_distance, overlay, patch_distance_matrix, probe, rollout_stats, token_attention,
                       top_k)
from .analysis.rollout import HEAD_FUSIONS
from .analysis.sources import KerasSource
from .loading import RANDOM_WEIGHTS, Fields, figure_label
from .preprocessing import decode_image, normalize, resize_and_crop

logger = logging.getLogger(__name__)

SAMPLES = ("china.jpg", "flower.jpg")  # scikit-learn's bundled photos (sklearn.datasets.load_sample_image)
UPLOAD = "upload"
CROP = "centre crop (the weights' recipe)"
ASPECT = "keep aspect ratio (any grid)"
RESIZE_MODES = (CROP, ASPECT)
DEFAULT_MODEL = "deit_small_distilled_patch16_224.fb_in1k"  # small, classifies, and has two prefix tokens
# How the page's model fields are named in loading errors (`vit_tf.loading.Fields`).
PAGE_FIELDS = Fields(model="model", checkpoint="a checkpoint", random_weights=f"'{RANDOM_WEIGHTS}'",
                     offline=f"tick '{RANDOM_WEIGHTS}' for a smoke test, give a local checkpoint, or a directory "
                             f"written by `vit-tf convert`")
MAX_UPLOAD_BYTES = 50 * 2 ** 20
MAX_FILE_SIZE = "50mb"  # the same limit for Gradio's upload route
MAX_PIXELS = 50_000_000  # decoded pixels; more is refused with a message (decompression bombs, memory)
CACHE_BYTES = 1 << 30  # forward passes kept (attention arrays); the latest one is always kept
PICTURE_SIDES = (192, 448)  # pictures are scaled so that their longer side falls in this range
MASK_KEEP = 0.6


class InputError(ValueError):
    """Bad input that the page reports as a message (an unreadable upload, an unknown model, a block out of
    range)."""


def describe_error(error: BaseException) -> str:
    """The one-line message the page shows for an error (never a traceback)."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    text = (str(error).strip() or type(error).__name__).splitlines()[0]
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return f"out of memory ({text[:200]}); try a smaller image, the centre crop or a smaller model"
    if isinstance(error, (ValueError, KeyError, OSError, ImportError, TypeError)):
        return text
    return f"unexpected {type(error).__name__}: {text}"


# -- models ----------------------------------------------------------------------------------------------------------
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


def _compiled_forward(model):
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


# -- images ----------------------------------------------------------------------------------------------------------
def sample_image(name: str) -> np.ndarray:
    """A bundled scikit-learn photo (`SAMPLES`) as uint8 (H, W, 3)."""
    from sklearn.datasets import load_sample_image

    if name not in SAMPLES:
        raise InputError(f"unknown sample {name!r}; the samples are {', '.join(SAMPLES)}")
    return load_sample_image(name)


def aspect_size(width: int, height: int, input_size: Sequence[int], patch_size: int) -> Tuple[int, int]:
    """(W, H) multiples of `patch_size` with about the pixels of `input_size` (H, W) and the image's aspect ratio."""
    scale = math.sqrt(input_size[0] * input_size[1] / (width * height))
    return (max(1, round(width * scale / patch_size)) * patch_size,
            max(1, round(height * scale / patch_size)) * patch_size)


def model_input(image, recipe, patch_size: int, mode: str = CROP, *, name: str = "image",
                max_pixels: Optional[int] = MAX_PIXELS) -> Tuple[np.ndarray, np.ndarray]:
    """Image (path, bytes or uint8 array) -> (model input float32 (1, H, W, 3), uint8 (H, W, 3) it shows).

    CROP is the weights' eval recipe (`vit_tf.analysis.prepare`); ASPECT resizes the whole image, with the recipe's
    interpolation, to the multiples of the patch size nearest its aspect ratio at the recipe's pixel count.
    """
    if mode not in RESIZE_MODES:
        raise InputError(f"resize mode must be one of {RESIZE_MODES}, got {mode!r}")
    from PIL import Image

    decoded = decode_image(image, recipe if mode == CROP else None, max_pixels=max_pixels, name=name)
    w, h = decoded.size
    if w < patch_size or h < patch_size:
        raise InputError(f"{name} is {w}x{h} pixels, smaller than one {patch_size}x{patch_size} patch")
    if mode == CROP:
        shown = np.asarray(resize_and_crop(decoded, recipe))
    else:
        size = aspect_size(w, h, recipe.input_size, patch_size)
        resample = getattr(Image.Resampling, recipe.interpolation.upper())
        shown = np.asarray(decoded.image.resize(size, resample, box=decoded.box))
    return normalize(shown, recipe)[None].astype(np.float32), shown


def picture_scale(shape: Sequence[int]) -> float:
    """Scale of the pictures of an (H, W) input: small inputs are enlarged by a whole factor, large ones reduced,
    so that the longer side falls in `PICTURE_SIDES`."""
    longer = max(shape[:2])
    low, high = PICTURE_SIDES
    if longer < low:
        return float(math.ceil(low / longer))
    return min(1.0, high / longer)


def scale_picture(image: np.ndarray, scale: float) -> np.ndarray:
    """uint8 (H, W, 3) enlarged by a whole `scale` with nearest pixels (patches stay sharp), or reduced by area."""
    import cv2

    if scale == 1.0:
        return np.ascontiguousarray(image)
    if scale > 1.0:
        k = int(scale)
        return np.ascontiguousarray(np.repeat(np.repeat(image, k, axis=0), k, axis=1))
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def patch_at(x: float, y: float, patch_pixels: float, grid_size: Sequence[int]) -> Tuple[int, int]:
    """The (row, col) of the patch under pixel (x, y) of a picture with `patch_pixels` pixels per patch side."""
    gh, gw = grid_size
    return (min(max(int(y // patch_pixels), 0), gh - 1), min(max(int(x // patch_pixels), 0), gw - 1))


# -- a forward pass on one image -------------------------------------------------------------------------------------
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
        b = _whole(block, "block")
        if not -self.depth <= b < self.depth:
            raise InputError(f"block {b} is out of range: {self.model.name} has blocks 0..{self.depth - 1}")
        return b % self.depth

    def patch(self, row, col) -> Tuple[int, int]:
        r, c = _whole(row, "patch row"), _whole(col, "patch column")
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


def _whole(value, what: str) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a whole number, got {value!r}") from None
    if not f.is_integer():
        raise InputError(f"{what} must be a whole number, got {value!r}")
    return int(f)


# -- views: Run -> picture + arrays + numbers ------------------------------------------------------------------------
@dataclasses.dataclass
class View:
    """What a view shows: `picture` uint8 (H, W, 3), the `arrays` it was drawn from, JSON-ready `info`."""

    picture: np.ndarray
    arrays: Dict[str, np.ndarray]
    info: dict


def mosaic(tiles: Sequence[np.ndarray], labels: Sequence[str], ncols: int, pad: int = 6,
           label_height: int = 20) -> np.ndarray:
    """uint8 tiles (h, w, 3) of one size in rows of `ncols`, each under its label, on white."""
    import cv2

    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // ncols)
    cell_h, cell_w = label_height + h + pad, w + pad
    out = np.full((rows * cell_h + pad, ncols * cell_w + pad, 3), 255, np.uint8)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        r, c = divmod(i, ncols)
        y0, x0 = pad + r * cell_h, pad + c * cell_w
        cv2.putText(out, label, (x0 + 1, y0 + label_height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        out[y0 + label_height:y0 + label_height + h, x0:x0 + w] = tile
    return out


def mark_patch(picture: np.ndarray, row: int, col: int, patch_pixels: float,
               color: Tuple[int, int, int] = (0, 255, 255)) -> np.ndarray:
    """A copy of `picture` with patch (row, col) outlined."""
    import cv2

    out = np.ascontiguousarray(picture).copy()
    x0, y0 = round(col * patch_pixels), round(row * patch_pixels)
    x1, y1 = round((col + 1) * patch_pixels) - 1, round((row + 1) * patch_pixels) - 1
    cv2.rectangle(out, (x0, y0), (x1, y1), color, max(2, round(patch_pixels / 12)))
    return out


def upsample(maps: np.ndarray, size: Sequence[int], method: str = "bilinear") -> np.ndarray:
    """Maps (..., h, w) -> (..., H, W): `vit_tf.analysis.resize_maps`'s half-pixel bilinear or nearest weights
    (OpenCV's INTER_LINEAR / INTER_NEAREST are the same; tests check it), computed by OpenCV, which on a 224x224
    picture is some 20x faster than resize_maps' einsum."""
    import cv2

    m = np.asarray(maps, np.float64)
    flag = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}[method]
    height, width = (int(s) for s in size)
    flat = m.reshape(-1, *m.shape[-2:])
    out = np.stack([cv2.resize(x, (width, height), interpolation=flag) for x in flat])
    return out.reshape(*m.shape[:-2], height, width)


def heads_picture(picture: np.ndarray, maps: np.ndarray, mark: Optional[Tuple[int, int]] = None,
                  patch_pixels: float = 0.0, ncols: int = 6) -> np.ndarray:
    """Every head's map (heads, gh, gw) overlaid on `picture` (each map min-max scaled), as a labelled mosaic;
    `mark` outlines the query patch in every tile."""
    tiles = [overlay(picture, m, alpha=0.6) for m in upsample(maps, picture.shape[:2])]
    if mark is not None:
        tiles = [mark_patch(t, *mark, patch_pixels) for t in tiles]
    return mosaic(tiles, [f"head {h}" for h in range(len(tiles))], min(ncols, len(tiles)))


def masks_picture(picture: np.ndarray, masks: np.ndarray, ncols: int = 6) -> np.ndarray:
    """DINO-style masks (heads, gh, gw): the picture inside each head's mask, darkened outside."""
    img = picture.astype(np.float64)
    tiles = []
    for m in upsample(masks, picture.shape[:2], method="nearest"):
        inside = m[..., None]
        tiles.append(np.clip(np.round(img * (0.25 + 0.75 * inside)), 0, 255).astype(np.uint8))
    return mosaic(tiles, [f"head {h}" for h in range(len(tiles))], min(ncols, len(tiles)))


def rollout_picture(picture: np.ndarray, rollout_map: np.ndarray) -> np.ndarray:
    """Input x rollout / max (the keras.io example) beside the rollout heatmap overlay."""
    up = upsample(rollout_map, picture.shape[:2])
    return mosaic([apply_mask(picture, up), overlay(picture, up, alpha=0.6)],
                  ["input x rollout / max", "rollout heatmap"], 2)


def grid_picture(grid: np.ndarray, tile: int = 64) -> np.ndarray:
    """The block x head grid (blocks, heads, gh, gw): one colourised, min-max scaled map per tile."""
    blocks, heads, gh, gw = grid.shape
    size = (tile, max(1, round(tile * gw / gh))) if gh >= gw else (max(1, round(tile * gh / gw)), tile)
    maps = upsample(grid, size)
    tiles = [colorize(maps[b, h]) for b in range(blocks) for h in range(heads)]
    labels = [f"b{b} h{h}" for b in range(blocks) for h in range(heads)]
    return mosaic(tiles, labels, heads, pad=4, label_height=16)


def figure_array(fig, dpi: int = 100) -> np.ndarray:
    """A matplotlib figure rendered to uint8 RGB (H, W, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _peaks(maps: np.ndarray) -> list:
    """(row, col) of each map's maximum, maps (..., gh, gw) -> nested lists (..., 2)."""
    flat = maps.reshape(*maps.shape[:-2], -1)
    index = flat.argmax(-1)
    return np.stack(np.unravel_index(index, maps.shape[-2:]), -1).tolist()


def _common(run: Run) -> dict:
    return dict(num_prefix_tokens=run.num_prefix_tokens, grid_size=run.grid_size)


def heatmap_view(run: Run, block=-1, token: str = "class") -> View:
    """Every head's attention of a prefix token to the patches in one block (`token_attention`)."""
    b, index = run.block(block), run.token(token)
    maps = token_attention(run.attention, block=b, token=index, **_common(run))[0]
    info = {"block": b, "token": token, "token_index": index, "maps": maps.tolist(), "peak": _peaks(maps),
            "patch_mass": maps.sum((-2, -1)).tolist()}
    return View(heads_picture(run.picture, maps), {"maps": maps}, info)


def mask_view(run: Run, block=-1, token: str = "class", keep: float = MASK_KEEP) -> View:
    """DINO masks keeping `keep` of each head's attention mass (`attention_mass_mask`)."""
    keep = float(keep)
    if not 0.0 < keep <= 1.0:
        raise InputError(f"mass kept must be in (0, 1], got {keep}")
    b, index = run.block(block), run.token(token)
    maps = token_attention(run.attention, block=b, token=index, **_common(run))[0]
    masks = attention_mass_mask(maps, keep)
    info = {"block": b, "token": token, "keep": keep, "masks": masks.astype(int).tolist(),
            "fraction_of_patches": masks.mean((-2, -1)).tolist()}
    return View(masks_picture(run.picture, masks), {"maps": maps, "masks": masks}, info)


def rollout_view(run: Run, token: str = "class", head_fusion: str = "mean", discard_ratio: float = 0.0,
                 start_block=0) -> View:
    """Attention rollout from a prefix token (`attention_rollout`)."""
    if head_fusion not in HEAD_FUSIONS:
        raise InputError(f"head fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
    discard_ratio = float(discard_ratio)
    if not 0.0 <= discard_ratio < 1.0:
        raise InputError(f"discard ratio must be in [0, 1), got {discard_ratio}")
    start = run.block(start_block)
    index = run.token(token)
    rollout = attention_rollout(run.attention, token=index, head_fusion=head_fusion, discard_ratio=discard_ratio,
                                start_block=start, **_common(run))[0]
    stats = {k: v[0] for k, v in rollout_stats(rollout[None]).items()}
    info = {"token": token, "head_fusion": head_fusion, "discard_ratio": discard_ratio, "start_block": start,
            "map": rollout.tolist(), **stats}
    return View(rollout_picture(run.picture, rollout), {"rollout": rollout}, info)


def grid_view(run: Run, token: str = "class") -> View:
    """Every block's and head's attention of a prefix token (`attention_grid`)."""
    index = run.token(token)
    grid = attention_grid(run.attention, token=index, **_common(run))[0]
    info = {"token": token, "shape": list(grid.shape), "peak": _peaks(grid), "max": grid.max((-2, -1)).tolist()}
    return View(grid_picture(grid), {"grid": grid}, info)


def distance_view(run: Run) -> View:
    """Mean attention distance per block and head in pixels (`mean_attention_distance`), the keras.io scatter."""
    from .plotting import mean_distance_figure

    distance = mean_attention_distance(run.attention, patch_size=run.patch_size, **_common(run))[0]
    uniform = float(patch_distance_matrix(run.grid_size, run.patch_size).mean())
    fig = mean_distance_figure(distance, uniform=uniform, title=f"{run.model.label}: mean attention distance")
    info = {"units": "pixels", "per_block_head": distance.tolist(), "per_block_mean": distance.mean(-1).tolist(),
            "uniform_attention": uniform}
    return View(figure_array(fig), {"mean_distance": distance}, info)


def patch_view(run: Run, block=-1, row=0, col=0) -> View:
    """Where patch (row, col) attends in every head of a block: its query row of the attention, on the grid."""
    b = run.block(block)
    r, c = run.patch(row, col)
    index = run.num_prefix_tokens + r * run.grid_size[1] + c
    maps = token_attention(run.attention, block=b, token=index, **_common(run))[0]
    pixels = run.patch_size * run.scale
    info = {"block": b, "patch": [r, c], "token_index": index, "maps": maps.tolist(), "peak": _peaks(maps),
            "self_attention": maps[:, r, c].tolist()}
    return View(heads_picture(run.picture, maps, mark=(r, c), patch_pixels=pixels), {"maps": maps}, info)


def input_picture(run: Run, mark: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """The model's input as shown for clicking, with patch `mark` outlined."""
    if mark is None:
        return run.picture
    return mark_patch(run.picture, *mark, run.patch_size * run.scale)


# -- the explorer: models and forward passes, cached -----------------------------------------------------------------
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
        cache_bytes: memory for cached forward passes (the latest is always kept).
    """

    def __init__(self, models: Sequence[Union[str, object]] = (), *, checkpoint: Optional[str] = None,
                 random_weights: bool = False, seed: int = 0, max_pixels: Optional[int] = MAX_PIXELS,
                 max_upload_bytes: int = MAX_UPLOAD_BYTES, cache_bytes: int = CACHE_BYTES):
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
        self.max_pixels, self.max_upload_bytes, self.cache_bytes = max_pixels, max_upload_bytes, cache_bytes
        self._models: Dict[ModelSpec, LoadedModel] = {}
        self._runs: "collections.OrderedDict[tuple, Run]" = collections.OrderedDict()
        self._samples: Dict[str, np.ndarray] = {}
        self._digests: Dict[tuple, str] = {}
        self._load_lock, self._run_lock, self._compute_lock = threading.Lock(), threading.Lock(), threading.Lock()
        self._downloads: Optional[str] = None  # made on the first download, removed by close()
        self._download_dirs: collections.deque = collections.deque()

    @staticmethod
    def _registry() -> List[str]:
        from .registry import list_models

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
        seed = self.seed if seed is None else _whole(seed, "seed")
        if name in self.objects:  # a given object runs with its own weights
            return ModelSpec(name)
        return ModelSpec(name, checkpoint, random_weights, seed if random_weights else 0)

    def load(self, spec: ModelSpec) -> LoadedModel:
        """The model of `spec`, loaded on first use and kept."""
        with self._load_lock:  # one load at a time: models are large, and random weights use the global seed
            if spec not in self._models:
                self._models[spec] = self._load(spec)
            return self._models[spec]

    def _load(self, spec: ModelSpec) -> LoadedModel:
        from .loading import is_random, load_model_for_analysis

        if spec.name in self.objects:
            net = self.objects[spec.name]
            return LoadedModel(net, net.recipe, spec.name, "model object given to the app (weights as given)", False,
                               _compiled_forward(net))
        net, recipe, info = load_model_for_analysis(spec.name, spec.checkpoint, spec.random_weights, spec.seed,
                                                    fields=PAGE_FIELDS)
        return LoadedModel(net, recipe, info["name"], info["source"], is_random(info), _compiled_forward(net))

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
        if identity not in self._digests:
            self._digests[identity] = hashlib.sha1(read()).hexdigest()
        return f"upload:{self._digests[identity]}", name, read

    # -- forward passes ------------------------------------------------------------------------------------------
    def run(self, source: str, upload=None, model=None, checkpoint=None, random_weights=None, mode: str = CROP,
            seed=None) -> Run:
        """The page's inputs -> the cached forward pass (computed on first use)."""
        spec = self.spec(model, checkpoint, random_weights, seed)
        key_image, name, image = self.image(source, upload)
        key = (spec, key_image, mode)
        with self._run_lock:
            if key in self._runs:
                self._runs.move_to_end(key)
                return self._runs[key]
        with self._compute_lock:  # views that arrive together with a new run wait for it instead of redoing it
            with self._run_lock:
                if key in self._runs:
                    return self._runs[key]
            return self._compute(key, spec, name, image, mode)

    def _compute(self, key, spec: ModelSpec, name: str, image, mode: str) -> Run:
        loaded = self.load(spec)
        x, shown = model_input(image(), loaded.recipe, loaded.config.patch_size, mode, name=name,
                               max_pixels=self.max_pixels)
        outputs, attention = loaded.forward(x)
        logits = outputs.get("logits")
        scale = picture_scale(shown.shape)
        run = Run(loaded, name, mode, x, shown, scale_picture(shown, scale), scale, outputs, attention,
                  None if logits is None else top_k(logits, 5)[0])
        with self._run_lock:
            self._runs[key] = run
            while len(self._runs) > 1 and sum(r.nbytes for r in self._runs.values()) > self.cache_bytes:
                self._runs.popitem(last=False)
        return run

    # -- downloads -----------------------------------------------------------------------------------------------
    def downloads(self, run: Run, *, block=-1, token: str = "class", head_fusion: str = "mean",
                  discard_ratio: float = 0.0, start_block=0, keep: float = MASK_KEEP, row=0, col=0,
                  dpi: int = 120) -> List[str]:
        """`vit-tf probe`'s figures for the current settings, the clicked patch's figure and summary.json, written
        into a fresh folder (the last 8 are kept); returns the paths."""
        from . import plotting

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


# -- the page's handlers ---------------------------------------------------------------------------------------------
def import_gradio():
    """Gradio, or an ImportError naming the extra that installs it."""
    try:
        import gradio
    except ImportError as e:
        raise ImportError(f"the app needs Gradio, which is not installed ({e}): pip install 'vit_tf[app]'") from None
    return gradio


def model_markdown(run: Run) -> str:
    """The page's description of the model that ran, led by a warning when its weights are random."""
    m = run.model
    c = m.config
    gh, gw = run.grid_size
    text = (f"**{m.name}**: {m.source}. Input {run.x.shape[2]}x{run.x.shape[1]} ({run.mode}), patch "
            f"{c.patch_size}, grid {gw}x{gh}; tokens: {', '.join(run.tokens)}, then the patches; {run.depth} blocks "
            f"x {run.heads} heads.")
    if c.num_classes == 0:
        text += " A feature model: no classifier, so no prediction."
    if m.random:
        text = ("### ⚠️ RANDOM WEIGHTS: a smoke test. The prediction is meaningless and the maps show no learned "
                f"structure.\n\n{text}")
    return text


_EXPECTED = (ValueError, KeyError, OSError, ImportError, MemoryError)


def _reported(n_outputs: int):
    """A handler whose failure becomes {"error": message} in its last output (and None in the others): the page
    shows one line, never a traceback; unexpected errors are logged with theirs."""

    def decorate(fn):
        import functools

        @functools.wraps(fn)  # keeps the parameter names: they name the API's parameters
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                if not isinstance(e, _EXPECTED):
                    logger.exception("vit-tf app: %s failed", fn.__name__)
                return (None,) * (n_outputs - 1) + ({"error": describe_error(e)},)

        return wrapped

    return decorate


class Handlers:
    """The page's event handlers over an `Explorer`, callable without a server (tests, benchmarks): the fields'
    values in, the components' values out (pictures as uint8 arrays, numbers as JSON-ready dicts). Each is an API
    endpoint of the same name; a failure returns {"error": message} as its last output."""

    def __init__(self, explorer: Explorer):
        self.explorer = explorer

    def analyze(self, source, upload, model, checkpoint, random_weights, mode):
        """-> input picture, top-5 {label: probability} (None without a classifier), model description, status,
        updates of the block, start-block, token, row and column fields, run summary."""
        gr = import_gradio()
        try:
            run = self.explorer.run(source, upload, model, checkpoint, random_weights, mode)
        except Exception as e:
            if not isinstance(e, _EXPECTED):
                logger.exception("vit-tf app: analyze failed")
            message = describe_error(e)
            keep = gr.update()
            return None, None, "", f"**Error:** {message}", keep, keep, keep, keep, keep, {"error": message}
        gh, gw = run.grid_size
        tokens = list(run.tokens)
        label = None if run.predictions is None else {p["label"]: p["probability"] for p in run.predictions}
        return (input_picture(run), label, model_markdown(run), "",
                gr.update(maximum=run.depth - 1, value=run.depth - 1), gr.update(maximum=run.depth - 1, value=0),
                gr.update(choices=tokens, value=tokens[0]), gr.update(maximum=gh - 1, value=gh // 2),
                gr.update(maximum=gw - 1, value=gw // 2), run.summary())

    @_reported(2)
    def heatmaps(self, source, upload, model, checkpoint, random_weights, mode, block, token):
        v = heatmap_view(self.explorer.run(source, upload, model, checkpoint, random_weights, mode), block, token)
        return v.picture, v.info

    @_reported(2)
    def masks(self, source, upload, model, checkpoint, random_weights, mode, block, token, keep):
        v = mask_view(self.explorer.run(source, upload, model, checkpoint, random_weights, mode), block, token, keep)
        return v.picture, v.info

    @_reported(2)
    def rollout(self, source, upload, model, checkpoint, random_weights, mode, token, head_fusion, discard_ratio,
                start_block):
        run = self.explorer.run(source, upload, model, checkpoint, random_weights, mode)
        v = rollout_view(run, token, head_fusion, discard_ratio, start_block)
        return v.picture, v.info

    @_reported(2)
    def explain(self, source, upload, model, checkpoint, random_weights, mode, method, target, scores):
        v = explain_view(self.explorer.run(source, upload, model, checkpoint, random_weights, mode), method, target,
                         bool(scores))
        return v.picture, v.info

    @_reported(2)
    def grid(self, source, upload, model, checkpoint, random_weights, mode, token):
        v = grid_view(self.explorer.run(source, upload, model, checkpoint, random_weights, mode), token)
        return v.picture, v.info

    @_reported(2)
    def distance(self, source, upload, model, checkpoint, random_weights, mode):
        v = distance_view(self.explorer.run(source, upload, model, checkpoint, random_weights, mode))
        return v.picture, v.info

    @_reported(3)
    def patch(self, source, upload, model, checkpoint, random_weights, mode, block, row, col):
        """-> input picture with the patch outlined, every head's map of the patch, numbers."""
        run = self.explorer.run(source, upload, model, checkpoint, random_weights, mode)
        v = patch_view(run, block, row, col)
        return input_picture(run, tuple(v.info["patch"])), v.picture, v.info

    def click(self, evt, source, upload, model, checkpoint, random_weights, mode):
        """A click on the input picture (Gradio's SelectData: index = [x, y] in its pixels) -> (row, col)."""
        try:
            run = self.explorer.run(source, upload, model, checkpoint, random_weights, mode)
        except Exception:  # the status line already says why there is no run
            gr = import_gradio()
            return gr.update(), gr.update()
        x, y = evt.index[:2]
        return patch_at(x, y, run.patch_size * run.scale, run.grid_size)

    @_reported(2)
    def downloads(self, source, upload, model, checkpoint, random_weights, mode, block, token, head_fusion,
                  discard_ratio, start_block, keep, row, col):
        """-> [summary.json, the figures as PNG], {"files": names}."""
        run = self.explorer.run(source, upload, model, checkpoint, random_weights, mode)
        paths = self.explorer.downloads(run, block=block, token=token, head_fusion=head_fusion,
                                        discard_ratio=discard_ratio, start_block=start_block, keep=keep, row=row,
                                        col=col)
        return paths, {"files": [os.path.basename(p) for p in paths]}

    @staticmethod
    def use_upload(upload):
        """An upload selects the "upload" image source."""
        return UPLOAD if upload else import_gradio().update()


def _deepest_registry_model() -> int:
    from .registry import WEIGHTS

    return max(entry.config.depth for entry in WEIGHTS.values())


# -- the page --------------------------------------------------------------------------------------------------------
def build_app(models: Sequence[Union[str, object]] = (), *, explorer: Optional[Explorer] = None,
              title: str = "vit-tf: Vision Transformer attention explorer", **explorer_kwargs):
    """The Gradio app (a `gradio.Blocks`; `app.handlers` and `app.explorer` are its pure layer).

    Args:
        models, **explorer_kwargs: see `Explorer` (ignored when `explorer` is given).
        explorer: an explorer to share.
    API endpoints (`gradio_client`): analyze, heatmaps, masks, rollout, grid, distance, patch, downloads (see
    `Handlers`); each takes the image and model fields first (source, upload, model, checkpoint, random_weights,
    mode), then its own settings.
    """
    gr = import_gradio()
    ex = explorer or Explorer(models, **explorer_kwargs)
    h = Handlers(ex)
    depth = _deepest_registry_model()  # until a model has run, any block index of any model passes the fields

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## {title}\nPick a sample photo or upload one and choose a model; click a patch of the "
                    f"model's input to see where it attends. Views reuse the cached forward pass.")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                source = gr.Radio(list(SAMPLES) + [UPLOAD], value=SAMPLES[0], label="Image", elem_id="source")
                upload = gr.File(label="Upload a photo", file_types=["image"], type="filepath", elem_id="upload",
                                 height=120)
                model = gr.Dropdown(ex.model_names, value=ex.default_model, allow_custom_value=True,
                                    label="Model: registry name or `vit-tf convert` folder", elem_id="model")
                checkpoint = gr.Textbox(ex.checkpoint or "", label="Local checkpoint (optional, for a registry name)",
                                        placeholder=".npz, .pth or .safetensors path; Enter to load",
                                        elem_id="checkpoint")
                random_weights = gr.Checkbox(ex.random_weights, label="Random weights (offline smoke test)",
                                             elem_id="random-weights")
                mode = gr.Radio(list(RESIZE_MODES), value=CROP, label="Resize", elem_id="mode")
                go = gr.Button("Analyse", variant="primary", elem_id="analyse")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=3):
                about = gr.Markdown(elem_id="about")
                with gr.Row():
                    picture = gr.Image(label="Model input: click a patch", type="numpy", format="png",
                                       interactive=False, elem_id="input-image", buttons=["download", "fullscreen"])
                    prediction = gr.Label(num_top_classes=5, label="Top-5", elem_id="prediction")
                gr.Markdown("**Where the clicked patch attends, per head** (block below)")
                patch_picture = gr.Image(format="png", interactive=False, show_label=False, elem_id="patch-image",
                                         buttons=["download", "fullscreen"])
        with gr.Row():
            block = gr.Slider(0, depth - 1, value=depth - 1, step=1, label="Block (heads, masks, patch)",
                              elem_id="block")
            token = gr.Dropdown(["class"], value="class", allow_custom_value=True,
                                label="Token (heads, masks, rollout, grid)", elem_id="token")
            row = gr.Number(0, precision=0, minimum=0, label="Patch row (Enter)", elem_id="row")
            col = gr.Number(0, precision=0, minimum=0, label="Patch column (Enter)", elem_id="col")
        with gr.Tabs():
            with gr.Tab("Heads"):
                heads_out = gr.Image(format="png", interactive=False, show_label=False, elem_id="heads-image")
            with gr.Tab("DINO masks"):
                keep = gr.Slider(0.05, 1.0, value=MASK_KEEP, step=0.05, label="Attention mass kept", elem_id="keep")
                masks_out = gr.Image(format="png", interactive=False, show_label=False, elem_id="masks-image")
            with gr.Tab("Rollout"):
                with gr.Row():
                    head_fusion = gr.Radio(list(HEAD_FUSIONS), value="mean", label="Head fusion")
                    discard_ratio = gr.Slider(0.0, 0.99, value=0.0, step=0.01, label="Discard ratio")
                    start_block = gr.Slider(0, depth - 1, value=0, step=1, label="Start block")
                rollout_out = gr.Image(format="png", interactive=False, show_label=False, elem_id="rollout-image")
            with gr.Tab("Block x head grid"):
                grid_out = gr.Image(format="png", interactive=False, show_label=False, elem_id="grid-image")
            with gr.Tab("Mean attention distance"):
                distance_out = gr.Image(format="png", interactive=False, show_label=False, elem_id="distance-image")
            with gr.Tab("Downloads"):
                make = gr.Button("Make the figures and summary.json", elem_id="make-downloads")
                files = gr.File(file_count="multiple", label="Figures (PNG) and summary.json", elem_id="downloads")
            explain_method, explain_target, explain_scores, explain_button, explain_out, explain_json = \
                _explanations_tab(gr)
            with gr.Tab("Numbers"):
                gr.Markdown("The numbers behind each view, as the API returns them.")
                run_json, heads_json = gr.JSON(label="run"), gr.JSON(label="heads")
                masks_json, rollout_json = gr.JSON(label="masks"), gr.JSON(label="rollout")
                grid_json, distance_json = gr.JSON(label="grid"), gr.JSON(label="distance")
                patch_json, files_json = gr.JSON(label="patch"), gr.JSON(label="downloads")

        common = [source, upload, model, checkpoint, random_weights, mode]
        analyzed_outputs = [picture, prediction, about, status, block, start_block, token, row, col, run_json]
        analyzed = gr.on([demo.load, go.click, source.input, model.input, mode.input, random_weights.input,
                          checkpoint.submit], h.analyze, common, analyzed_outputs, api_name="analyze",
                         trigger_mode="always_last")
        uploaded = upload.upload(h.use_upload, upload, source, api_visibility="private").then(
            h.analyze, common, analyzed_outputs, api_visibility="private")
        patch_fields = [picture, patch_picture, patch_json]
        views = [  # handler, its own inputs, outputs, the controls that rerun it
            (h.heatmaps, [block, token], [heads_out, heads_json], [block.input, token.input]),
            (h.masks, [block, token, keep], [masks_out, masks_json], [block.input, token.input, keep.input]),
            (h.rollout, [token, head_fusion, discard_ratio, start_block], [rollout_out, rollout_json],
             [token.input, head_fusion.input, discard_ratio.input, start_block.input]),
            (h.grid, [token], [grid_out, grid_json], [token.input]),
            (h.distance, [], [distance_out, distance_json], []),
            (h.patch, [block, row, col], patch_fields, [block.input, row.submit, col.submit]),
        ]
        for fn, own, outputs, triggers in views:  # every view follows a new run, and its own controls
            # The public endpoint is registered first: it takes the plain name, the private followers get suffixes.
            if triggers:
                gr.on(triggers, fn, common + own, outputs, api_name=fn.__name__, trigger_mode="always_last")
                analyzed.then(fn, common + own, outputs, api_visibility="private")
            else:
                analyzed.then(fn, common + own, outputs, api_name=fn.__name__)
            uploaded.then(fn, common + own, outputs, api_visibility="private")

        def click(evt, source, upload, model, checkpoint, random_weights, mode):
            return h.click(evt, source, upload, model, checkpoint, random_weights, mode)

        click.__annotations__ = {"evt": gr.SelectData}  # how Gradio knows to pass the click: a type, not a string
        picture.select(click, common, [row, col], api_visibility="private").then(
            h.patch, common + [block, row, col], patch_fields, api_visibility="private")
        explain_button.click(h.explain, common + [explain_method, explain_target, explain_scores],
                             [explain_out, explain_json], api_name="explain")
        make.click(h.downloads, common + [block, token, head_fusion, discard_ratio, start_block, keep, row, col],
                   [files, files_json], api_name="downloads")
    demo.explorer, demo.handlers = ex, h
    return demo


EXPLAIN_STEPS = 16  # deletion/insertion games in the page: 16 coarse steps, not one per patch (a few seconds)


def explain_view(run: Run, method: str = "gae", target=None, scores: bool = True) -> View:
    """A class-specific explanation (`vit_tf.analysis.explain`) of the run's image, with its deletion and insertion
    AUCs (`vit_tf.analysis.faithfulness.insertion_deletion`, RISE's normalised AUC; `EXPLAIN_STEPS` coarse steps).

    `target`: a class index, or None / "" for the top-1. Arrays: "map" (gh, gw) and, with scores, "deletion" and
    "insertion" curves (steps + 1,)."""
    from .analysis.explain import METHODS, explain

    if method not in METHODS:
        raise InputError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    net = run.model.model
    classes = int(net.config.num_classes)
    if target in (None, ""):
        target = int(np.argmax(run.outputs["logits"][0])) if classes else None
    else:
        try:
            target = int(target)
        except (TypeError, ValueError):
            raise InputError(f"target class must be a whole number, got {target!r}") from None
        if not 0 <= target < max(classes, 1):
            raise InputError(f"target class {target} is out of range for {classes} classes")
    if target is None and method not in ("attention", "rollout"):
        raise InputError(f"{method} explains a class, and {run.model.name} has no classifier; use attention or rollout")
    patch_map = np.asarray(explain(net, run.x, method, target=None if target is None else [target]))[0]
    info = {"method": method, "target": target, "map": patch_map.tolist()}
    arrays = {"map": patch_map}
    if target is not None and classes == 1000:
        from .analysis import imagenet_class_names

        info["target_name"] = imagenet_class_names()[target]
    if scores and target is not None:
        from .analysis.faithfulness import insertion_deletion

        n = patch_map.size
        step = run.patch_size ** 2 * max(1, -(-n // EXPLAIN_STEPS))
        for mode in ("deletion", "insertion"):
            game = insertion_deletion(net, run.x, patch_map[None], [target], mode=mode, step=step)
            arrays[mode] = np.asarray(game["scores"])[0]
            info[f"{mode}_auc"] = float(np.asarray(game["auc"])[0])
        info["steps"] = int(len(arrays["deletion"]) - 1)
    up = upsample(patch_map, run.picture.shape[:2])
    labels = [f"{method} (class {target})" if target is not None else method, "input x map / max"]
    return View(mosaic([overlay(run.picture, up, alpha=0.6), apply_mask(run.picture, up)], labels, 2), arrays, info)


def _explanations_tab(gr):
    """The controls of the explanation view (one button: an explanation costs a backward pass, its scores
    2 x EXPLAIN_STEPS forward passes)."""
    from .analysis.explain import METHODS

    with gr.Tab("Explanations"):
        gr.Markdown("Class-specific explanations with their faithfulness: deletion AUC (lower is better) and "
                    f"insertion AUC (higher is better), RISE's normalised AUC over {EXPLAIN_STEPS} steps.")
        with gr.Row():
            method = gr.Dropdown(sorted(METHODS), value="gae", label="Method", elem_id="explain-method")
            target = gr.Textbox(value="", label="Target class index (empty: the top-1)", elem_id="explain-target")
            scores = gr.Checkbox(value=True, label="Faithfulness scores", elem_id="explain-scores")
            run_button = gr.Button("Explain", elem_id="explain-run")
        picture = gr.Image(format="png", interactive=False, show_label=False, elem_id="explain-image")
        numbers = gr.JSON(label="explanation")
    return method, target, scores, run_button, picture, numbers


def serve(demo, host: Optional[str] = "127.0.0.1", port: Optional[int] = None, **launch_kwargs):
    """Launch the app on `host` (127.0.0.1 unless told otherwise; None lets Gradio read $GRADIO_SERVER_NAME, as
    Hugging Face Spaces set it) and `port` (None: Gradio's first free port from 7860)."""
    launch_kwargs.setdefault("max_file_size", MAX_FILE_SIZE)
    launch_kwargs.setdefault("ssr_mode", False)
    return demo.launch(server_name=host, server_port=port, **launch_kwargs)


__all__ = [
    "ASPECT", "CROP", "DEFAULT_MODEL", "Explorer", "Handlers", "InputError", "LoadedModel", "MAX_PIXELS",
    "MAX_UPLOAD_BYTES", "ModelSpec", "RESIZE_MODES", "Run", "SAMPLES", "UPLOAD", "View", "aspect_size", "build_app",
    "describe_error", "distance_view", "explain_view", "figure_array", "grid_picture", "grid_view", "heads_picture", "heatmap_view",
    "import_gradio", "input_picture", "mark_patch", "mask_view", "masks_picture", "model_input", "model_markdown",
    "mosaic", "patch_at", "patch_view", "picture_scale", "rollout_picture", "rollout_view", "sample_image",
    "scale_picture", "serve", "token_choices", "upsample",
]
