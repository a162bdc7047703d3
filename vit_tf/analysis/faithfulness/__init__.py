"""Faithfulness of explanation maps: does removing what a map calls relevant change the prediction?

Every test takes maps at patch resolution (B, gh, gw), as `vit_tf.explain` returns them, and works on a batch;
`CurveMeans` accumulates results over a stream of batches.

Pixel removal (`removal="pixels"`) paints pixels of the model input; the map reaches pixels by `upsample`:
"nearest" repeats each patch's value over its p x p block (the pixels of a patch leave together, patches in map
order, ties broken by patch index, pixels of a patch in row-major order), "bilinear" is Chefer et al.'s
`interpolate(scale_factor=p, mode="bilinear")` (ties by pixel index). Removed pixels take `fill`:
    "zero":  0 in model-input space, i.e. the normalisation mean colour (zero after normalisation);
    a number or 3 numbers: that value per channel in model-input space (`black_fill(recipe)` is Chefer et al.'s
             choice: pixels set to 0 before normalisation, i.e. -mean/std after it);
    "blur":  the image blurred by RISE's kernel `gkern(11, 5)` (scipy's reflect-mode Gaussian of an impulse, nearly
             flat), applied as RISE does: a per-channel correlation with zero padding 5 (`gaussian_blur`);
    "road":  ROAD's noisy linear imputation (Rong et al. 2022): each removed pixel is the weighted mean of its 8
             neighbours (1/6 direct, 1/12 diagonal; a sparse linear system), plus N(0, 0.01^2) noise.
Token removal (`removal="tokens"`) is the ViT-aware variant: removed patches are dropped from the token sequence
(`forward_token_subset`); prefix tokens always stay, position embeddings stay with their patches.

Tests:
    perturbation_curves  Chefer, Gur & Wolf (CVPR 2021) positive / negative perturbation: remove the top
        ("positive") or bottom ("negative") 10%, ..., 90% of pixels (int(H * W * f) pixels, as their
        pertubation_eval_from_hdf5.py) or of patch tokens (int(N * f)); top-1 accuracy against the labels at each
        step, step 0 the unperturbed input. `perturbation_auc` integrates it.
    insertion_deletion  Petsiuk, Das & Saenko (BMVC 2018, RISE): the target's softmax probability while pixels
        (or tokens) are deleted, most relevant first, towards a substrate ("zero" by default), or inserted into
        the substrate ("blur" by default); `rise_auc`.
    road  Rong et al. (ICML 2022): `perturbation_curves` with noisy linear imputation; MoRF = "positive",
        LeRF = "negative".
    saco  Wu et al. (CVPR 2024): patches ranked by the map, split into K equal groups; each group removed alone;
        pairwise agreement of salience differences with probability drops, weighted by the salience difference.
Class indices (labels, targets) must lie in 0..classes - 1: -1 is refused, not read as the last class.

Cost: the steps are batched. Every (image, step) variant of a test is stacked and run through one compiled forward
in chunks of `batch_size` images (captum's `internal_batch_size`), the perturbed inputs built in the graph
(`forwards`); a test runs exactly the forward passes it needs, reported as "forward_images" in its result (e.g.
B * (n + 1) for insertion/deletion with n steps). With token removal the variants of a call share one sequence
length. `strategy` (a `tf.distribute.Strategy`) splits every call over its replicas.

AUC conventions (tested on hand-computed curves):
    perturbation_auc(accuracy_percent, fractions) = trapezoid rule over the removed fraction x in
        [0, 0.1, ..., 0.9] including x = 0 (the unperturbed accuracy), y in percent: 90 for a curve at 100%, 0 for
        one at 0%. (Chefer et al. report "AUC for erasing 10%-90%"; whether their x-axis includes the unperturbed
        point is not in their code; this one does.)
    rise_auc(scores) = (sum(scores) - (scores[0] + scores[-1]) / 2) / (n - 1): the trapezoid over a [0, 1] axis of
        n equally spaced steps, RISE's `auc`.
"""

from .forwards import DEFAULT_BATCH_SIZE, Forwards, forward_logits, forward_token_subset, on_strategy, softmax
from .metrics import REMOVALS, check_classes, insertion_deletion, num_classes, perturbation_curves, road, saco
from .scores import FRACTIONS, CurveMeans, perturbation_auc, rise_auc, saco_coefficient, trapezoid
from .substrates import (FILLS, ROAD_NOISE, UPSAMPLING, black_fill, gaussian_blur, noisy_linear_impute, patch_order,
                         pixel_order, removal_ranks, rise_kernel, substrate)

__all__ = [
    "DEFAULT_BATCH_SIZE", "FILLS", "FRACTIONS", "REMOVALS", "ROAD_NOISE", "UPSAMPLING", "CurveMeans", "Forwards",
    "black_fill", "check_classes", "forward_logits", "forward_token_subset", "gaussian_blur", "insertion_deletion",
    "noisy_linear_impute", "num_classes", "on_strategy", "patch_order", "perturbation_auc", "perturbation_curves",
    "pixel_order", "removal_ranks", "rise_auc", "rise_kernel", "road", "saco", "saco_coefficient", "softmax",
    "substrate", "trapezoid",
]
