"""Pictures of the views as uint8 RGB arrays: labelled mosaics of per-head overlays, DINO masks, rollout, the
block x head grid, a patch outline, and matplotlib figures rendered to arrays. Arrays in, arrays out."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ..analysis import apply_mask, colorize, overlay


def mosaic(tiles: Sequence[np.ndarray], labels: Sequence[str], ncols: int, pad: int = 6,
           label_height: int = 20) -> np.ndarray:
    """uint8 tiles (h, w, 3) of one size in rows of `ncols`, each under its label, on white."""
    import cv2

    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // ncols)
    cell_h, cell_w = label_height + h + pad, w + pad
    out = np.full((rows * cell_h + pad, ncols * cell_w + pad, 3), 255, np.uint8)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        r, c = divmod(i, ncols)
        y0, x0 = pad + r * cell_h, pad + c * cell_w
        cv2.putText(out, label, (x0 + 1, y0 + label_height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        out[y0 + label_height:y0 + label_height + h, x0:x0 + w] = tile
    return out


def mark_patch(picture: np.ndarray, row: int, col: int, patch_pixels: float,
               color: Tuple[int, int, int] = (0, 255, 255)) -> np.ndarray:
    """A copy of `picture` with patch (row, col) outlined."""
    import cv2

    out = np.ascontiguousarray(picture).copy()
    x0, y0 = round(col * patch_pixels), round(row * patch_pixels)
    x1, y1 = round((col + 1) * patch_pixels) - 1, round((row + 1) * patch_pixels) - 1
    cv2.rectangle(out, (x0, y0), (x1, y1), color, max(2, round(patch_pixels / 12)))
    return out


def upsample(maps: np.ndarray, size: Sequence[int], method: str = "bilinear") -> np.ndarray:
    """Maps (..., h, w) -> (..., H, W): `vit_tf.analysis.resize_maps`'s half-pixel bilinear or nearest weights
    (OpenCV's INTER_LINEAR / INTER_NEAREST are the same; tests check it), computed by OpenCV, which on a 224x224
    picture is some 20x faster than resize_maps' einsum."""
    import cv2

    m = np.asarray(maps, np.float64)
    flag = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}[method]
    height, width = (int(s) for s in size)
    flat = m.reshape(-1, *m.shape[-2:])
    out = np.stack([cv2.resize(x, (width, height), interpolation=flag) for x in flat])
    return out.reshape(*m.shape[:-2], height, width)


def heads_picture(picture: np.ndarray, maps: np.ndarray, mark: Optional[Tuple[int, int]] = None,
                  patch_pixels: float = 0.0, ncols: int = 6) -> np.ndarray:
    """Every head's map (heads, gh, gw) overlaid on `picture` (each map min-max scaled), as a labelled mosaic;
    `mark` outlines the query patch in every tile."""
    tiles = [overlay(picture, m, alpha=0.6) for m in upsample(maps, picture.shape[:2])]
    if mark is not None:
        tiles = [mark_patch(t, *mark, patch_pixels) for t in tiles]
    return mosaic(tiles, [f"head {h}" for h in range(len(tiles))], min(ncols, len(tiles)))


def masks_picture(picture: np.ndarray, masks: np.ndarray, ncols: int = 6) -> np.ndarray:
    """DINO-style masks (heads, gh, gw): the picture inside each head's mask, darkened outside."""
    img = picture.astype(np.float64)
    tiles = []
    for m in upsample(masks, picture.shape[:2], method="nearest"):
        inside = m[..., None]
        tiles.append(np.clip(np.round(img * (0.25 + 0.75 * inside)), 0, 255).astype(np.uint8))
    return mosaic(tiles, [f"head {h}" for h in range(len(tiles))], min(ncols, len(tiles)))


def rollout_picture(picture: np.ndarray, rollout_map: np.ndarray) -> np.ndarray:
    """Input x rollout / max (the keras.io example) beside the rollout heatmap overlay."""
    up = upsample(rollout_map, picture.shape[:2])
    return mosaic([apply_mask(picture, up), overlay(picture, up, alpha=0.6)],
                  ["input x rollout / max", "rollout heatmap"], 2)


def grid_picture(grid: np.ndarray, tile: int = 64) -> np.ndarray:
    """The block x head grid (blocks, heads, gh, gw): one colourised, min-max scaled map per tile."""
    blocks, heads, gh, gw = grid.shape
    size = (tile, max(1, round(tile * gw / gh))) if gh >= gw else (max(1, round(tile * gh / gw)), tile)
    maps = upsample(grid, size)
    tiles = [colorize(maps[b, h]) for b in range(blocks) for h in range(heads)]
    labels = [f"b{b} h{h}" for b in range(blocks) for h in range(heads)]
    return mosaic(tiles, labels, heads, pad=4, label_height=16)


def figure_array(fig, dpi: int = 100) -> np.ndarray:
    """A matplotlib figure rendered to uint8 RGB (H, W, 3)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


__all__ = ["figure_array", "grid_picture", "heads_picture", "mark_patch", "masks_picture", "mosaic", "rollout_picture",
           "upsample"]
