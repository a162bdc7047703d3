"""Analysis at the price of a forward pass: the forward pass and the reductions (mean attention distance, rollout,
token maps) run in one `tf.function`, so the (B, heads, T, T) maps never leave the device; only the reduced arrays
(B, blocks, heads), (B, gh, gw), (B, heads, gh, gw) and the model outputs are copied to NumPy.

The reductions are the ones of `vit_tf.analysis.distance`, `.rollout` and `.heatmaps`, written with TensorFlow ops;
tests check them against those NumPy versions. Batches can be spread over devices and hosts with a
`tf.distribute` strategy (`vit_tf.distribute`): each replica reduces its shard, and the per-image results are
gathered in dataset order, so a distributed run gives the single-device numbers.
"""

from __future__ import annotations

from typing import Dict, Optional, Union

import numpy as np

from ._arrays import token_index
from .distance import patch_distance_matrix
from .explanations import rules
from .rollout import HEAD_FUSIONS


class GraphAnalysis:
    """A model's forward pass fused with analysis reductions.

    Args:
        model: a `VisionTransformer` or a `vit_tf.SavedModel` (anything with `forward_all(images, training=,
            return_attention=)` and the patch geometry: `config` or `patch_size`/`num_prefix_tokens`).
        mean_distance: compute mean attention distance per block and head (pixels).
        renormalize: mean distance over the patches only (see `mean_attention_distance`).
        rollout: compute the attention rollout map of `token`.
        head_fusion, discard_ratio, start_block: rollout options (see `attention_rollout`).
        token: "cls", "dist" or a token index: the query of rollout and token maps.
        token_maps_block: a block index to return that block's per-head maps of `token`, or None.
        outputs: return the model outputs (logits / features) as well.
        jit_compile: compile the fused function with XLA.
        strategy: a `tf.distribute.Strategy` to spread each batch over its replicas, or None.

    Call: `analysis(images)` with images (B, H, W, 3) float32 (already preprocessed; a NumPy array, a tensor, or
    with a strategy a distributed batch from `vit_tf.distribute.distribute_batches`). Returns a dict of NumPy arrays:
    "mean_distance" float64 (B, blocks, heads), "rollout" float64 (B, gh, gw), "token_maps" float32
    (B, heads, gh, gw), and the model's outputs by name ("logits", "features", ...), each present when requested.
    """

    def __init__(self, model, *, mean_distance: bool = True, renormalize: bool = False, rollout: bool = False,
                 head_fusion: str = "mean", discard_ratio: float = 0.0, start_block: int = 0,
                 token: Union[int, str] = "cls", token_maps_block: Optional[int] = None, outputs: bool = True,
                 jit_compile: bool = False, strategy=None):
        import tensorflow as tf

        if head_fusion not in HEAD_FUSIONS:
            raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")
        if not 0.0 <= discard_ratio < 1.0:
            raise ValueError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
        self.model = model
        config = getattr(model, "config", None)
        if hasattr(config, "patch_size"):
            self.patch_size, self.num_prefix_tokens, depth = (config.patch_size, config.num_prefix_tokens,
                                                              config.depth)
        else:  # a SavedModel: geometry from its metadata
            self.patch_size, self.num_prefix_tokens = int(model.patch_size), int(model.num_prefix_tokens)
            depth = int((model.config or {}).get("depth", 0)) or None
        self.options = dict(mean_distance=mean_distance, renormalize=renormalize, rollout=rollout,
                            head_fusion=head_fusion, discard_ratio=float(discard_ratio), start_block=start_block,
                            token=token, token_maps_block=token_maps_block, outputs=outputs)
        if depth is not None:
            for what, block in (("start_block", start_block), ("token_maps_block", token_maps_block)):
                if block is not None and not -depth <= block < depth:
                    raise ValueError(f"{what} {block} is out of range for {depth} blocks")
        self.depth = depth
        self.strategy = strategy
        self._step = tf.function(self._reduce, jit_compile=jit_compile, reduce_retracing=True)

    # -- the fused step --------------------------------------------------------------------------------------------
    def _requested_blocks(self):
        o = self.options
        if o["mean_distance"] or self.depth is None:
            return True
        blocks = set()
        if o["rollout"]:
            blocks.update(range(o["start_block"] % self.depth, self.depth))
        if o["token_maps_block"] is not None:
            blocks.add(o["token_maps_block"] % self.depth)
        return sorted(blocks) if blocks else False

    def _reduce(self, images) -> Dict[str, object]:
        import tensorflow as tf

        o = self.options
        outputs, attention = self.model.forward_all(images, training=False, return_attention=self._requested_blocks())
        result = {k: v for k, v in outputs.items()} if o["outputs"] else {}
        if not attention:
            return result
        blocks = [attention[k] for k in sorted(attention, key=lambda k: int(k.split("_")[2]))]
        t = blocks[0].shape[-1]
        p = self.num_prefix_tokens
        h, w = images.shape[1] // self.patch_size, images.shape[2] // self.patch_size
        if t is None or h is None or w is None:
            raise ValueError("GraphAnalysis needs static image sizes; call it on concrete arrays")
        if h * w + p != t:
            raise ValueError(f"{t} tokens do not fit a {h}x{w} grid with {p} prefix tokens")
        if o["mean_distance"]:
            distances = _padded_distances((h, w), self.patch_size, p)
            result["mean_distance"] = tf.stack([_mean_distance(a, distances, p, o["renormalize"]) for a in blocks],
                                               axis=1)
        index = token_index(o["token"], p, t) if (o["rollout"] or o["token_maps_block"] is not None) else None
        if o["rollout"]:
            by_key = dict(zip(sorted(attention, key=lambda k: int(k.split("_")[2])), blocks))
            depth = self.depth or len(blocks)
            chosen = [by_key[f"transformer_block_{i}_att"] for i in range(o["start_block"] % depth, depth)]
            joint = rules.rollout(chosen, index, head_fusion=o["head_fusion"], discard_ratio=o["discard_ratio"])
            result["rollout"] = tf.reshape(joint[:, index, p:], (-1, h, w))
        if o["token_maps_block"] is not None:
            depth = self.depth or len(blocks)
            a = attention[f"transformer_block_{o['token_maps_block'] % depth}_att"]
            result["token_maps"] = tf.reshape(a[:, :, index, p:], (-1, a.shape[1], h, w))
        return result

    def __call__(self, images) -> Dict[str, np.ndarray]:
        import tensorflow as tf

        if self.strategy is None:
            if not tf.is_tensor(images):
                images = tf.convert_to_tensor(np.asarray(images, np.float32))
            result = self._step(images)
        else:
            per_replica = self.strategy.run(self._step, args=(images,))
            # Replicas hold consecutive slices of the batch: gathering along axis 0 restores dataset order.
            result = {k: self.strategy.gather(v, axis=0) for k, v in per_replica.items()}
        out = {k: np.asarray(v) for k, v in result.items()}
        for key in ("mean_distance", "rollout"):
            if key in out:
                out[key] = out[key].astype(np.float64)
        return out


# -- reductions in TensorFlow ----------------------------------------------------------------------------------------
def _padded_distances(grid, patch_size: int, num_prefix_tokens: int):
    """(T, T) float32: patch distances in pixels, zero rows/columns for the prefix tokens (constant per grid)."""
    import tensorflow as tf

    n = grid[0] * grid[1]
    d = np.zeros((num_prefix_tokens + n,) * 2, np.float32)
    d[num_prefix_tokens:, num_prefix_tokens:] = patch_distance_matrix(grid, patch_size)
    return tf.constant(d)


def _mean_distance(attention, distances, num_prefix_tokens: int, renormalize: bool):
    """(B, heads, T, T) -> (B, heads) float32 mean distance over the patch queries."""
    import tensorflow as tf

    per_query = tf.einsum("bhqk,qk->bhq", attention, distances)[..., num_prefix_tokens:]
    if renormalize:
        mass = tf.reduce_sum(attention[..., num_prefix_tokens:, num_prefix_tokens:], axis=-1)
        per_query = per_query / tf.where(mass > 0, mass, tf.ones_like(mass))
    return tf.reduce_mean(per_query, axis=-1)


def dataset_mean_distance(model, batches, *, renormalize: bool = False, strategy=None, jit_compile: bool = False,
                          on_batch=None, stats=None):
    """Mean attention distance over a dataset, streamed: per batch, the forward pass and the reduction run in one
    `tf.function` and only (B, blocks, heads) leaves the device; float64 running moments on the host.

    Args:
        model: a `VisionTransformer` or `vit_tf.SavedModel`.
        batches: an iterable of (B, H, W, 3) float32 arrays, or a batched `tf.data.Dataset` of images (with a
            strategy it is distributed over the replicas; every worker of a multi-worker run gets the global result).
        renormalize: see `mean_attention_distance`.
        strategy: a `tf.distribute.Strategy` or None.
        jit_compile: compile with XLA.
        on_batch: called with the number of images of each batch (progress bars).
        stats: a `RunningMoments` to add to (a new one by default).
    Returns:
        `RunningMoments` over images of (blocks, heads) distances in pixels.
    """
    from ..distribute import distribute_batches, replicate_model
    from .distance import RunningMoments

    stats = RunningMoments() if stats is None else stats
    graph = GraphAnalysis(replicate_model(model, strategy), renormalize=renormalize, outputs=False,
                          jit_compile=jit_compile, strategy=strategy)
    if strategy is not None:
        batches = distribute_batches(strategy, batches)
    for batch in batches:
        distances = graph(batch)["mean_distance"]
        stats.update(distances)
        if on_batch is not None:
            on_batch(len(distances))
    return stats
