"""Sanity checks for explanation maps (Adebayo et al., NeurIPS 2018, "Sanity Checks for Saliency Maps"; official
code: github.com/adebayoj/sanity_checks_saliency): does a map change when what the model learned is destroyed?

Model randomisation re-initialises parts of the model with its own initialisers and compares each map with the map
of the same image and class on the trained model:
    cascading: from the top down, cumulatively, as in the paper's Fig. 2: the classifier first ("head": the final
        norm, pre-logits and classifier), then the blocks from the last to the first, one at a time, then the
        embeddings (patch projection, prefix tokens, position embedding); after the last step nothing is left;
    independent: one of the same groups at a time, the rest original.
Data randomisation ("data"): the maps of a model trained on shuffled labels (same architecture and training code,
`shuffled_model`) against those of the real model, for the same classes.

Re-initialisation: a fresh model of the same configuration is built with Python's `random` seeded by `seed` (Keras
draws each initialiser's seed from it when the layer is made; the caller's random state is restored), so the new
values come from the model's own initialisers: Glorot-uniform kernels, zero biases, LayerNorm (1, 0), truncated
normal(0.02) prefix tokens and position embedding, LayerScale at its `init_values` (1e-5 for DINOv2: a
re-initialised DINOv2 block adds almost nothing to the residual stream, as at the start of training). Everything
runs on a copy; the caller's model is never touched. The copy keeps its identity across steps (the weights are
assigned), so every step reuses one compiled explanation pass.

Measures, per step and image, between the original map a and the randomised map b (both (gh, gw)):
    spearman: Spearman rank correlation of a and b (average ranks for ties);
    spearman_abs: the same on |a| and |b| (the paper's "absolute value" variant, blind to sign flips);
    ssim: structural similarity (Wang et al. 2004) of the maps min-max scaled to [0, 1] (`ssim`).
A map that is constant (e.g. Grad-CAM's ReLU zeroing every patch) has no ranks: its Spearman values are NaN.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np

from ._arrays import check_finite, to_numpy
from .heatmaps import normalize_map

MODES = ("cascading", "independent", "data")
MEASURES = ("spearman", "spearman_abs", "ssim")
SSIM_K = (0.01, 0.03)  # Wang et al. 2004: C1 = (K1 L)^2, C2 = (K2 L)^2 with dynamic range L = 1


# -- measures ---------------------------------------------------------------------------------------------------------
def _pair(a, b) -> Tuple[np.ndarray, np.ndarray]:
    a = check_finite("maps", to_numpy(a, np.float64))
    b = check_finite("maps", to_numpy(b, np.float64))
    if a.shape != b.shape or a.ndim != 3:
        raise ValueError(f"maps must be two (B, h, w) arrays of one shape, got {a.shape} and {b.shape}")
    return a, b


def spearman(a, b) -> np.ndarray:
    """Spearman rank correlation of each pair of maps over their pixels.

    Args:
        a, b: (B, h, w) maps.
    Returns:
        (B,) float64 in [-1, 1]: the Pearson correlation of the average ranks (ties share their mean rank, as
        `scipy.stats.spearmanr`); NaN where either map is constant.
    """
    from scipy.stats import rankdata

    a, b = _pair(a, b)
    ra = rankdata(a.reshape(len(a), -1), axis=1)
    rb = rankdata(b.reshape(len(b), -1), axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    norm = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (ra * rb).sum(1) / norm
    return np.where(norm > 0, np.clip(out, -1.0, 1.0), np.nan)


def ssim_image(a, b, sigma: float = 1.5, truncate: float = 3.5) -> np.ndarray:
    """The SSIM index at every position (Wang et al. 2004, Eq. 13) of maps already in [0, 1].

    Local statistics are weighted by a Gaussian window (standard deviation `sigma` pixels, cut at `truncate`
    sigmas: 11 x 11 taps for 1.5, as Wang et al.), borders reflected; population (co)variances; C1 = (0.01)^2,
    C2 = (0.03)^2 for the dynamic range 1. The same numbers as `skimage.metrics.structural_similarity(a, b,
    gaussian_weights=True, sigma=sigma, use_sample_covariance=False, data_range=1, full=True)[1]` per map.

    Args:
        a, b: (B, h, w) in [0, 1].
    Returns:
        (B, h, w) float64.
    """
    from scipy.ndimage import gaussian_filter

    a, b = _pair(a, b)

    def local(x):  # Gaussian-weighted mean over each map's pixels, never across maps
        return gaussian_filter(x, sigma=(0.0, sigma, sigma), truncate=truncate, mode="reflect")

    mu_a, mu_b = local(a), local(b)
    var_a = local(a * a) - mu_a * mu_a
    var_b = local(b * b) - mu_b * mu_b
    cov = local(a * b) - mu_a * mu_b
    c1, c2 = SSIM_K[0] ** 2, SSIM_K[1] ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))


def ssim(a, b, sigma: float = 1.5, truncate: float = 3.5, crop: bool = False) -> np.ndarray:
    """Structural similarity of each pair of maps, after min-max scaling each map to [0, 1] (a constant map
    becomes 0; SSIM compares patterns, not scales).

    Args:
        a, b: (B, h, w) maps.
        sigma, truncate: the Gaussian window (see `ssim_image`).
        crop: average only over positions whose window lies inside the map (the border of `radius = int(truncate *
            sigma + 0.5)` pixels left out, as scikit-image's mean SSIM); default False: every position, borders
            reflected, because patch maps are small (a 16 x 16 map keeps 6 x 6 positions after the crop).
    Returns:
        (B,) float64 in [-1, 1]; 1 for identical maps.
    """
    a, b = _pair(a, b)
    s = ssim_image(normalize_map(a), normalize_map(b), sigma, truncate)
    if crop:
        r = int(truncate * sigma + 0.5)
        if min(s.shape[1:]) <= 2 * r:
            raise ValueError(f"crop=True needs maps larger than {2 * r + 1} pixels per side (the window), got "
                             f"{s.shape[1:]}")
        s = s[:, r:-r, r:-r]
    return s.mean(axis=(1, 2))


def compare_maps(original, randomised) -> Dict[str, np.ndarray]:
    """{"spearman", "spearman_abs", "ssim"} of each pair of maps (B, h, w) -> (B,) each (see the module
    docstring)."""
    a, b = _pair(original, randomised)
    return {"spearman": spearman(a, b), "spearman_abs": spearman(np.abs(a), np.abs(b)), "ssim": ssim(a, b)}


# -- randomisation -------------------------------------------------------------------------------------------------
def randomisation_groups(model) -> List[Tuple[str, list]]:
    """The model's variables in the cascade's order, top down: ("head", final norm + pre-logits + classifier(s)
    and any other weight after the blocks), ("block_{L-1}", ...), ..., ("block_0", ...), ("embeddings", patch
    projection + prefix tokens + position embedding). Every variable of the model is in exactly one group."""
    embeddings = [v for v in (model.cls_token, getattr(model, "dist_token", None), getattr(model, "reg_token", None),
                              model.pos_embed) if v is not None] + list(model.patch_embed.weights)
    blocks = [list(block.weights) for block in model.blocks]
    taken = {id(v) for v in embeddings} | {id(v) for vs in blocks for v in vs}
    head = [v for v in model.weights if id(v) not in taken]
    return ([("head", head)] + [(f"block_{i}", blocks[i]) for i in reversed(range(len(blocks)))]
            + [("embeddings", embeddings)])


def reinitialised_model(model, seed: int = 0):
    """A new model of `model`'s configuration whose weights come from its own initialisers, seeded: Keras draws
    each initialiser's seed from Python's `random` as the layer is built, so that generator is seeded with
    "vit_tf.sanity:{seed}" for the build and restored afterwards (the caller's random state does not move)."""
    from ..model import VisionTransformer

    state = random.getstate()
    # A string seed of its own: `keras.utils.set_random_seed(seed)` (how random models are usually made) seeds
    # Python's generator with the bare integer, and the "re-initialised" weights would be that model's own.
    random.seed(f"vit_tf.sanity:{int(seed)}")
    try:
        return VisionTransformer.from_config(model.get_config())
    finally:
        random.setstate(state)


def _copy(model):
    from ..model import VisionTransformer

    work = VisionTransformer.from_config(model.get_config())
    work.set_weights(model.get_weights())
    return work


def steps_of(mode: str, depth: int) -> Tuple[Tuple[str, Tuple[int, ...]], ...]:
    """(step name, indices of the randomised groups of `randomisation_groups`) for each step of `mode`; cascading
    steps are named by the group they add ("head", "block_11", ..., "embeddings")."""
    names = ["head"] + [f"block_{i}" for i in reversed(range(depth))] + ["embeddings"]
    if mode == "cascading":
        return tuple((name, tuple(range(k + 1))) for k, name in enumerate(names))
    if mode == "independent":
        return tuple((name, (k,)) for k, name in enumerate(names))
    if mode == "data":
        return (("shuffled_labels", ()),)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


@dataclasses.dataclass(frozen=True)
class SanityResult:
    """One method's sanity check.

    Attributes:
        method: the method's name.
        mode: "cascading", "independent" or "data".
        steps: step names, S of them (cascading: what the step adds to the randomised part).
        spearman, spearman_abs, ssim: (S, B) float64, each step's map against the original (NaN: constant map).
        original: (B, gh, gw) the maps of the trained model.
        randomised: (S, B, gh, gw) the maps after each step.
        targets: (B,) int64 the explained classes (the same at every step).
    """

    method: str
    mode: str
    steps: Tuple[str, ...]
    spearman: np.ndarray
    spearman_abs: np.ndarray
    ssim: np.ndarray
    original: np.ndarray
    randomised: np.ndarray
    targets: np.ndarray

    def means(self) -> Dict[str, np.ndarray]:
        """{measure: (S,) mean over the images}, NaN images left out (all NaN: NaN)."""
        out = {}
        for name in MEASURES:
            values = getattr(self, name)
            counts = np.sum(~np.isnan(values), axis=1)
            out[name] = np.where(counts > 0, np.nansum(values, axis=1) / np.maximum(counts, 1), np.nan)
        return out


MapFunction = Callable[[object, np.ndarray, np.ndarray], np.ndarray]


def _method_table(method) -> Tuple[Dict[str, object], bool]:
    """method (a name, a callable, a list of them, or {name: name or callable}) -> ({name: entry}, single?)."""
    from .explanations import METHODS

    single = isinstance(method, str) or callable(method)
    items = [method] if single else method
    table = dict(items) if isinstance(items, Mapping) else {
        (m if isinstance(m, str) else getattr(m, "__name__", repr(m))): m for m in items}
    if not table:
        raise ValueError("no method given")
    for name, entry in table.items():
        if isinstance(entry, str) and entry not in METHODS:
            raise ValueError(f"unknown method {entry!r}; choose from {', '.join(METHODS)} or pass a function "
                             f"f(model, images, targets) -> (B, gh, gw)")
        if not isinstance(entry, str) and not callable(entry):
            raise ValueError(f"method {name!r} must be a method name or a function, got {type(entry).__name__}")
    return table, single


class SanityChecker:
    """Sanity checks of several methods on one model: the working copy, the re-initialised weights and one
    compiled explanation pass for all the named methods are made once, then reused for every call and mode.

    Args:
        model: a `VisionTransformer` with a classifier (left untouched).
        methods: a method name of `vit_tf.analysis.EXPLAIN_METHODS`, a function `f(model, images, targets) ->
            (B, gh, gw)` (a baseline computed outside `explain`; named by its `__name__`), a list of them, or a dict
            {name: name or function}.
        seed: seed of the re-initialisation (see `reinitialised_model`).
        shuffled_model: for mode "data": a model of the same configuration trained on shuffled labels.
        progress: True for a progress bar over the steps (tqdm), or a function called with each step's name when
            it is done.
        batch_size: images per explanation pass (None: all at once); memory grows with it (transformer
            attribution runs in float64).
        options: explanation options, as `vit_tf.explain` takes them (`steps`, `samples`, `internal_batch_size`...).

    Call: `checker(images, target=None, mode="cascading")`: images (B, H, W, 3) preprocessed; target None (each
    image's top-1 class on the trained model), a class or one per image, fixed for every step.
    Returns {name: `SanityResult`}.
    """

    def __init__(self, model, methods, *, seed: int = 0, shuffled_model=None, progress=False, batch_size=None,
                 **options):
        from .explanations import Explainer

        if not model.config.num_classes:
            raise ValueError("sanity checks compare class explanations; this model has no classifier "
                             "(num_classes 0)")
        self.table, _ = _method_table(methods)
        named = [entry for entry in self.table.values() if isinstance(entry, str)]
        self.model = _copy(model)
        self.explainer = Explainer(self.model, list(dict.fromkeys(named)), **options) if named else None
        self.groups = randomisation_groups(self.model)
        self.original = [[v.numpy() for v in vs] for _, vs in self.groups]
        self.seed, self.progress = int(seed), progress
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = None if batch_size is None else int(batch_size)
        self._values = {}
        self.shuffled = None
        if shuffled_model is not None:
            weights, reference = shuffled_model.get_weights(), model.get_weights()
            if model.get_config()["config"] != shuffled_model.get_config()["config"] or \
                    [w.shape for w in weights] != [w.shape for w in reference]:
                raise ValueError("shuffled_model must have the model's configuration (same architecture and classes)")
            self.shuffled = shuffled_model  # read, never written

    def _weights(self, source):
        """Per group, the values of `source`: "fresh" (re-initialised) or "shuffled"; made once."""
        if source not in self._values:
            model = reinitialised_model(self.model, self.seed) if source == "fresh" else self.shuffled
            self._values[source] = [[v.numpy() for v in vs] for _, vs in randomisation_groups(model)]
        return self._values[source]

    def _assign(self, randomised: Sequence[int], source: str):
        """Groups in `randomised` (every group for "shuffled") take `source`'s values, the others the original."""
        new = self._weights(source) if randomised or source == "shuffled" else None
        for k, (_, variables) in enumerate(self.groups):
            values = new[k] if (k in randomised or source == "shuffled") else self.original[k]
            for variable, value in zip(variables, values):
                variable.assign(value)

    def _maps(self, images, targets) -> Dict[str, np.ndarray]:
        named = {}
        if self.explainer is not None:
            step = self.batch_size or len(images)
            parts = [self.explainer(images[s:s + step], targets[s:s + step])[0] for s in range(0, len(images), step)]
            named = {m: np.concatenate([part[m] for part in parts]) for m in parts[0]}
        return {name: named[entry] if isinstance(entry, str) else check_finite(
                    f"maps of {name}", to_numpy(entry(self.model, images, targets), np.float64))
                for name, entry in self.table.items()}

    def __call__(self, images, target=None, mode: str = "cascading") -> Dict[str, SanityResult]:
        from .explanations.inputs import check_targets
        from .faithfulness import forward_logits

        steps = steps_of(mode, len(self.model.blocks))
        if mode == "data" and self.shuffled is None:
            raise ValueError("mode 'data' needs shuffled_model (a model trained on shuffled labels)")
        x = np.asarray(to_numpy(images), np.float32)
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"images must be (B, H, W, 3), got shape {x.shape}")
        self._assign((), "original")
        if target is None:  # the trained model's top-1 classes, explained at every step
            targets = np.argmax(forward_logits(self.model, x), axis=-1).astype(np.int64)
        else:
            targets = check_targets(target, len(x), self.model.config.num_classes)
        original = self._maps(x, targets)
        per_step = []
        bar = None
        if self.progress is True:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(steps), desc=f"sanity ({mode})", unit="step")
        try:
            for name, randomised in steps:
                self._assign(randomised, "shuffled" if mode == "data" else "fresh")
                per_step.append(self._maps(x, targets))
                if bar is not None:
                    bar.update(1)
                elif callable(self.progress):
                    self.progress(name)
        finally:
            if bar is not None:
                bar.close()  # the working copy goes back to the trained weights whatever happens
            self._assign((), "original")
        names = tuple(name for name, _ in steps)
        results = {}
        for name in self.table:
            scores = [compare_maps(original[name], maps[name]) for maps in per_step]
            results[name] = SanityResult(
                method=name, mode=mode, steps=names, **{m: np.stack([s[m] for s in scores]) for m in MEASURES},
                original=original[name], randomised=np.stack([maps[name] for maps in per_step]), targets=targets)
        return results


def sanity_checks(model, images, method: Union[str, MapFunction, Sequence, Mapping], target=None,
                  mode: str = "cascading", *, seed: int = 0, shuffled_model=None, progress: bool = False,
                  **options) -> Union[SanityResult, Dict[str, SanityResult]]:
    """Adebayo et al.'s model- and data-randomisation tests of explanation maps on a batch.

    Args:
        model: a `VisionTransformer` with a classifier; never modified (the checks run on a copy).
        images: (B, H, W, 3) preprocessed.
        method: a method of `vit_tf.analysis.EXPLAIN_METHODS`, a function `f(model, images, targets) -> (B, gh,
            gw)`, or a list (or {name: entry} dict) of them: named methods share one compiled pass per step.
        target: None (each image's top-1 class on the trained model), a class, or one class per image; the same
            classes are explained at every step.
        mode: "cascading" (head, then blocks from the last down, then the embeddings; cumulative), "independent"
            (one group at a time) or "data" (the maps of `shuffled_model`).
        seed: seed of the re-initialisation.
        shuffled_model: for mode "data", the same architecture trained on shuffled labels.
        progress: a progress bar over the steps.
        options: explanation options as `vit_tf.explain` takes them.
    Returns:
        a `SanityResult` (spearman, spearman_abs, ssim: (S, B); step names; the original and randomised maps); for
        a list of methods, {name: SanityResult}.

    Example:
        >>> import numpy as np, vit_tf
        >>> model = vit_tf.create_model("vit_tiny_patch16_224", depth=2, img_size=32, patch_size=8, num_classes=5)
        >>> r = vit_tf.analysis.sanity_checks(model, np.random.rand(2, 32, 32, 3), "gae", target=1)
        >>> r.steps, r.spearman.shape
        (('head', 'block_1', 'block_0', 'embeddings'), (4, 2))
    """
    table, single = _method_table(method)
    results = SanityChecker(model, table, seed=seed, shuffled_model=shuffled_model, progress=progress,
                            **options)(images, target, mode)
    return next(iter(results.values())) if single else results


__all__ = ["MEASURES", "MODES", "SanityChecker", "SanityResult", "compare_maps", "randomisation_groups",
           "reinitialised_model", "sanity_checks", "spearman", "ssim", "ssim_image", "steps_of"]
