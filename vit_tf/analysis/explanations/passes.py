"""The compiled passes behind `explain`: one `tf.function` per (model, set of methods with their options, image size),
in which the forward pass, the backward pass and every requested method's reduction run together. Only the maps
(B, gh, gw), the logits and the explained classes leave it: no block's (B, heads, T, T) attention or gradient is
copied to the host.

Passes:
    attention pass: `forward_intermediates` in the model's compute dtype; with a class-specific method, the gradient
        of the target logit with respect to every block's attention (and, for token Grad-CAM, the tokens) in one
        backward pass; then "attention", "rollout", "grad_rollout", "gae", "gradcam_attention", "gradcam_tokens".
    exact pass: "transformer_attribution": the model's own blocks in float64 (see `lrp`), its gradients and the LRP
        relevance.
    relevance pass: "attnlrp": gradient x input of the model's float32 forward traced under relevance rules (see
        `attnlrp`).
    pixel pass: input gradients of (image, step) rows for integrated gradients and SmoothGrad, built in the graph
        from the images and per-row coefficients, summed per image (captum's `internal_batch_size` rows a call).

A target of -1 inside a pass means "the image's top-1 class" (the public API refuses negative targets).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Dict, Tuple

from ..engine import compiled
from . import attnlrp, rules
from .lrp import attention_relevance

ATTENTION_METHODS = ("attention", "rollout", "grad_rollout", "gae", "gradcam_attention", "gradcam_tokens")
GRADIENT_METHODS = ("grad_rollout", "gae", "gradcam_attention", "gradcam_tokens")


@dataclass(frozen=True)
class Plan:
    """What one attention or exact pass computes: the methods (sorted) and their resolved options, hashable.

    index: readout token row; prefix: prefix tokens; grid: (gh, gw); block: non-negative block of "attention",
    "gradcam_attention", "gradcam_tokens"; site: "input" or "output" of gradcam_tokens; head_fusion,
    discard_ratio (rollout), grad_discard_ratio (grad_rollout), protect: discard rule; start_block: non-negative
    first block of "rollout" and "transformer_attribution"; rule: the relevance rules of "attnlrp"."""
    methods: Tuple[str, ...]
    index: int
    prefix: int
    grid: Tuple[int, int]
    block: int = -1
    site: str = "output"
    head_fusion: str = "mean"
    discard_ratio: float = 0.0
    grad_discard_ratio: float = 0.9
    protect: str = "entry"
    start_block: int = 0
    rule: str = "attnlrp"

    def only(self, methods) -> "Plan":
        """This plan restricted to `methods`, the options they do not read reset to their defaults (so that one
        compiled function serves every call that computes the same thing)."""
        methods = tuple(sorted(methods))
        reads = lambda *names: any(m in methods for m in names)  # noqa: E731
        default = Plan(methods=methods, index=self.index, prefix=self.prefix, grid=self.grid)
        return dataclasses.replace(
            default,
            index=self.index if reads(*ATTENTION_METHODS, "transformer_attribution") else 0,
            block=self.block if reads("attention", "gradcam_attention", "gradcam_tokens") else -1,
            site=self.site if reads("gradcam_tokens") else default.site,
            head_fusion=self.head_fusion if reads("rollout") else default.head_fusion,
            discard_ratio=self.discard_ratio if reads("rollout") else default.discard_ratio,
            grad_discard_ratio=self.grad_discard_ratio if reads("grad_rollout") else default.grad_discard_ratio,
            protect=self.protect if reads("rollout", "grad_rollout") else default.protect,
            start_block=self.start_block if reads("rollout", "transformer_attribution") else 0,
            rule=self.rule if reads("attnlrp") else default.rule)

    @property
    def needs_gradients(self) -> bool:
        return any(m in GRADIENT_METHODS for m in self.methods)

    def key(self, kind: str) -> str:
        return f"explain:{kind}:{self!r}"


def _select(logits, targets):
    """Targets with -1 replaced by the top-1 class, and sum_b logits[b, t_b] (images do not interact in eval mode,
    so its gradient is every image's own)."""
    import tensorflow as tf

    top1 = tf.argmax(logits, axis=-1, output_type=targets.dtype)
    t = tf.where(targets < 0, top1, targets)
    return t, tf.reduce_sum(tf.gather(logits, t, axis=1, batch_dims=1))


def attention_pass(model, images, targets, plan: Plan):
    """Graph code of the attention pass (see the module docstring): (logits (B, classes) float32, targets (B,)
    resolved, {method: (B, gh, gw) float64}) for the attention-based methods of `plan`."""
    import tensorflow as tf

    tape = tf.GradientTape(watch_accessed_variables=False) if plan.needs_gradients else None
    with tape if tape is not None else contextlib.nullcontext():
        if tape is not None:
            tape.watch(images)
        outputs, records, _ = model.forward_intermediates(images)
        logits = tf.cast(outputs.get("logits", outputs["features"]), tf.float32)
        t, y = _select(logits, targets) if tape is not None else (targets, None)
    attention = [r["a"] for r in records]
    result = {}
    if tape is not None:
        b = tf.shape(images)[0]
        site = records[plan.block]["x" if plan.site == "input" else "n1"]
        grads = tape.gradient(y, attention + [site], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        gradients, site_grad = grads[:-1], grads[-1]
        if "grad_rollout" in plan.methods:
            joint = rules.grad_rollout(attention, gradients, plan.index, discard_ratio=plan.grad_discard_ratio,
                                       protect=plan.protect)
            result["grad_rollout"] = rules.row_over_patches(joint, plan.index, plan.prefix, plan.grid)
        if "gae" in plan.methods:
            result["gae"] = rules.row_over_patches(rules.gae(attention, gradients), plan.index, plan.prefix,
                                                   plan.grid)
        if "gradcam_attention" in plan.methods:
            result["gradcam_attention"] = rules.gradcam_attention(attention[plan.block], gradients[plan.block],
                                                                  plan.index, plan.prefix, plan.grid)
        if "gradcam_tokens" in plan.methods:
            features = tf.reshape(site, (b, -1, site.shape[-1]))
            gradient = tf.reshape(site_grad, (b, -1, site.shape[-1]))
            result["gradcam_tokens"] = rules.gradcam_tokens(features, gradient, plan.prefix, plan.grid)
    if "attention" in plan.methods:
        result["attention"] = rules.attention_row(attention[plan.block], plan.index, plan.prefix, plan.grid)
    if "rollout" in plan.methods:
        joint = rules.rollout(attention[plan.start_block:], plan.index, head_fusion=plan.head_fusion,
                              discard_ratio=plan.discard_ratio, protect=plan.protect)
        result["rollout"] = rules.row_over_patches(joint, plan.index, plan.prefix, plan.grid)
    return logits, t, result


def exact_pass(model, images, targets, plan: Plan):
    """Graph code of "transformer_attribution": the model's blocks in float64, the float64 gradients of the target
    logits with respect to the used blocks' attention and their LRP relevance. Returns the map (B, gh, gw)."""
    import tensorflow as tf

    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(images)
        outputs, records, tokens = model.forward_intermediates(images, dtype="float64")
        t, y = _select(outputs["logits"], targets)
    used = [r["a"] for r in records[plan.start_block:]]
    gradients = tape.gradient(y, used, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    relevance = attention_relevance(model, records, tokens, t, plan.start_block)
    joint = rules.attribution_rollout(relevance[plan.start_block:], gradients)
    return rules.row_over_patches(joint, plan.index, plan.prefix, plan.grid)


@dataclass(frozen=True)
class PixelOptions:
    """Integrated gradients: `steps`; SmoothGrad: `samples`, `noise_level`, `times_input` (its noise comes in as an
    argument); both: `rows` = (image, step) rows per forward+backward (captum's `internal_batch_size`)."""
    method: str
    steps: int = 50
    samples: int = 50
    noise_level: float = 0.15
    times_input: bool = True
    rows: int = 16


def pixel_values(model, images, targets, baseline, noise, options: PixelOptions):
    """Graph code of integrated gradients or SmoothGrad on a batch: all (step, image) rows, `options.rows` per
    forward+backward, in a `tf.while_loop` (one chunk at a time, so memory is one chunk's), gradients summed per
    image in float64. images (B, H, W, 3); targets (B,) resolved; baseline broadcastable to images; noise
    (samples, H, W, 3). Returns per-pixel values (B, H, W, 3) float64: IG's (x - x') * mean gradient; SmoothGrad's
    mean gradient (times x with `times_input`), signed."""
    import tensorflow as tf

    x = tf.cast(images, tf.float32)
    b = tf.shape(x)[0]
    ig = options.method == "integrated_gradients"
    n_steps = options.steps if ig else options.samples
    base = tf.broadcast_to(tf.cast(baseline, tf.float32), tf.shape(x))
    flat = tf.reshape(x, (b, -1))
    sigma = options.noise_level * (tf.reduce_max(flat, axis=1) - tf.reduce_min(flat, axis=1))  # (B,)
    n_rows = n_steps * b

    def body(start, total):
        r = tf.range(start, tf.minimum(start + options.rows, n_rows))
        step, image = r // b, r % b  # step-major rows
        xi = tf.gather(x, image)
        if ig:
            alpha = tf.reshape(tf.cast(step + 1, tf.float32) / n_steps, (-1, 1, 1, 1))
            bi = tf.gather(base, image)
            inputs = bi + alpha * (xi - bi)
        else:
            inputs = xi + tf.reshape(tf.gather(sigma, image), (-1, 1, 1, 1)) * tf.gather(noise, step)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(inputs)
            logits = tf.cast(model(inputs, training=False, return_attention=False)[0], tf.float32)
            y = tf.reduce_sum(tf.gather(logits, tf.gather(targets, image), axis=1, batch_dims=1))
        grad = tf.cast(tape.gradient(y, inputs), tf.float64)
        summed = tf.ensure_shape(tf.math.unsorted_segment_sum(grad, image, b), total.shape)
        return start + options.rows, total + summed

    total0 = tf.zeros(tf.shape(x), tf.float64)
    _, total = tf.while_loop(lambda start, total: start < n_rows, body, (tf.constant(0), total0),
                             parallel_iterations=1)
    mean = total / n_steps
    x64 = tf.cast(x, tf.float64)
    if ig:
        return (x64 - tf.cast(base, tf.float64)) * mean
    return mean * x64 if options.times_input else mean


def pixel_map(model, images, targets, baseline, noise, options: PixelOptions):
    """The pixel method's map (B, gh, gw) float64: per-patch sums of IG's signed values, of SmoothGrad's absolute
    values."""
    import tensorflow as tf

    values = pixel_values(model, images, targets, baseline, noise, options)
    if options.method == "smoothgrad":
        values = tf.abs(values)
    return rules.pool_to_patches(values, model.config.patch_size)


def build_step(plan: Plan, pixel_methods):
    """`build(model)` of the compiled step `(images, targets, baseline, noise) -> (logits, targets, {method: map})`
    computing every method of `plan` plus the pixel methods (a tuple of `PixelOptions`) in one graph. The passes
    run one after another (control dependencies): independent, TensorFlow would run them at once and hold all
    their activations together (every method on ViT-S/14 at 224 px: 16 GB for 9 images)."""
    def build(model):
        import tensorflow as tf

        def step(images, targets, baseline, noise):
            attention_methods = [m for m in plan.methods if m in ATTENTION_METHODS]
            result = {}
            logits = None
            if attention_methods:
                logits, targets, result = attention_pass(model, images, targets, plan.only(attention_methods))
            specific = "transformer_attribution" in plan.methods or "attnlrp" in plan.methods or pixel_methods
            if specific and logits is None:
                logits = tf.cast(model(images, training=False, return_attention=False)[0], tf.float32)
            if specific:
                targets, _ = _select(logits, targets)

            def after(previous, make):
                with tf.control_dependencies(list(previous.values())):
                    return make()

            if "transformer_attribution" in plan.methods:
                result["transformer_attribution"] = after(result, lambda: exact_pass(
                    model, images, targets, plan.only(["transformer_attribution"])))
            if "attnlrp" in plan.methods:
                result["attnlrp"] = after(result, lambda: attnlrp.relevance_map(model, images, targets, plan.rule))
            for options in pixel_methods:
                result[options.method] = after(result, lambda o=options: pixel_map(model, images, targets, baseline,
                                                                                  noise, o))
            return logits, targets, result
        return step
    return build


def run_step(model, plan: Plan, pixel_methods, images, targets, baseline, noise, strategy=None):
    """Run (or, the first time for this model, plan and size, trace) the compiled step; with a strategy, per replica
    on a distributed batch, the results gathered in batch order. Returns tensors."""
    size = tuple(images.shape[1:3]) if strategy is None else None
    fn = compiled(model, f"explain:step{size}:{plan!r}:{pixel_methods!r}", build_step(plan, pixel_methods))
    if strategy is None:
        return fn(images, targets, baseline, noise)
    logits, t, maps = strategy.run(fn, args=(images, targets, baseline, noise))
    # Replicas hold consecutive slices of the batch: gathering along axis 0 restores the batch order.
    gather = lambda v: strategy.gather(v, axis=0)  # noqa: E731
    return gather(logits), gather(t), {k: gather(v) for k, v in maps.items()}


def _build_pixel_values(options: PixelOptions):
    def build(model):
        def fn(images, targets, baseline, noise):
            return pixel_values(model, images, targets, baseline, noise, options)
        return fn
    return build


def run_pixel_values(model, images, targets, baseline, noise, options: PixelOptions):
    """Per-pixel values of one pixel method (`pixel_values`), compiled per (model, options, size)."""
    size = tuple(images.shape[1:3])
    return compiled(model, f"explain:pixels{size}:{options!r}", _build_pixel_values(options))(
        images, targets, baseline, noise)


def _build_attention_gradients(model):
    import tensorflow as tf

    def fn(images, targets):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(images)
            logits, attention = model(images, training=False, return_attention=True)
            logits = tf.cast(logits, tf.float32)
            t, y = _select(logits, targets)
        maps = [attention[f"transformer_block_{i}_att"] for i in range(model.config.depth)]
        return logits, t, maps, tape.gradient(y, maps, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return fn


def attention_gradients_pass(model, images, targets):
    """(logits, targets, [A_l], [dA_l]) tensors of every block (the raw arrays `attention_gradients` returns)."""
    return compiled(model, "explain:attention_gradients", _build_attention_gradients)(images, targets)


def _build_token_gradients(block: int, site: str):
    def build(model):
        import tensorflow as tf

        def fn(images, targets):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(images)
                outputs, records, _ = model.forward_intermediates(images)
                logits = tf.cast(outputs["logits"], tf.float32)
                t, y = _select(logits, targets)
            feature = records[block]["x" if site == "input" else "n1"]
            grad = tape.gradient(y, feature, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            b = tf.shape(images)[0]
            shape = (b, -1, feature.shape[-1])
            return t, tf.cast(tf.reshape(feature, shape), tf.float32), tf.cast(tf.reshape(grad, shape), tf.float32)
        return fn
    return build


def token_gradients_pass(model, images, targets, block: int, site: str):
    """(targets, features (B, T, D), gradient (B, T, D)) tensors at `site` of non-negative `block`."""
    return compiled(model, f"explain:token_gradients:{block}:{site}", _build_token_gradients(block, site))(
        images, targets)


def to_host(result: Dict[str, object]):
    """{name: tensor} -> {name: float64 NumPy array}."""
    import numpy as np

    return {k: np.asarray(v, np.float64) for k, v in result.items()}
