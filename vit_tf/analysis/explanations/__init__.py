"""Class-specific explanations of a Vision Transformer's prediction, as maps over the patch grid.

One entry point, `explain(model, images, method or [methods], target=None, **options)` (`api`), for every method in
`METHODS`, computed by compiled passes (`passes`) from the model's own forward pass
(`VisionTransformer.forward_intermediates`): the attention-based rules (`rules`), LRP (`lrp`) and the pixel-gradient
methods (`pixels`). `arrays` applies the same rules to attention and gradients from anywhere.
"""

from .api import (CLASS_AGNOSTIC, METHODS, OPTIONS, PIXEL_METHODS, ROLLOUT_TYPE, Explainer, attention_gradients,
                  explain, token_gradients)
from .inputs import check_targets, resolve_targets
from .arrays import (attribution_rollout_map, gae_map, grad_rollout_map, grad_rollout_matrix, gradcam_attention_map,
                     gradcam_tokens_map, pool_to_patches)
from .pixels import integrated_gradients, smoothgrad
from .rules import PROTECT

__all__ = [
    "CLASS_AGNOSTIC", "Explainer", "METHODS", "OPTIONS", "PIXEL_METHODS", "PROTECT", "ROLLOUT_TYPE", "attention_gradients",
    "attribution_rollout_map", "check_targets", "explain", "gae_map", "grad_rollout_map", "grad_rollout_matrix",
    "gradcam_attention_map", "gradcam_tokens_map", "integrated_gradients", "pool_to_patches", "resolve_targets",
    "smoothgrad", "token_gradients",
]
