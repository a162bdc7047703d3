"""Views: a `Run` -> a `View` (a uint8 picture, the arrays it shows, JSON-ready numbers), each one
`vit_tf.analysis` call on the cached attention (or, for explanations, `vit_tf.explain` on the run's input). Moving a
slider reruns a view, never the model."""

from __future__ import annotations

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np

from ..analysis import (apply_mask, attention_grid, attention_mass_mask, attention_rollout, mean_attention_distance,
                        overlay, patch_distance_matrix, rollout_stats, token_attention)
from ..analysis.rollout import HEAD_FUSIONS
from .common import MASK_KEEP, InputError
from .pictures import (figure_array, grid_picture, heads_picture, mark_patch, masks_picture, mosaic, rollout_picture,
                       upsample)
from .run import Run


@dataclasses.dataclass
class View:
    """What a view shows: `picture` uint8 (H, W, 3), the `arrays` it was drawn from, JSON-ready `info`."""

    picture: np.ndarray
    arrays: Dict[str, np.ndarray]
    info: dict


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
    from ..plotting import mean_distance_figure

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


EXPLAIN_STEPS = 16  # deletion/insertion games in the page: 16 coarse steps, not one per patch (a few seconds)
# The methods that read the class out of a prefix token (`vit_tf.explain`'s `token` option): the attention-based
# rules. Token Grad-CAM and the two pixel-gradient methods explain the class score through every patch's features
# or pixels and take no token (tests/test_app.py checks `vit_tf.explain` refuses one for them).
def _token_methods():
    from ..analysis.explanations import METHODS, OPTIONS

    return tuple(m for m in METHODS if "token" in OPTIONS[m])


TOKEN_METHODS = _token_methods()  # the methods whose options include a readout token


def explain_view(run: Run, method: str = "gae", target=None, scores: bool = True, token: str = "class") -> View:
    """A class-specific explanation (`vit_tf.explain`) of the run's image, with its deletion and insertion AUCs
    (`vit_tf.analysis.insertion_deletion`, RISE's normalised AUC; `EXPLAIN_STEPS` coarse steps).

    `target`: a class index, or None / "" for the top-1. `token`: the page's prefix token ("class", "distillation",
    "register i"), the readout token of the `TOKEN_METHODS`; the others take none, and info["token"] is then None
    with a note saying so. Arrays: "map" (gh, gw) and, with scores, "deletion" and "insertion" curves
    (steps + 1,)."""
    from .. import explain
    from ..analysis import EXPLAIN_METHODS

    if method not in EXPLAIN_METHODS:
        raise InputError(f"method must be one of {sorted(EXPLAIN_METHODS)}, got {method!r}")
    index = run.token(token)
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
    reads_token = method in TOKEN_METHODS
    options = {"token": index} if reads_token else {}
    patch_map = np.asarray(explain(net, run.x, method, target=None if target is None else [target], **options))[0]
    info = {"method": method, "target": target, "token": token if reads_token else None, "map": patch_map.tolist()}
    if not reads_token:
        info["note"] = f"{method} takes no token: it explains the class through every patch"
    arrays = {"map": patch_map}
    if target is not None and classes == 1000:
        from ..analysis import imagenet_class_names

        info["target_name"] = imagenet_class_names()[target]
    if scores and target is not None:
        from ..analysis import insertion_deletion

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


__all__ = ["EXPLAIN_STEPS", "TOKEN_METHODS", "View", "distance_view", "explain_view", "grid_view", "heatmap_view",
           "input_picture", "mask_view", "patch_view", "rollout_view"]
