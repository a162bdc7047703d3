"""Centered kernel alignment (CKA) between the layers of one or two networks: Kornblith et al. 2019, "Similarity of
Neural Network Representations Revisited"; the minibatch estimator of Nguyen, Raghu & Kornblith 2021, "Do Wide and
Deep Networks Learn the Same Things?" (official code: google-research/do_wide_and_deep_networks_learn_the_same_things
/efficient_CKA.py), as used by Raghu et al. 2021, "Do Vision Transformers See Like Convolutional Neural Networks?".

Linear CKA of features X (n, d1) and Y (n, d2), with Gram matrices K = X X^T and L = Y Y^T:

    CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))

    biased   HSIC_0(K, L) = tr(K H L H) / (n - 1)^2,  H = I - 11^T / n
    unbiased HSIC_1(K, L) = [tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n (n-3))
                            (Song et al. 2012; K~, L~ are K, L with zero diagonal; needs n >= 4)

HSIC_1 is computed as <U(K), U(L)> / (n (n-3)) with U the U-centering of Szekely & Rizzo (2014): off-diagonal
entries K~_ij - r_i/(n-2) - c_j/(n-2) + S/((n-1)(n-2)) (r, c: row and column sums of K~, S: their total), zero
diagonal. Every HSIC is invariant to a shift of the features, so features are first made relative to the batch
(first row, then the mean subtracted): a representation that is the same for every example then has an exactly zero
Gram matrix instead of rounding noise.

Minibatch CKA (Nguyen et al., Sec. 3.1): the per-batch HSIC_1 values, averaged over the k batches, are normalised
only at the end,

    CKA_minibatch = mean_i HSIC_1(K_i, L_i) / sqrt(mean_i HSIC_1(K_i, K_i) * mean_i HSIC_1(L_i, L_i)),

so memory stays constant and, because HSIC_1 is unbiased, the result does not shrink with the batch size as the
biased estimator does. (The official code sums the unscaled <U(K_i), U(L_i)>, which weights batches by n_i (n_i - 3);
it is the same estimator when all batches have one size.)

A representation that is identical for every example (the class token before block 0, a dead ReLU layer) has no
centred variance: CKA is undefined, and is reported as 0 for it, itself included; such layers are listed in
`LayerSimilarity.constant_a` / `constant_b`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._arrays import to_numpy

MIN_BATCH = 4  # n (n - 3) > 0: the unbiased HSIC needs four examples
TOKEN_CHOICES = ("cls", "mean", "all", "dist", "registers", "patches")


# -- estimators on arrays ----------------------------------------------------------------------------------------------
def _features(x, name: str) -> np.ndarray:
    """Any framework's array (n, ...) -> float64 (n, d), made relative to the batch (HSIC does not see shifts)."""
    a = to_numpy(x, np.float64)
    if a.ndim < 2:
        raise ValueError(f"{name} must be (examples, features), got shape {a.shape}")
    a = a.reshape(a.shape[0], -1)
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN/Inf")
    # The first row first: a constant representation becomes exactly 0 (the mean alone leaves rounding noise).
    a = a - a[:1]
    return a - a.mean(axis=0)


def _check_examples(n: int, unbiased: bool, what: str = "") -> None:
    need = MIN_BATCH if unbiased else 2
    if n < need:
        estimator = "the unbiased HSIC (n (n - 3) in its denominator)" if unbiased else "the biased HSIC"
        raise ValueError(f"{what}{n} examples: {estimator} needs at least {need}")


def center_gram(gram, unbiased: bool = True) -> np.ndarray:
    """Centred Gram matrices: U-centering (unbiased) or H K H (biased).

    Args:
        gram: (n, n) or a stack (..., n, n) of symmetric Gram matrices.
        unbiased: U-centering (zero diagonal; see the module docstring) when True, else double centering.
    Returns:
        float64 array of the input's shape. HSIC_1(K, L) = <U(K), U(L)> / (n (n-3)); HSIC_0(K, L) =
        <HKH, HLH> / (n-1)^2, inner products over the last two axes.
    """
    g = np.array(to_numpy(gram, np.float64))  # a copy: modified below
    n = g.shape[-1]
    if g.ndim < 2 or g.shape[-2] != n:
        raise ValueError(f"gram must be (..., n, n), got {g.shape}")
    _check_examples(n, unbiased)
    diag = np.arange(n)
    if not unbiased:
        g = g - g.mean(axis=-1, keepdims=True)
        return g - g.mean(axis=-2, keepdims=True)
    g[..., diag, diag] = 0.0
    rows = g.sum(axis=-1, keepdims=True) / (n - 2)  # (..., n, 1)
    cols = g.sum(axis=-2, keepdims=True) / (n - 2)  # (..., 1, n)
    total = g.sum(axis=(-2, -1), keepdims=True) / ((n - 1) * (n - 2))
    g = g - rows - cols + total
    g[..., diag, diag] = 0.0
    return g


def _scale(n: int, unbiased: bool) -> float:
    return 1.0 / (n * (n - 3)) if unbiased else 1.0 / (n - 1) ** 2


def _ratio(cross, self_x, self_y) -> np.ndarray:
    """cross / sqrt(self_x self_y), 0 where a representation has no centred variance (see the module docstring)."""
    cross = np.asarray(cross, np.float64)
    denom = np.sqrt(np.multiply.outer(np.maximum(self_x, 0.0), np.maximum(self_y, 0.0)))
    return np.divide(cross, denom, out=np.zeros_like(cross), where=denom > 0)


def hsic(x, y, unbiased: bool = True) -> float:
    """HSIC of two feature matrices with linear kernels: x (n, d1), y (n, d2) (more axes are flattened per example).

    Unbiased (Song et al. 2012, needs n >= 4) or biased (Gretton et al. 2005, tr(KHLH)/(n-1)^2). Computed from the
    Gram matrices or, when that is cheaper (n (d1 + d2) > d1 d2), from X^T Y in feature space.
    """
    x, y = _features(x, "x"), _features(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of examples, got {x.shape[0]} and {y.shape[0]}")
    n = x.shape[0]
    _check_examples(n, unbiased)
    d1, d2 = x.shape[1], y.shape[1]
    if n * (d1 + d2) <= d1 * d2:
        return float(np.sum(center_gram(x @ x.T, unbiased) * center_gram(y @ y.T, unbiased)) * _scale(n, unbiased))
    return _hsic_features(x, y, unbiased)


def _hsic_features(x: np.ndarray, y: np.ndarray, unbiased: bool) -> float:
    """HSIC without n x n matrices: O(n d1 d2) through X^T Y (x, y already column-centred)."""
    n = x.shape[0]
    cross = float(np.sum((x.T @ y) ** 2))  # tr(K L)
    if not unbiased:  # the columns are centred, so H K H = K
        return cross / (n - 1) ** 2
    kd, ld = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)  # diagonals of K and L
    k1, l1 = x @ x.sum(axis=0) - kd, y @ y.sum(axis=0) - ld  # K~ 1, L~ 1
    trace = cross - float(kd @ ld)  # tr(K~ L~)
    value = trace + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(k1 @ l1)
    return value / (n * (n - 3))


def linear_cka(x, y, unbiased: bool = True) -> float:
    """Linear CKA between two representations of the same n examples.

    Args:
        x: (n, d1) features (NumPy, TF or torch; more axes are flattened per example).
        y: (n, d2) features of the same examples in the same order.
        unbiased: the unbiased HSIC (Song et al. 2012; needs n >= 4), else the biased one of Kornblith et al.
    Returns:
        float in [-1, 1] (the unbiased estimate can be slightly negative for unrelated features, the biased one is
        in [0, 1]); 0 when either representation is the same for every example.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(64, 10))
        >>> round(linear_cka(x, 3.0 * x @ np.linalg.qr(rng.normal(size=(10, 10)))[0]), 10)
        1.0
    """
    return float(_ratio(hsic(x, y, unbiased), hsic(x, x, unbiased), hsic(y, y, unbiased)))


class MinibatchCKA:
    """Streamed CKA between every layer of one model and every layer of another (or itself), in constant memory.

    Per batch, each layer's features become a centred Gram matrix; the HSIC of every pair of layers is one matrix
    product of the flattened centred Grams, summed over batches; `result()` normalises the sums (see the module
    docstring). Batches may differ in size (each must hold at least 4 examples for the unbiased estimator).

    Args:
        unbiased: per-batch unbiased HSIC (Nguyen et al.; the default) or biased HSIC.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> cka = MinibatchCKA()
        >>> q = np.linalg.qr(rng.normal(size=(8, 8)))[0]  # a rotation
        >>> for _ in range(4):  # four batches of 32 examples; layers: x, a rotated and scaled x, x + noise
        ...     x = rng.normal(size=(32, 8))
        ...     _ = cka.update([x, 2 * x @ q, x + rng.normal(size=(32, 8))])
        >>> cka.result().round(2)[0].tolist()
        [1.0, 1.0, 0.5]
    """

    def __init__(self, unbiased: bool = True):
        self.unbiased = unbiased
        self.batches = 0
        self.count = 0
        self._cross: Optional[np.ndarray] = None  # (Lx, Ly) sums of per-batch HSIC
        self._self_x: Optional[np.ndarray] = None  # (Lx,)
        self._self_y: Optional[np.ndarray] = None  # (Ly,)
        self._same: Optional[bool] = None  # one model compared with itself

    @staticmethod
    def gram(features) -> np.ndarray:
        """(n, ...) features -> (n, n) float64 linear Gram matrix of the batch-relative features."""
        f = _features(features, "features")
        return f @ f.T

    def update(self, features_x: Sequence, features_y: Optional[Sequence] = None) -> "MinibatchCKA":
        """Add one batch: `features_x` a list of per-layer arrays (n, ...), `features_y` those of the other model
        on the same n examples (None: compare the layers of `features_x` with each other). Returns self."""
        grams_x = np.stack([self.gram(f) for f in features_x])
        grams_y = None if features_y is None else np.stack([self.gram(f) for f in features_y])
        return self.update_grams(grams_x, grams_y)

    def update_grams(self, grams_x, grams_y=None) -> "MinibatchCKA":
        """Add one batch given as Gram matrices: `grams_x` (Lx, n, n), `grams_y` (Ly, n, n) or None. Returns self."""
        gx = to_numpy(grams_x, np.float64)
        gy = None if grams_y is None else to_numpy(grams_y, np.float64)
        if gx.ndim != 3 or gx.shape[1] != gx.shape[2]:
            raise ValueError(f"grams_x must be (layers, n, n), got {gx.shape}")
        n = gx.shape[1]
        _check_examples(n, self.unbiased, "a batch of ")
        same = gy is None
        if gy is not None and (gy.ndim != 3 or gy.shape[1:] != gx.shape[1:]):
            raise ValueError(f"grams_y must be (layers, {n}, {n}) like grams_x, got {gy.shape}")
        if self._same is not None and same != self._same:
            raise ValueError("every update must either compare two models or one model with itself")
        scale = _scale(n, self.unbiased)
        ux = center_gram(gx, self.unbiased).reshape(len(gx), -1)  # (Lx, n*n)
        uy = ux if same else center_gram(gy, self.unbiased).reshape(len(gy), -1)
        cross = ux @ uy.T * scale
        self_x = np.einsum("ij,ij->i", ux, ux) * scale
        self_y = self_x if same else np.einsum("ij,ij->i", uy, uy) * scale
        if self._cross is None:
            self._cross, self._self_x, self._self_y, self._same = cross, self_x, self_y, same
        else:
            if cross.shape != self._cross.shape:
                raise ValueError(f"layer counts {cross.shape} differ from earlier batches {self._cross.shape}")
            self._cross += cross
            self._self_x += self_x
            if not same:
                self._self_y += self_y
        self.batches += 1
        self.count += n
        return self

    def hsic(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean per-batch HSIC: (cross (Lx, Ly), self_x (Lx,), self_y (Ly,))."""
        if self._cross is None:
            raise ValueError("no batches yet")
        k = self.batches
        return self._cross / k, self._self_x / k, self._self_y / k

    def result(self) -> np.ndarray:
        """(Lx, Ly) float64 minibatch CKA; rows and columns of constant layers are 0 (see `constant`)."""
        cross, self_x, self_y = self.hsic()
        return _ratio(cross, self_x, self_y)

    def constant(self) -> Tuple[List[int], List[int]]:
        """Indices of the layers (of x, of y) that were the same for every example of every batch."""
        _, self_x, self_y = self.hsic()
        return [int(i) for i in np.flatnonzero(self_x <= 0)], [int(i) for i in np.flatnonzero(self_y <= 0)]


# -- which tokens: one feature vector per image ----------------------------------------------------------------------
def token_span(choice: str, num_prefix_tokens: int, num_register_tokens: int = 0) -> Tuple[int, Optional[int], str]:
    """Where a token choice lies in timm's token order (class, then distillation or registers, then patches).

    Returns (start, stop, how): tokens [start:stop] (stop None: to the end), and how they become one vector per
    image: "one" (a single token), "flatten" (concatenated) or "mean" (averaged).
    """
    p, r = int(num_prefix_tokens), int(num_register_tokens)
    dist = p - 1 - r  # 1 for distilled DeiT
    if dist not in (0, 1) or r < 0:
        raise ValueError(f"{p} prefix tokens cannot hold a class token and {r} registers (plus at most one "
                         f"distillation token)")
    if choice == "cls":
        return 0, 1, "one"
    if choice == "dist":
        if not dist:
            raise ValueError("tokens 'dist': the model has no distillation token (only distilled DeiT does)")
        return 1, 2, "one"
    if choice == "registers":
        if not r:
            raise ValueError("tokens 'registers': the model has no register tokens")
        return 1 + dist, 1 + dist + r, "flatten"
    if choice == "patches":
        return p, None, "flatten"
    if choice == "mean":
        return p, None, "mean"
    if choice == "all":
        return 0, None, "flatten"
    raise ValueError(f"tokens must be one of {TOKEN_CHOICES}, got {choice!r}")


def token_features(tokens, choice: str, *, num_prefix_tokens: int, num_register_tokens: int = 0) -> np.ndarray:
    """One feature vector per image from a layer's tokens.

    Args:
        tokens: (B, T, D) a layer's tokens, prefix tokens first.
        choice: "cls" (class token), "dist" (distillation token), "registers" (register tokens, concatenated),
            "patches" (patch tokens, concatenated), "mean" (mean of the patch tokens) or "all" (every token,
            concatenated).
        num_prefix_tokens, num_register_tokens: the model's (registers are the last prefix tokens).
    Returns:
        float (B, F): F = D for cls, dist and mean; D x the number of tokens otherwise.
    """
    x = to_numpy(tokens)
    if x.ndim != 3:
        raise ValueError(f"tokens must be (B, T, D), got {x.shape}")
    start, stop, how = token_span(choice, num_prefix_tokens, num_register_tokens)
    part = x[:, start:stop]
    if how == "mean":
        return part.mean(axis=1)
    return part.reshape(len(x), -1)


# -- representations of a model, computed in the forward pass ---------------------------------------------------------
@dataclasses.dataclass
class Representations:
    """Named per-image representations of a model's layers.

    Attributes:
        names: one name per representation ("embedding", "block_0", ..., "norm"; or Keras layer names).
        tokens: the token choice of each representation ("cls", "mean", ...; "pooled" for CNN layers).
        fn: images (B, H, W, 3) tensor -> list of (B, F_i) tensors, one per name, traceable by `tf.function`.
        label: the model's name.
    """

    names: List[str]
    tokens: List[str]
    fn: Callable
    label: str = "model"


def vit_representations(model, tokens: Union[str, Sequence[str]] = "cls",
                        num_register_tokens: Optional[int] = None) -> Representations:
    """A `VisionTransformer`'s layers: the tokens entering block 0 ("embedding": patch embedding, prefix tokens and
    position embeddings), every block's output ("block_i") and the final norm ("norm"), each reduced by every token
    choice in `tokens` (see `token_features`), in that order (layers outer, token choices inner).

    `num_register_tokens` defaults to `model.config.num_register_tokens` (0 when the config has none). The
    embedding is recomputed by `model.embed` beside `forward_features` (one convolution, well under 1% of a
    forward pass) because `forward_features` does not return it.
    """
    import tensorflow as tf

    choices = [tokens] if isinstance(tokens, str) else list(tokens)
    if not choices:
        raise ValueError("give at least one token choice")
    c = model.config
    registers = getattr(c, "num_register_tokens", 0) if num_register_tokens is None else num_register_tokens
    spans = [token_span(t, c.num_prefix_tokens, registers) for t in choices]  # errors before any tracing
    layers = ["embedding"] + [f"block_{i}" for i in range(c.depth)] + ["norm"]

    def reduce(x, span):
        start, stop, how = span
        part = x[:, start:stop]
        if how == "mean":  # in float64, as the Gram matrices: pooling adds no rounding of its own
            return tf.reduce_mean(tf.cast(part, tf.float64), axis=1)
        return tf.reshape(part, (tf.shape(x)[0], -1))

    def fn(images):
        embedded = model.embed(images)
        final, _, hidden = model.forward_features(images, training=False, return_hidden=True, return_attention=False)
        return [reduce(x, s) for x in [embedded, *hidden, final] for s in spans]

    return Representations([n for n in layers for _ in choices], [t for _ in layers for t in choices], fn,
                           getattr(model, "weight_name", None) or model.name)


def keras_representations(model, layer_names: Optional[Sequence[str]] = None) -> Representations:
    """Named layers of a single-input Keras model (a CNN such as `keras.applications.ResNet50`), each output
    globally average-pooled over every axis but the batch and the last (channels-last feature maps (B, H, W, C)
    -> (B, C), averaged in float64; (B, C) outputs are kept).

    Args:
        model: a built functional or sequential `keras.Model`.
        layer_names: the layers to compare, in order; default: every layer except input layers.
    """
    import keras
    import tensorflow as tf

    if layer_names is None:
        layer_names = [layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    layer_names = list(layer_names)
    if not layer_names:
        raise ValueError("no layers to compare")
    try:
        outputs = [model.get_layer(name).output for name in layer_names]
    except ValueError as e:
        raise ValueError(f"{e}; layers of {model.name}: {[layer.name for layer in model.layers][:20]} ...") from None
    inputs = model.inputs
    if len(inputs) != 1:
        raise ValueError(f"{model.name} has {len(inputs)} inputs; only single-input models are supported")
    tap = keras.Model(inputs, outputs, name=f"{model.name}_layers")

    def fn(images):
        result = tap(images, training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        pooled = []
        for y in result:
            y = tf.convert_to_tensor(y)
            rank = y.shape.rank
            spatial = list(range(1, rank - 1))
            pooled.append(tf.reduce_mean(tf.cast(y, tf.float64), axis=spatial) if spatial else y)
        return pooled

    return Representations(layer_names, ["pooled"] * len(layer_names), fn, model.name)


def representations(model, tokens: Union[str, Sequence[str]] = "cls", layers: Optional[Sequence[str]] = None,
                    num_register_tokens: Optional[int] = None) -> Representations:
    """`Representations` of a ViT (`vit_representations`), a Keras CNN (`keras_representations` with `layers`),
    or a `Representations` returned as is."""
    if isinstance(model, Representations):
        return model
    if hasattr(model, "forward_features") and hasattr(getattr(model, "config", None), "num_prefix_tokens"):
        if layers is not None:
            raise ValueError("layers= selects Keras layers of a CNN; a ViT's layers are its blocks")
        return vit_representations(model, tokens, num_register_tokens)
    return keras_representations(model, layers)


def _gram_function(rep: Representations):
    """Traced images -> (L, B, B) float64 Gram matrices of the batch-relative features (see `_features`)."""
    import tensorflow as tf

    def grams(images):
        out = []
        for f in rep.fn(images):
            f = tf.cast(tf.reshape(f, (tf.shape(f)[0], -1)), tf.float64)
            f = f - f[:1]
            f = f - tf.reduce_mean(f, axis=0, keepdims=True)
            out.append(tf.matmul(f, f, transpose_b=True))
        return tf.stack(out)

    traced = {}

    def call(images):
        # One trace per image size, for every batch size (a joined last batch costs no second trace).
        size = tuple(images.shape[1:])
        if size not in traced:
            traced[size] = tf.function(grams, input_signature=[tf.TensorSpec((None, *size), tf.float32)])
        return traced[size](images)

    return call


def _images_of(item):
    """A batch as given by a loop or a `tf.data.Dataset`: images, or (images, labels, ...) whose first is images."""
    return item[0] if isinstance(item, (tuple, list)) else item


def _batch_len(x) -> int:
    return int(x.shape[0]) if hasattr(x, "shape") else len(x)


def min_size_batches(pairs: Iterable[Tuple], minimum: int = MIN_BATCH) -> Iterator[Tuple]:
    """Batches (tuples of aligned arrays) passed on unchanged, except that a last batch smaller than `minimum` is
    joined to the one before; a smaller batch anywhere else, or fewer than `minimum` examples in all, is a
    ValueError. Holds one batch back."""
    pending, joined = None, False
    for item in pairs:
        size = _batch_len(item[0])
        if pending is None:
            pending = item
            continue
        if joined or _batch_len(pending[0]) < minimum:
            raise ValueError(f"a batch of {min(_batch_len(pending[0]), size)} images before the last batch: the "
                             f"unbiased HSIC needs at least {minimum} images per batch; use a batch size of "
                             f"{minimum} or more")
        if size < minimum:  # perhaps the last, short batch: join it; an error above if another follows
            pending = tuple(np.concatenate([to_numpy(a), to_numpy(b)]) for a, b in zip(pending, item))
            joined = True
            continue
        yield pending
        pending = item
    if pending is not None:
        if _batch_len(pending[0]) < minimum:
            raise ValueError(f"{_batch_len(pending[0])} images in all: the unbiased HSIC needs at least {minimum}")
        yield pending


@dataclasses.dataclass
class LayerSimilarity:
    """CKA between the representations of model A (rows) and model B (columns).

    Attributes:
        cka: (La, Lb) float64 minibatch CKA.
        layers_a, layers_b: layer names of the rows and columns.
        tokens_a, tokens_b: the token choice of each row and column ("pooled" for CNN layers).
        model_a, model_b: model names.
        images: examples used; batches: minibatches (each of at least 4 images); unbiased: the HSIC estimator.
        constant_a, constant_b: indices of rows / columns whose representation was the same for every image (their
            CKA is reported as 0).
    """

    cka: np.ndarray
    layers_a: List[str]
    layers_b: List[str]
    tokens_a: List[str]
    tokens_b: List[str]
    model_a: str
    model_b: str
    images: int
    batches: int
    unbiased: bool = True
    constant_a: List[int] = dataclasses.field(default_factory=list)
    constant_b: List[int] = dataclasses.field(default_factory=list)

    def select(self, tokens_a: str, tokens_b: Optional[str] = None) -> "LayerSimilarity":
        """The rows of token choice `tokens_a` and the columns of `tokens_b` (default: the same)."""
        tokens_b = tokens_a if tokens_b is None else tokens_b
        rows = [i for i, t in enumerate(self.tokens_a) if t == tokens_a]
        cols = [j for j, t in enumerate(self.tokens_b) if t == tokens_b]
        if not rows or not cols:
            raise ValueError(f"no representations with tokens {tokens_a!r} / {tokens_b!r} (have "
                             f"{sorted(set(self.tokens_a))} / {sorted(set(self.tokens_b))})")
        return dataclasses.replace(
            self, cka=self.cka[np.ix_(rows, cols)], layers_a=[self.layers_a[i] for i in rows],
            layers_b=[self.layers_b[j] for j in cols], tokens_a=[tokens_a] * len(rows),
            tokens_b=[tokens_b] * len(cols), constant_a=[rows.index(i) for i in self.constant_a if i in rows],
            constant_b=[cols.index(j) for j in self.constant_b if j in cols])


def layer_cka(model_a, batches, model_b=None, *, batches_b=None, tokens: Union[str, Sequence[str]] = "cls",
              layers_a: Optional[Sequence[str]] = None, layers_b: Optional[Sequence[str]] = None,
              num_register_tokens: Optional[int] = None, unbiased: bool = True,
              on_batch: Optional[Callable[[int], None]] = None) -> LayerSimilarity:
    """Minibatch CKA between every layer of `model_a` and every layer of `model_b` (or of `model_a` itself), streamed
    over batches with one forward pass per batch per model; only (L, B, B) Gram matrices leave the device.

    Args:
        model_a, model_b: `VisionTransformer`s, single-input Keras models (CNNs: pooled named layers), or
            `Representations`. `model_b` None compares `model_a` with itself (one forward pass per batch).
        batches: iterable of preprocessed image batches (B, H, W, 3) for model A (NumPy or tensors), or a batched
            `tf.data.Dataset`; items that are tuples (images, labels) use their first element.
        batches_b: model B's batches of the same images in the same order when its preprocessing differs (another
            input size or normalisation); default: `batches` for both.
        tokens: the token choice(s) of ViT layers (see `token_features`); a list computes them all in the same
            forward pass (rows and columns for every choice; `LayerSimilarity.select` picks one).
        layers_a, layers_b: Keras layer names of a CNN (default: every layer but the inputs).
        num_register_tokens: register tokens of the ViTs (default: their configs').
        unbiased: per-batch unbiased HSIC (default, Nguyen et al.) or biased.
        on_batch: called with the number of images of each batch.
    Returns:
        `LayerSimilarity`. Batches need at least 4 images each; a shorter last batch is joined to the one before.
    """
    import tensorflow as tf

    rep_a = representations(model_a, tokens, layers_a, num_register_tokens)
    same = model_b is None
    rep_b = rep_a if same else representations(model_b, tokens, layers_b, num_register_tokens)
    grams_a = _gram_function(rep_a)
    grams_b = None if same else _gram_function(rep_b)
    if same and batches_b is not None:
        raise ValueError("batches_b goes with model_b")
    stream = ((_images_of(a),) for a in batches) if batches_b is None or same else \
        ((_images_of(a), _images_of(b)) for a, b in _zip_strict(batches, batches_b))
    cka = MinibatchCKA(unbiased)
    for item in min_size_batches(stream):
        xa = tf.convert_to_tensor(item[0], tf.float32)
        xb = xa if len(item) == 1 else tf.convert_to_tensor(item[1], tf.float32)
        if len(item) == 2 and xa.shape[0] != xb.shape[0]:
            raise ValueError(f"batches and batches_b differ in size ({xa.shape[0]} and {xb.shape[0]} images)")
        ga = grams_a(xa)
        cka.update_grams(ga.numpy(), None if same else grams_b(xb).numpy())
        if on_batch is not None:
            on_batch(int(xa.shape[0]))
    if not cka.batches:
        raise ValueError("no images: the batches were empty")
    const_a, const_b = cka.constant()
    return LayerSimilarity(cka.result(), list(rep_a.names), list(rep_b.names), list(rep_a.tokens),
                           list(rep_b.tokens), rep_a.label, rep_b.label, cka.count, cka.batches, unbiased,
                           const_a, const_b)


def _zip_strict(a, b):
    sentinel = object()
    ia, ib = iter(a), iter(b)
    while True:
        x, y = next(ia, sentinel), next(ib, sentinel)
        if x is sentinel and y is sentinel:
            return
        if x is sentinel or y is sentinel:
            raise ValueError("batches and batches_b hold different numbers of batches")
        yield x, y


__all__ = [
    "LayerSimilarity", "MinibatchCKA", "Representations", "TOKEN_CHOICES", "center_gram", "hsic",
    "keras_representations", "layer_cka", "linear_cka", "min_size_batches", "representations", "token_features",
    "token_span", "vit_representations",
]
