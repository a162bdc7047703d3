"""Conservative LRP for transformers as gradient x input of the model's own forward pass with modified gradients:
AttnLRP (Achtibat et al., ICML 2024, "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for Transformers";
rachtibat/LRP-eXplains-Transformers, `lxt.efficient`) and, as `rule="cp"`, CP-LRP (Ali et al., ICML 2022, "XAI for
Transformers: Better Explanations through Conservative Propagation").

The rules are the layers' own, switched on while the pass is traced (`vit_tf.layers.relevance_rules`):
    LayerNorm: 1 / std held constant (Ali et al.'s LN rule; AttnLRP Proposition 3.4), so the norm is linear in x.
    GELU (and tanh of a `pre_logits` layer): the identity rule, gradient f(x) / x (AttnLRP eq. 9): relevance passes
        unchanged. SwiGLU: the identity rule on SiLU (f(x) / x = sigmoid(x)), the uniform rule on the gate product.
    Attention, "attnlrp": the uniform rule (AttnLRP eq. 7) on Q K^T and on A V — half the relevance to each factor —
        and the softmax's own gradient. With relevance R_A = A * g_A at its output, gradient x input at the softmax's
        input x gives x * (R_A - A * sum_j R_A,j) per row, AttnLRP's softmax rule (Proposition 3.1: a Taylor
        decomposition at x whose bias term is not distributed). "cp": the attention probabilities are constant, so
        the values receive all of the relevance and Q and K none (Ali et al.'s AH rule).
    Dense layers, the patch-embedding convolution, residual sums, means and the heads' linear maps: plain gradient
        x input, the epsilon rule with epsilon -> 0 (AttnLRP eq. 8). As the paper states it, the denominator holds the
        bias, and a bias's share b * R / z is not passed on: it is absorbed.

Conservation: the logit equals the relevance of the pixels, plus what the bias-like terms absorb (sum of b * g over
the Dense and convolution biases, LayerNorm betas, position embeddings and prefix tokens, g the modified gradient),
plus, for "attnlrp", each softmax's bias term (the relevance at its output minus that at its input, which the Q K^T
uniform rule passes on to Q and K exactly). With "cp" and no biases the pixels receive the whole logit.
tests/test_attnlrp.py checks both identities to float32 rounding on every head type.

The map: relevance per patch = sum over the patch's pixels and channels of x * modified gradient (signed), as LXT's
ViT example computes it at the pixels; the prefix tokens' relevance is the part absorbed by the class token and
position embeddings. Dense layers use the epsilon rule, not the gamma rule that LXT's ViT example tunes.
The whole pass runs in float32 (a bfloat16 / float16 model is computed in float32 from its weights).
"""

from __future__ import annotations

RULES = ("attnlrp", "cp")


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    return rule


def pixel_relevance(model, images, targets, rule: str = "attnlrp"):
    """Graph code: relevance of every pixel channel, x * d logit / dx under the rules. images (B, H, W, 3); targets
    (B,) resolved class indices. Returns (B, H, W, 3) float32."""
    import tensorflow as tf

    from ...layers import relevance_rules

    x = tf.cast(images, tf.float32)
    with relevance_rules(check_rule(rule)):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            outputs, _, _ = model.forward_intermediates(x, dtype="float32")
            logits = tf.cast(outputs["logits"], tf.float32)
            y = tf.reduce_sum(tf.gather(logits, targets, axis=1, batch_dims=1))
        grad = tape.gradient(y, x)
    return x * grad


def relevance_map(model, images, targets, rule: str = "attnlrp"):
    """Graph code of "attnlrp": `pixel_relevance` summed over each patch's pixels and channels, (B, gh, gw) float64."""
    from .rules import pool_to_patches

    return pool_to_patches(pixel_relevance(model, images, targets, rule), model.config.patch_size)
