"""Attention heatmaps over a video, frame by frame (DINO's video demo, Caron et al. 2021; the keras.io example's
closing note).

Frames are read, analysed and written in small batches with OpenCV, so memory stays bounded by the batch size
whatever the length of the video.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator, List, Optional, Sequence, Union

import numpy as np

from .analysis.heatmaps import overlay, token_attention
from .analysis.sources import attention_source
from .preprocessing import normalize


def read_frames(path) -> Iterator[np.ndarray]:
    """Yield the frames of a video as uint8 RGB (H, W, 3), one at a time."""
    import cv2

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video not found: {path}")
    capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            raise ValueError(f"{path} is not a video OpenCV can read")
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield frame[..., ::-1]
    finally:
        capture.release()


def video_fps(path, default: float = 25.0) -> float:
    import cv2

    capture = cv2.VideoCapture(os.fspath(path))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
    capture.release()
    return fps if fps and fps > 0 else default


def frame_heatmaps(source, frames: Sequence[np.ndarray], recipe, *, block: int = -1,
                   head: Union[str, int] = "mean", token: Union[int, str] = "cls") -> np.ndarray:
    """Attention maps of frames of equal size: resized (squeezed) to the recipe's input size, normalised, run.

    Returns:
        (B, gh, gw): the token's attention to the patches in `block`, averaged over heads or one head.
    """
    import cv2

    h, w = recipe.input_size
    batch = np.stack([normalize(cv2.resize(np.ascontiguousarray(f), (w, h), interpolation=cv2.INTER_AREA),
                                recipe) for f in frames]).astype(np.float32)
    _, attention = source(batch)
    p = source.patch_size
    maps = token_attention(attention, num_prefix_tokens=source.num_prefix_tokens, block=block, token=token,
                           grid_size=(h // p, w // p))
    if head == "mean":
        return maps.mean(axis=1)
    head = int(head)
    if not -maps.shape[1] <= head < maps.shape[1]:
        raise ValueError(f"head {head} is out of range for {maps.shape[1]} heads")
    return maps[:, head]


def _batches(frames: Iterator[np.ndarray], size: int, limit: Optional[int]) -> Iterator[List[np.ndarray]]:
    batch: List[np.ndarray] = []
    for i, frame in enumerate(frames):
        if limit is not None and i >= limit:
            break
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def draw_caption(frame: np.ndarray, text: str) -> np.ndarray:
    """`text` in white on a dark band along the top of an RGB frame (uint8 (H, W, 3)), scaled to the frame."""
    import cv2

    out = np.ascontiguousarray(frame)
    h, w = out.shape[:2]
    scale = max(min(w, h) / 500.0, 0.3)
    thickness = max(int(round(scale * 1.5)), 1)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    band = min(th + base + 2 * thickness + 4, h)
    out[:band] = (out[:band] * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, min(th + thickness + 2, h - 1)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)
    return out


def attention_video(in_path, out_path, model, recipe, *, block: int = -1, head: Union[str, int] = "mean",
                    token: Union[int, str] = "cls", alpha: float = 0.5, batch_size: int = 4,
                    max_frames: Optional[int] = None, fourcc: str = "mp4v",
                    on_frame: Optional[Callable[[int], None]] = None, caption: Optional[str] = None) -> dict:
    """Write a copy of a video with each frame's attention heatmap overlaid.

    The first batch is analysed before anything is written (so a bad `block`, `head` or `token`, or an unreadable
    video, leaves no file), and the video is written under a temporary name beside `out_path`, renamed when
    complete: `out_path` is never a partial video.

    Args:
        in_path, out_path: input video and output file (the codec `fourcc`, mp4v by default, suits .mp4).
        model: a `VisionTransformer`, timm model, SavedModel path or attention source.
        recipe: the weights' `Recipe` (input size, mean and std).
        block, head, token: which attention map: block index, "mean" over heads or a head index, query token.
        alpha: heatmap weight in the blend.
        batch_size: frames per forward pass (bounds memory).
        max_frames: stop after this many frames.
        on_frame: called with the number of frames written so far (progress).
        caption: text drawn on every frame (e.g. "random weights").
    Returns:
        {"frames": n, "fps": fps, "size": [height, width], "path": out_path}.
    """
    import cv2

    from .files import atomic_file

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    source = attention_source(model)
    p = source.patch_size
    fps = video_fps(in_path)
    batches = _batches(read_frames(in_path), batch_size, max_frames)
    first = next(batches, None)
    if first is None:
        raise ValueError(f"{in_path} holds no frames")
    size = first[0].shape[:2]
    if size[0] < p or size[1] < p:
        raise ValueError(f"{in_path}: frames are {size[1]}x{size[0]} pixels, smaller than one {p}x{p} patch")

    def heatmaps(frames):
        return frame_heatmaps(source, frames, recipe, block=block, head=head, token=token)

    first_maps = heatmaps(first)  # bad block / head / token fail here, before any file exists
    out_path = os.fspath(out_path)
    written = 0
    with atomic_file(out_path) as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*fourcc), fps, (size[1], size[0]))
        try:
            if not writer.isOpened():
                raise OSError(f"cannot write {out_path} with codec {fourcc!r}")
            frames, maps = first, first_maps
            while frames is not None:
                for frame, heat in zip(frames, maps):
                    if frame.shape[:2] != size:
                        frame = cv2.resize(np.ascontiguousarray(frame), (size[1], size[0]))
                    shown = overlay(frame, heat, alpha=alpha)
                    if caption:
                        shown = draw_caption(shown, caption)
                    writer.write(np.ascontiguousarray(shown[..., ::-1]))
                    written += 1
                    if on_frame is not None:
                        on_frame(written)
                frames = next(batches, None)
                maps = heatmaps(frames) if frames is not None else None
        finally:
            writer.release()
    return {"frames": written, "fps": fps, "size": list(size), "path": out_path}
