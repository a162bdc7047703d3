"""Figures of representation similarity (`vit_tf.analysis.cka`): Raghu et al. 2021's layer x layer CKA heatmap.

The function builds a `matplotlib.figure.Figure` directly (no pyplot state, so any backend, Agg included) and returns
it; write it with `vit_tf.plotting.save_figure`. Colour always has a colorbar.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

from . import common as C

_CKA_CMAP = "magma"  # Raghu et al. 2021, Fig. 1


def _layer_labels(names: Sequence[str], constant: Sequence[int]) -> list:
    constant = set(constant)
    return [f"{name} (constant)" if i in constant else name for i, name in enumerate(names)]


def cka_figure(cka: np.ndarray, layers_a: Sequence[str], layers_b: Sequence[str], name_a: str = "model A",
               name_b: Optional[str] = None, title: str = "", constant_a: Sequence[int] = (),
               constant_b: Sequence[int] = (), figsize: Optional[Tuple[float, float]] = None) -> Figure:
    """Raghu et al.'s layer x layer CKA heatmap (Fig. 1): layers of A on the y axis, of B on the x axis, both from
    the input at the origin (bottom left), CKA on a fixed 0..1 colour scale with a colorbar.

    Args:
        cka: (La, Lb) CKA values; negative values (unbiased estimates of unrelated layers) show as 0, the colorbar
            then has a pointed lower end.
        layers_a, layers_b: layer names of the rows and columns.
        name_a, name_b: the models' names for the axis labels (name_b None: the same model).
        constant_a, constant_b: rows / columns whose representation was the same for every image (CKA reported
            as 0); their tick labels say "(constant)".
    """
    cka = np.asarray(cka, np.float64)
    la, lb = cka.shape
    if (la, lb) != (len(layers_a), len(layers_b)):
        raise ValueError(f"cka is {cka.shape} but there are {len(layers_a)} x {len(layers_b)} layer names")
    if figsize is None:
        side = min(max(3.6, 0.28 * max(la, lb) + 2.0), 9.0)
        figsize = (side * max(lb, 1) / max(la, lb) + 1.8, side * max(la, 1) / max(la, lb) + 1.0)
    fig = C.figure(figsize)
    ax = fig.add_subplot()
    im = ax.imshow(cka, cmap=_CKA_CMAP, vmin=0.0, vmax=1.0, origin="lower", interpolation="nearest",
                   aspect="equal")
    labels_a, labels_b = _layer_labels(layers_a, constant_a), _layer_labels(layers_b, constant_b)
    rows, cols = C.ticks(la), C.ticks(lb)
    ax.set_yticks(rows, [labels_a[i] for i in rows], fontsize=7)
    ax.set_xticks(cols, [labels_b[j] for j in cols], fontsize=7, rotation=90)
    ax.set_ylabel(f"Layers of {name_a}", fontsize=9)
    ax.set_xlabel(f"Layers of {name_b if name_b is not None else name_a}", fontsize=9)
    bar = fig.colorbar(im, ax=ax, fraction=0.046, extend="min" if np.nanmin(cka) < 0 else "neither")
    bar.set_label("linear CKA", fontsize=9)
    C.title(ax, title or "Representation similarity (CKA)", 10, share=0.8)
    return fig


__all__ = ["cka_figure"]
