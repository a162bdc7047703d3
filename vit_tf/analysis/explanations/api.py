"""`explain(model, images, method or methods, target=None, **options)`: class-specific explanations of a Vision
Transformer's prediction as maps over the patch grid, for one method or several at once.

Methods (rule; source):
    attention: one block (the last by default), the chosen token's attention to the patches, mean over heads
        (Dosovitskiy et al. 2020).
    rollout: prod_l normalize((E_h A_l + I) / 2) (Abnar & Zuidema 2020).
    grad_rollout: prod_l normalize((discard(E_h[A_l * dA_l]^+) + I) / 2) (jacobgil/vit-explain).
    gae: R <- R + E_h[(dA_l * A_l)^+] R from R = I (Chefer, Gur & Wolf, ICCV 2021, "Generic Attention-model
        Explainability"; hila-chefer/Transformer-MM-Explainability).
    transformer_attribution: prod_l (E_h[(dA_l * R_l)^+] + I) with R_l the LRP relevance of A_l, LRP-alpha1beta0
        through every layer (Chefer, Gur & Wolf, CVPR 2021, "Transformer Interpretability Beyond Attention
        Visualization"; hila-chefer/Transformer-Explainability); computed in float64 (see `lrp`).
    gradcam_attention: one block, ReLU(E_h[A_h[token, patches] * mean(dA_h[token, patches])]) (the attention
        Grad-CAM baseline of the CVPR 2021 paper).
    gradcam_tokens: ReLU(sum_d mean_patches(dX)[d] * X[patch, d]) on token features X (Selvaraju et al. 2017, as
        jacobgil/pytorch-grad-cam's ViT recipe: X = the output of the last block's norm1).
    integrated_gradients: sum over each patch's pixels and channels of (x - x') * mean_k dy/dx(x' + k/m (x - x'))
        (Sundararajan et al. 2017).
    smoothgrad: sum over each patch's pixels and channels of abs(x * mean_n dy/dx(x + noise_n)) (Smilkov et al.
        2017).
    attnlrp: conservative LRP, sum over each patch's pixels and channels of x * dy/dx with the gradients of LRP
        rules (AttnLRP, Achtibat et al. 2024; rule="cp": CP-LRP, Ali et al. 2022); signed (see `attnlrp`).

`dA_l` is the gradient of the target logit (before the softmax over classes) with respect to block l's attention
probabilities A_l (B, heads, T, T); `E_h` the mean over heads; `^+` clips negatives to 0. Maps are returned as
computed (float64, not min-max scaled, not resized); `vit_tf.analysis.heatmaps.resize_maps` / `normalize_map` do
that for display.

Cost: methods asked for together share their passes — every attention-based method one forward pass, the
class-specific ones one backward pass with it; transformer attribution one float64 pass; attnlrp one float32
forward and backward pass; integrated gradients and SmoothGrad their steps in batches of `internal_batch_size` rows.
Each (model, methods, options, image size) traces one compiled function, reused for every later batch.

Fixes over the published code, which handles one image and the class token only:
    grad_rollout: jacobgil/vit-explain pairs block l's attention with the gradient of block L-1-l (backward hooks
        fire in reverse), divides by row sums without keepdim (so it divides columns) and discards entries of
        batch element 0 only. Here each block gets its own gradient, rows are normalised and every image is
        treated. The discard rule (`protect`) is the one `rollout` uses (see `rules`).
    transformer_attribution: the residual `Add` rule's sums are taken per image (the original sums over the batch).
"""

from __future__ import annotations

from typing import Dict, List, Tuple, Union

import numpy as np

from .._arrays import check_finite, token_index
from . import attnlrp, passes, pixels, rules
from .inputs import check_block as _block, check_classifier as _check_classifier, check_images, check_targets
from .lrp import check_lrp_model

METHODS = ("attention", "rollout", "grad_rollout", "gae", "transformer_attribution", "gradcam_attention",
           "gradcam_tokens", "integrated_gradients", "smoothgrad", "attnlrp")
CLASS_AGNOSTIC = ("attention", "rollout")  # `target` does not change these maps
ROLLOUT_TYPE = ("rollout", "grad_rollout", "gae", "transformer_attribution")  # products over blocks
PIXEL_METHODS = ("integrated_gradients", "smoothgrad")

OPTIONS = {
    "attention": {"token", "block"},
    "rollout": {"token", "head_fusion", "discard_ratio", "start_block", "protect"},
    "grad_rollout": {"token", "discard_ratio", "protect"},
    "gae": {"token"},
    "transformer_attribution": {"token", "start_block"},
    "gradcam_attention": {"token", "block"},
    "gradcam_tokens": {"block", "site"},
    "integrated_gradients": {"steps", "baseline", "internal_batch_size"},
    "smoothgrad": {"samples", "noise_level", "seed", "times_input", "internal_batch_size"},
    "attnlrp": {"rule"},
}
SITES = ("output", "input")


# -- raw arrays ----------------------------------------------------------------------------------------------------
def attention_gradients(model, images, target=None) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray],
                                                                 List[np.ndarray]]:
    """Every block's attention and the gradient of the target logit with respect to it, in one forward+backward
    pass through the model itself (for rules applied outside `explain`, e.g. `gae_map`).

    Args:
        model: a `VisionTransformer` with a classifier.
        images: (B, H, W, 3) preprocessed.
        target: class index, one per image, or None for each image's top-1 class.
    Returns:
        (logits (B, classes) float32, targets (B,) int64, attention [(B, heads, T, T)] per block,
        gradients [(B, heads, T, T)] per block: d logits[b, targets[b]] / d A_l[b]), NumPy.
    """
    import tensorflow as tf

    _check_classifier(model)
    x, _ = check_images(model, images)
    t = check_targets(target, int(x.shape[0]), model.config.num_classes)
    logits, targets, maps, grads = passes.attention_gradients_pass(model, x, tf.constant(t))
    keys = [f"transformer_block_{i}_att" for i in range(model.config.depth)]
    return (logits.numpy(), targets.numpy(), [check_finite(k, m.numpy()) for k, m in zip(keys, maps)],
            [check_finite(f"gradient of {k}", g.numpy()) for k, g in zip(keys, grads)])


def token_gradients(model, images, target=None, *, block: int = -1, site: str = "output"):
    """Token features at one point of the network and the target logit's gradient there.

    Args:
        block: block index (negative counts from the end).
        site: "output" = `block`'s norm1 output (pytorch-grad-cam's `target_layers=[model.blocks[-1].norm1]`);
            "input" = the tokens entering its norm1 (the previous block's output).
    Returns:
        (features (B, T, D) float32, gradient (B, T, D) float32, targets (B,) int64) as NumPy.
    """
    import tensorflow as tf

    _check_classifier(model)
    depth = model.config.depth
    index = _block(block, depth)
    if site not in SITES:
        raise ValueError(f"site must be one of {SITES}, got {site!r}")
    x, _ = check_images(model, images)
    t = check_targets(target, int(x.shape[0]), model.config.num_classes)
    targets, features, grad = passes.token_gradients_pass(model, x, tf.constant(t), index, site)
    return (check_finite("token features", features.numpy()), check_finite("token gradient", grad.numpy()),
            targets.numpy())


# -- the entry point -----------------------------------------------------------------------------------------------
def _plan(model, methods, grid, options) -> passes.Plan:
    c = model.config
    depth = c.depth
    prefix = c.num_prefix_tokens
    t = prefix + grid[0] * grid[1]
    protect = options.get("protect", "entry")
    discard = float(options.get("discard_ratio", 0.0))
    grad_discard = float(options.get("discard_ratio", 0.9))
    rules.check_discard(grad_discard if "grad_rollout" in methods else discard, protect)
    fusion = options.get("head_fusion", "mean")
    if fusion not in rules.HEAD_FUSIONS:
        raise ValueError(f"head_fusion must be one of {rules.HEAD_FUSIONS}, got {fusion!r}")
    site = options.get("site", "output")
    if site not in SITES:
        raise ValueError(f"site must be one of {SITES}, got {site!r}")
    plan = passes.Plan(methods=tuple(sorted(m for m in methods if m not in PIXEL_METHODS)),
                       index=token_index(options.get("token", "cls"), prefix, t), prefix=prefix, grid=tuple(grid),
                       block=_block(options.get("block", -1), depth), site=site, head_fusion=fusion,
                       discard_ratio=discard, grad_discard_ratio=grad_discard, protect=protect,
                       start_block=_block(options.get("start_block", 0), depth, "start_block"),
                       rule=attnlrp.check_rule(options.get("rule", "attnlrp")))
    return plan.only(plan.methods)


def _check_methods(model, method, options):
    """-> (methods list, single?) after checking names, options and the model."""
    single = isinstance(method, str)
    methods = [method] if single else list(dict.fromkeys(method))
    if not methods:
        raise ValueError("no method given")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    accepted = set().union(*(OPTIONS[m] for m in methods))
    unknown = set(options) - accepted
    if unknown:
        what = f"method {methods[0]!r} takes" if single else f"methods {methods} take"
        raise ValueError(f"{what} no option(s) {sorted(unknown)}; {'it takes' if single else 'they take'} "
                         f"{sorted(accepted)}")
    if any(m not in CLASS_AGNOSTIC for m in methods):
        _check_classifier(model)
        if "transformer_attribution" in methods:
            check_lrp_model(model)
    return methods, single


class Explainer:
    """A set of explanation methods with their options, compiled once per image size and run batch after batch
    (`explain` is a one-batch Explainer; the command line streams datasets through one).

    Args:
        model: a `VisionTransformer`.
        methods: a method name or a list of them (`METHODS`).
        strategy: None, or a `tf.distribute.Strategy` ("mirrored" over local devices, "multiworker" across hosts:
            `vit_tf.distribute.make_strategy`): the model is mirrored once, each batch is split over the replicas
            (every worker of a multi-worker run passes the same global batch and computes its shard), each replica
            runs the compiled step on its slice and the results are gathered in batch order on every worker —
            the single-device numbers.
        options: as `explain` takes them.

    Call: `explainer(images, target=None)`, images (B, H, W, 3) and target as in `explain`.
    Returns (maps {method: (B, gh, gw) float64}, targets (B,) int64 explained, logits (B, classes) float32 — or
    the features for a model without classifier), NumPy.
    """

    def __init__(self, model, methods, *, strategy=None, **options):
        from ...distribute import replicate_model

        self.methods, _ = _check_methods(model, methods, options)
        self.model, self.strategy, self.options = replicate_model(model, strategy), strategy, dict(options)
        self.pixel = tuple(pixels.pixel_options(m, **{k: v for k, v in options.items()
                                                      if k in OPTIONS[m] and k not in ("baseline", "seed")})
                           for m in self.methods if m in PIXEL_METHODS)
        self.specific = any(m not in CLASS_AGNOSTIC for m in self.methods)
        self._baseline = options.get("baseline", 0.0)
        self._noise = {}
        self._plans = {}

    def _plan_for(self, size):
        if size not in self._plans:
            p = self.model.config.patch_size
            if size[0] % p or size[1] % p:
                raise ValueError(f"image size {size[0]}x{size[1]} is not a multiple of the patch size {p}")
            self._plans[size] = _plan(self.model, self.methods, (size[0] // p, size[1] // p), self.options)
        return self._plans[size]

    def _extras(self, shape):
        """(baseline, noise) arguments of the step for images of `shape`."""
        needs_noise = any(o.method == "smoothgrad" for o in self.pixel)
        if needs_noise and shape[1:] not in self._noise:
            samples = next(o.samples for o in self.pixel if o.method == "smoothgrad")
            self._noise[shape[1:]] = pixels.smoothgrad_noise(samples, shape[1:], self.options.get("seed", 0))
        noise = self._noise[shape[1:]] if needs_noise else np.zeros((1, 1, 1, 3), np.float32)
        uses_baseline = any(o.method == "integrated_gradients" for o in self.pixel)
        baseline = (pixels.check_baseline(self._baseline, shape) if uses_baseline
                    else np.zeros((1, 1, 1, 1), np.float32))
        return baseline, noise

    def __call__(self, images, target=None):
        import tensorflow as tf

        x, _ = check_images(self.model, images)
        t = check_targets(target if self.specific else None, int(x.shape[0]), max(self.model.config.num_classes, 1))
        targets = tf.constant(t)
        shape = tuple(int(v) for v in x.shape)
        if self.strategy is not None:
            from ...distribute import distribute_batches

            batch = tf.data.Dataset.from_tensor_slices((x, targets)).batch(max(1, shape[0]))
            x, targets = next(iter(distribute_batches(self.strategy, batch)))
        plan = self._plan_for(shape[1:3])
        baseline, noise = self._extras(shape)
        if self.strategy is not None and baseline.shape[0] > 1:
            raise ValueError("per-image baselines are not supported with a strategy; give a number, per-channel "
                             "values or one image")
        logits, resolved, maps = passes.run_step(self.model, plan, self.pixel, x, targets, tf.constant(baseline),
                                                 tf.constant(noise), self.strategy)
        out = passes.to_host(maps)
        for name, value in out.items():
            check_finite(name, value)
        return ({m: out[m] for m in self.methods}, np.asarray(resolved, np.int64),
                np.asarray(logits, np.float32))


def explain(model, images, method: Union[str, List[str], Tuple[str, ...]], target=None,
            **options) -> Union[np.ndarray, Dict[str, np.ndarray]]:
    """Explanation maps at patch resolution for a batch, for one method or several sharing their passes.

    Args:
        model: a `VisionTransformer` (a classifier for every method but "attention" and "rollout").
        images: (B, H, W, 3) preprocessed; H and W multiples of the patch size (any grid).
        method: one of `METHODS` (see the module docstring for each rule and its paper), or a list of them.
        target: class index (int) or one per image ((B,) ints), each in 0..classes-1; None explains each image's
            top-1 class. Ignored by "attention" and "rollout".
        options, by method (defaults in brackets); with several methods each option goes to the methods that take
            it, and every option must be taken by one of them:
            token ["cls"]: readout token of the attention-based methods ("cls", "dist" or an index).
            block [-1]: the block of "attention", "gradcam_attention" and "gradcam_tokens".
            head_fusion ["mean"], discard_ratio [0.0 for rollout; 0.9 for grad_rollout], start_block [0]: rollout
                options; start_block also for "transformer_attribution" (Chefer et al.'s perturbation tests used 1).
            protect ["entry"]: what the discard of rollout and grad_rollout spares: the readout token's own entry
                (jacobgil/vit-explain's rule) or its whole "column".
            site ["output"]: "gradcam_tokens" on the output of the block's norm1 (pytorch-grad-cam's ViT layer) or
                its "input" (the previous block's output).
            steps [50], baseline [0.0]: integrated gradients; map = sum over each patch's pixels and channels of
                the signed (x - x') * mean gradient. The baseline: a number, per-channel values or an image.
            samples [50], noise_level [0.15], seed [0], times_input [True]: SmoothGrad; map = sum over each patch's
                pixels and channels of abs(x * mean gradient) (abs(mean gradient) with times_input=False).
            internal_batch_size [16]: (step, image) rows per forward+backward call of the two pixel methods.
            rule ["attnlrp"]: "attnlrp"'s rules in the attention: AttnLRP's ("attnlrp") or CP-LRP's ("cp").
    Returns:
        float64 (B, gh, gw), gh = H / patch_size, gw = W / patch_size, patches in row-major order; for a list of
        methods, {method: that array}.
    Raises:
        ValueError for an unknown method or option, an out-of-range target or block, or a model without
        classifier for a class-specific method.

    Example:
        >>> import numpy as np, vit_tf
        >>> model = vit_tf.create_model("vit_tiny_patch16_224", depth=2, img_size=32, patch_size=8, num_classes=5)
        >>> vit_tf.explain(model, np.zeros((2, 32, 48, 3), "float32"), "gae", target=3).shape
        (2, 4, 6)
        >>> maps = vit_tf.explain(model, np.zeros((2, 32, 32, 3), "float32"), ["gae", "rollout"])
        >>> sorted(maps), maps["rollout"].shape
        (['gae', 'rollout'], (2, 4, 4))
    """
    single = isinstance(method, str)
    maps, _, _ = Explainer(model, method, **options)(images, target)
    return maps[method] if single else maps
