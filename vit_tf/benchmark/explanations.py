"""Every explanation method on a trained classifier whose evidence is known: localisation against the ground-truth
masks, faithfulness, and Adebayo et al.'s sanity checks, for each method of `vit_tf.analysis.EXPLAIN_METHODS` and two
baselines that ignore the model (a seeded random map and the Sobel edge map, `vit_tf.analysis.baselines`).

`run_benchmark(model, images, labels, masks, ...)` takes arrays (any trained `VisionTransformer`; the command line
gives it the composite classifier of `vit_tf.composites`) and returns a `BenchmarkResult` of per-image values;
`vit_tf.benchmark.summary` turns it into means with standard errors and 95 % intervals.

Every map explains the image's true class (`labels`): the masks are the evidence of that class. Per image:
    localisation (`vit_tf.analysis.localisation`): pointing_game (hit = 1), relevance_mass, relevance_rank,
        mask_auroc;
    faithfulness (`vit_tf.analysis.faithfulness`), pixels removed by the map (patch blocks, "nearest"):
        deletion_auc, insertion_auc: RISE's normalised AUC of the true class's probability, `deletion_steps` steps
            of equal whole-patch groups (deletion to black, Chefer et al.'s fill; insertion from RISE's blur);
        positive_perturbation_auc, negative_perturbation_auc: Chefer et al.'s test, top-1 correct (0 or 100) while
            10 %, ..., 90 % of the pixels are removed to black, most / least relevant first, trapezoid AUC with the
            unperturbed point (max 90);
        road_morf_auc, road_lerf_auc: ROAD's noisy linear imputation at `road_fractions`, the same AUC;
        saco: Wu et al.'s coefficient over `saco_groups` patch groups (removed to black);
    sanity (`vit_tf.analysis.sanity`), on the first `sanity_images` images: cascade_spearman, cascade_spearman_abs,
        cascade_ssim: the map after the full cascading randomisation against the trained model's map;
        data_spearman, data_spearman_abs, data_ssim: the map of a model trained on shuffled labels (when
        `shuffled_model` is given). The whole cascade (every step) is kept in `BenchmarkResult.sanity`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

LOCALISATION = ("pointing_game", "relevance_mass", "relevance_rank", "mask_auroc")
FAITHFULNESS = ("deletion_auc", "insertion_auc", "positive_perturbation_auc", "negative_perturbation_auc",
                "road_morf_auc", "road_lerf_auc", "saco")
SANITY = ("cascade_spearman", "cascade_spearman_abs", "cascade_ssim", "data_spearman", "data_spearman_abs",
          "data_ssim")
FAMILIES = {"localisation": LOCALISATION, "faithfulness": FAITHFULNESS, "sanity": SANITY}
# Which way is better: +1 higher, -1 lower. For the sanity correlations lower means the map depends more on what
# the model learned (a map that survives randomisation unchanged fails the check).
BETTER = {**{m: 1 for m in LOCALISATION}, "deletion_auc": -1, "insertion_auc": 1, "positive_perturbation_auc": -1,
          "negative_perturbation_auc": 1, "road_morf_auc": -1, "road_lerf_auc": 1, "saco": 1,
          **{m: -1 for m in SANITY}}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The benchmark's knobs (the command line's defaults are these).

    steps, samples: integrated gradients' Riemann steps and SmoothGrad's samples (the library's default is 50 each;
        8 keeps the benchmark in minutes on a CPU).
    internal_batch_size: (step, image) rows per forward+backward of those two methods.
    explain_batch_size: images per explanation pass (of the maps and of every sanity step); memory grows with it:
        every method at once on ViT-S/14 at 224 px peaked at 4.4 GB of RSS with 1 image per pass, 8.2 GB with 3
        (the maps of 9 images: 75 s and 67 s on 2 CPU cores).
    batch_size: images per forward call of the faithfulness tests' perturbed variants.
    deletion_steps: insertion/deletion steps (equal groups of whole patches; RISE used one patch per step).
    road_fractions: removed fractions of ROAD (each a sparse solve per image on the host).
    saco_groups: SaCo's K.
    sanity_images: the first N images get the sanity checks (0: none).
    seed: the random baseline, the re-initialisation of the sanity checks and ROAD's noise.
    """

    steps: int = 8
    samples: int = 8
    internal_batch_size: int = 16
    explain_batch_size: int = 1
    batch_size: int = 64
    deletion_steps: int = 16
    road_fractions: Tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9)
    saco_groups: int = 10
    sanity_images: int = 3
    seed: int = 0

    def options(self, methods: Sequence[str]) -> dict:
        """Explanation options for `vit_tf.explain` / `Explainer` with `methods` (those that one of them takes)."""
        from ..analysis.explanations import OPTIONS

        accepted = set().union(*(OPTIONS[m] for m in methods)) if methods else set()
        every = {"steps": self.steps, "samples": self.samples, "internal_batch_size": self.internal_batch_size}
        return {k: v for k, v in every.items() if k in accepted}


@dataclasses.dataclass
class BenchmarkResult:
    """Attributes:
        methods: the map sources in order (methods, then baselines).
        scores: {source: {metric: (B,) float64}} (sanity metrics over the first `sanity_images` images; NaN where
            a metric is undefined, e.g. a constant map's rank correlation).
        maps: {source: (B, gh, gw) float64}, the maps that were scored.
        sanity: {"cascading" | "data": {source: `vit_tf.analysis.sanity.SanityResult`}}.
        labels, predicted: (B,) int64 true and top-1 classes; accuracy: top-1 accuracy in [0, 1].
        settings: the `Settings`; seconds: wall time per stage.
    """

    methods: Tuple[str, ...]
    scores: Dict[str, Dict[str, np.ndarray]]
    maps: Dict[str, np.ndarray]
    sanity: Dict[str, dict]
    labels: np.ndarray
    predicted: np.ndarray
    accuracy: float
    settings: Settings
    seconds: Dict[str, float]


def localisation_scores(maps, masks) -> Dict[str, np.ndarray]:
    """The four localisation metrics of maps (B, gh, gw) against masks (B, H, W) -> {metric: (B,) float64}."""
    from ..analysis import localisation as L

    return {"pointing_game": L.pointing_game(maps, masks).astype(np.float64),
            "relevance_mass": L.relevance_mass_accuracy(maps, masks),
            "relevance_rank": L.relevance_rank_accuracy(maps, masks),
            "mask_auroc": L.mask_auroc(maps, masks)}


def _per_image_auc(correct, fractions) -> np.ndarray:
    from ..analysis.faithfulness import perturbation_auc

    return np.asarray([perturbation_auc(100.0 * row, fractions) for row in np.asarray(correct, np.float64)])


def faithfulness_scores(model, images, maps, labels, settings: Settings = Settings(), fill=None,
                        on_test=None) -> Dict[str, np.ndarray]:
    """Every faithfulness test of maps (B, gh, gw) on images (B, H, W, 3) for the classes `labels` (B,) ->
    {metric: (B,) float64} (see the module docstring). `fill`: the removed pixels' value (default: black in the
    model's input space, `black_fill(model.recipe)`). `on_test(name)` is called after each test."""
    from ..analysis import faithfulness as F

    fill = F.black_fill(model.recipe) if fill is None else fill
    tick = on_test or (lambda name: None)
    run = {"batch_size": settings.batch_size}
    p = model.config.patch_size
    patches = (images.shape[1] // p) * (images.shape[2] // p)
    step = p * p * math.ceil(patches / settings.deletion_steps)
    out = {}
    for game in ("deletion", "insertion"):
        r = F.insertion_deletion(model, images, maps, labels, mode=game, step=step,
                                 substrate=fill if game == "deletion" else "blur", **run)
        out[f"{game}_auc"] = r["auc"]
        tick(game)
    for mode in ("positive", "negative"):
        r = F.perturbation_curves(model, images, maps, labels, mode=mode, fill=fill, **run)
        out[f"{mode}_perturbation_auc"] = _per_image_auc(r["correct"], r["fractions"])
        tick(f"{mode} perturbation")
    for mode, name in (("positive", "morf"), ("negative", "lerf")):
        r = F.road(model, images, maps, labels, mode=mode, fractions=settings.road_fractions, seed=settings.seed,
                   **run)
        out[f"road_{name}_auc"] = _per_image_auc(r["correct"], r["fractions"])
        tick(f"ROAD {name.upper()}")
    out["saco"] = F.saco(model, images, maps, labels, groups=min(settings.saco_groups, patches), fill=fill,
                         **run)["saco"]
    tick("SaCo")
    return out


FAITHFULNESS_TESTS = 7  # calls of `on_test` per source in `faithfulness_scores`


def explanation_maps(model, images, labels, methods: Sequence[str], settings: Settings = Settings(),
                     on_batch=None) -> Dict[str, np.ndarray]:
    """{method: (B, gh, gw)} for the true classes, every method in one compiled pass per batch of
    `settings.explain_batch_size` images."""
    from ..analysis.explanations import Explainer

    explainer = Explainer(model, list(methods), **settings.options(methods))
    parts = []
    for start in range(0, len(images), settings.explain_batch_size):
        chunk = slice(start, start + settings.explain_batch_size)
        parts.append(explainer(images[chunk], labels[chunk])[0])
        if on_batch is not None:
            on_batch(len(images[chunk]))
    return {m: np.concatenate([part[m] for part in parts]) for m in methods}


def run_benchmark(model, images, labels, masks, methods: Optional[Sequence[str]] = None,
                  baselines: Sequence[str] = ("random", "sobel"), shuffled_model=None,
                  settings: Settings = Settings(), progress: bool = False) -> BenchmarkResult:
    """Localisation, faithfulness and sanity checks of every method and baseline on a labelled batch with masks.

    Args:
        model: a trained `VisionTransformer` classifier (never modified; the sanity checks run on a copy).
        images: (B, H, W, 3) preprocessed; labels: (B,) true classes; masks: (B, H, W) bool, the evidence.
        methods: names of `vit_tf.analysis.EXPLAIN_METHODS` (default: all).
        baselines: of `vit_tf.analysis.baselines.BASELINES`.
        shuffled_model: the same architecture trained on shuffled labels, for the data-randomisation check (None:
            the data_* metrics are NaN).
        settings: `Settings`.
        progress: one progress bar over the whole run (tqdm).
    Returns:
        `BenchmarkResult`.
    """
    from ..analysis import EXPLAIN_METHODS, baselines as B
    from ..analysis.faithfulness import check_classes, forward_logits
    from ..analysis.sanity import SanityChecker

    methods = list(EXPLAIN_METHODS if methods is None else methods)
    x = np.asarray(images, np.float32)
    k = np.asarray(masks, bool)
    if x.ndim != 4 or k.shape != x.shape[:3]:
        raise ValueError(f"images (B, H, W, 3) and masks (B, H, W) must match, got {x.shape} and {k.shape}")
    y = check_classes(labels, len(x), "labels", model.config.num_classes)
    sources = methods + [b for b in baselines]
    for name in baselines:
        B.map_function(name)  # an unknown baseline fails before any work
    n_sanity = min(settings.sanity_images, len(x))
    cascade_steps = len(model.blocks) + 2
    total = len(x) + len(sources) * (1 + FAITHFULNESS_TESTS) + (
        (cascade_steps + (1 if shuffled_model is not None else 0)) if n_sanity else 0)
    bar = _bar(progress, total)
    seconds, started = {}, time.perf_counter()

    bar.set_description("explanations")
    maps = explanation_maps(model, x, y, methods, settings, on_batch=bar.update) if methods else {}
    for name in baselines:
        maps[name] = B.map_function(name, settings.seed)(model, x, y)
    seconds["explanations"] = time.perf_counter() - started

    mark = time.perf_counter()
    scores = {}
    for name in sources:
        bar.set_description(f"{name}: localisation")
        scores[name] = localisation_scores(maps[name], k)
        bar.update(1)
        bar.set_description(f"{name}: faithfulness")
        scores[name].update(faithfulness_scores(model, x, maps[name], y, settings, on_test=lambda _: bar.update(1)))
    seconds["localisation_and_faithfulness"] = time.perf_counter() - mark

    mark = time.perf_counter()
    sanity = {}
    nan = np.full(n_sanity, np.nan)
    if n_sanity:
        table = {m: m for m in methods}
        table.update({b: B.map_function(b, settings.seed) for b in baselines})
        checker = SanityChecker(model, table, seed=settings.seed, shuffled_model=shuffled_model,
                                batch_size=settings.explain_batch_size,
                                progress=lambda step: (bar.set_description(f"sanity: {step}"), bar.update(1)),
                                **settings.options(methods))
        modes = ("cascading", "data") if shuffled_model is not None else ("cascading",)
        sanity = {mode: checker(x[:n_sanity], y[:n_sanity], mode) for mode in modes}
    for name in sources:
        for mode, prefix in (("cascading", "cascade"), ("data", "data")):
            result = sanity.get(mode, {}).get(name)
            for measure in ("spearman", "spearman_abs", "ssim"):
                scores[name][f"{prefix}_{measure}"] = getattr(result, measure)[-1] if result is not None else nan
    seconds["sanity"] = time.perf_counter() - mark
    predicted = np.argmax(forward_logits(model, x), axis=-1).astype(np.int64)
    seconds["total"] = time.perf_counter() - started
    bar.close()
    return BenchmarkResult(methods=tuple(sources), scores=scores, maps=maps, sanity=sanity, labels=y,
                           predicted=predicted, accuracy=float(np.mean(predicted == y)), settings=settings,
                           seconds={k: round(v, 2) for k, v in seconds.items()})


class _NoBar:
    def update(self, n=1):
        pass

    def set_description(self, text):
        pass

    def close(self):
        pass


def _bar(progress: bool, total: int):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="task")


__all__ = ["BETTER", "BenchmarkResult", "FAITHFULNESS", "FAMILIES", "LOCALISATION", "SANITY", "Settings",
           "explanation_maps", "faithfulness_scores", "localisation_scores", "run_benchmark"]
