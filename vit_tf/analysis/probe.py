"""Every probe of the keras.io example on one image, as arrays: prediction, mean attention distance, rollout,
last-block heatmaps and DINO masks, the layer x head grid, patch filters and their PCA, position embeddings."""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from .distance import mean_attention_distance, patch_distance_matrix
from .embeddings import patch_filter_pca, patch_filters, position_embedding_cosine, position_embedding_similarity
from .heatmaps import attention_grid, attention_mass_mask, token_attention
from .rollout import attention_rollout, rollout_stats
from .sources import attention_source


@functools.lru_cache(maxsize=1)
def imagenet_class_names() -> Tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the standard index order (WordNet lemmas, as timm's ImageNetInfo and
    the keras.io example's ilsvrc2012_wordnet_lemmas.txt)."""
    text = resources.files("vit_tf").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise ValueError(f"imagenet_classes.txt holds {len(names)} names, expected 1000")
    return names


def top_k(logits, k: int = 5, class_names: Optional[Sequence[str]] = None) -> List[List[dict]]:
    """Softmax top-k of logits (B, classes): per image a list of {"index", "label", "probability"}.

    Labels are ImageNet-1k names for 1000 classes (unless `class_names` is given), else "class {i}".
    """
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    if class_names is None and z.shape[-1] == 1000:
        class_names = imagenet_class_names()
    best = np.argsort(-prob, axis=-1, kind="stable")[:, :k]
    return [[{"index": int(i), "label": class_names[i] if class_names is not None else f"class {i}",
              "probability": float(p[i])} for i in row] for p, row in zip(prob, best)]


@dataclasses.dataclass
class ProbeResult:
    """Arrays of every probe for one image. Grids are (gh, gw) of the input; maps are raw attention values.

    image: uint8 (H, W, 3) model input for display. mean_distance: (blocks, heads) pixels. uniform_distance: mean
    distance that uniform attention over the patches would give. rollout: (gh, gw). heatmaps / masks: (heads, gh,
    gw) of block `heatmap_block`. grid: (blocks, heads, gh, gw). filters: (n, p, p, 3) in [0, 1]. filter_pca:
    ((n, p, p, 3), (n,) explained variance ratios). pos_similarity: (N, N). pos_cosine: (gh', gw', gh', gw') on
    the position embedding's own grid. predictions: top-k list or None for feature-only models.
    """

    name: str
    image: np.ndarray
    outputs: dict
    attention: dict
    patch_size: int
    num_prefix_tokens: int
    grid_size: Tuple[int, int]
    mean_distance: np.ndarray
    uniform_distance: float
    rollout: np.ndarray
    rollout_settings: dict
    heatmap_block: int
    heatmaps: np.ndarray
    masks: np.ndarray
    mask_keep: float
    grid: np.ndarray
    filters: Optional[np.ndarray]
    filter_pca: Optional[Tuple[np.ndarray, np.ndarray]]
    pos_similarity: Optional[np.ndarray]
    pos_cosine: Optional[np.ndarray]
    predictions: Optional[List[dict]]

    def summary(self) -> dict:
        """JSON-ready numbers: prediction, mean distances, rollout statistics and settings."""
        md = self.mean_distance
        return {
            "model": self.name,
            "input_size": list(self.image.shape[:2]),
            "patch_size": self.patch_size,
            "grid_size": list(self.grid_size),
            "num_prefix_tokens": self.num_prefix_tokens,
            "prediction": self.predictions,
            "mean_attention_distance": {
                "units": "pixels",
                "per_block_head": np.round(md, 4).tolist(),
                "per_block_mean": np.round(md.mean(-1), 4).tolist(),
                "uniform_attention": round(self.uniform_distance, 4),
            },
            "rollout": {**self.rollout_settings,
                        **{k: v[0] for k, v in rollout_stats(self.rollout[None]).items()}},
            "heatmaps": {"block": self.heatmap_block, "mask_keep": self.mask_keep,
                         "mask_fraction_of_patches": np.round(self.masks.mean(axis=(-2, -1)), 4).tolist()},
        }


def _optional(fn):
    try:
        return fn()
    except (AttributeError, ValueError):  # e.g. a source that cannot reach its weights
        return None


def probe(model, images, *, image: Optional[np.ndarray] = None, token: Union[int, str] = "cls",
          head_fusion: str = "mean", discard_ratio: float = 0.0, start_block: int = 0, heatmap_block: int = -1,
          mask_keep: float = 0.6, num_filters: int = 128, num_components: int = 28, k: int = 5,
          class_names: Optional[Sequence[str]] = None) -> ProbeResult:
    """Run every probe on the first image of a batch.

    Args:
        model: a `VisionTransformer`, timm model, SavedModel path or attention source.
        images: preprocessed (B, H, W, 3) or (H, W, 3); only the first image is probed.
        image: uint8 (H, W, 3) to draw on (default: a min-max rescaling of the input).
        token, head_fusion, discard_ratio, start_block: rollout settings (see `attention_rollout`).
        heatmap_block: block of the per-head heatmaps; mask_keep: DINO mass kept by the masks.
        num_filters, num_components: patch filters shown and principal components computed.
        k, class_names: top-k prediction labels (ImageNet-1k names by default for 1000 classes).
    """
    source = attention_source(model)
    x = np.asarray(images, np.float32)
    x = x[None] if x.ndim == 3 else x[:1]
    outputs, attention = source(x)
    p, prefix = source.patch_size, source.num_prefix_tokens
    grid = (x.shape[1] // p, x.shape[2] // p)
    if image is None:
        lo, hi = x[0].min(), x[0].max()
        image = np.round((x[0] - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)
    common = dict(num_prefix_tokens=prefix, grid_size=grid)
    settings = dict(token=token, head_fusion=head_fusion, discard_ratio=discard_ratio, start_block=start_block)
    heat = token_attention(attention, block=heatmap_block, token=token, **common)[0]
    kernel = _optional(source.patch_kernel)
    pos = _optional(source.position_embedding)
    pos_grid = getattr(source, "grid_size", None)
    logits = outputs.get("logits")
    return ProbeResult(
        name=source.name, image=np.asarray(image), outputs=outputs, attention=attention, patch_size=p,
        num_prefix_tokens=prefix, grid_size=grid,
        mean_distance=mean_attention_distance(attention, patch_size=p, **common)[0],
        uniform_distance=float(patch_distance_matrix(grid, p).mean()),
        rollout=attention_rollout(attention, **settings, **common)[0], rollout_settings=settings,
        heatmap_block=heatmap_block % len(attention), heatmaps=heat,
        masks=attention_mass_mask(heat, mask_keep), mask_keep=mask_keep,
        grid=attention_grid(attention, token=token, **common)[0],
        filters=None if kernel is None else patch_filters(kernel, num_filters),
        filter_pca=None if kernel is None else patch_filter_pca(kernel, num_components),
        pos_similarity=None if pos is None else position_embedding_similarity(pos, num_prefix_tokens=prefix),
        pos_cosine=None if pos is None else _optional(
            lambda: position_embedding_cosine(pos, num_prefix_tokens=prefix, grid_size=pos_grid)),
        predictions=None if logits is None else top_k(logits, k, class_names)[0],
    )
