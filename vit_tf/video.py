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


def attention_video(in_path, out_path, model, recipe, *, block: int = -1, head: Union[str, int] = "mean",
                    token: Union[int, str] = "cls", alpha: float = 0.5, batch_size: int = 4,
                    max_frames: Optional[int] = None, fourcc: str = "mp4v",
                    on_frame: Optional[Callable[[int], None]] = None) -> dict:
    """Write a copy of a video with each frame's attention heatmap overlaid.

    Args:
        in_path, out_path: input video and output file (the codec `fourcc`, mp4v by default, suits .mp4).
        model: a `VisionTransformer`, timm model, SavedModel path or attention source.
        recipe: the weights' `Recipe` (input size, mean and std).
        block, head, token: which attention map: block index, "mean" over heads or a head index, query token.
        alpha: heatmap weight in the blend.
        batch_size: frames per forward pass (bounds memory).
        max_frames: stop after this many frames.
        on_frame: called with the number of frames written so far (progress).
    Returns:
        {"frames": n, "fps": fps, "size": [height, width], "path": out_path}.
    """
    import cv2

    source = attention_source(model)
    p = source.patch_size
    fps = video_fps(in_path)
    writer, size, written = None, None, 0
    pending: List[np.ndarray] = []

    def flush():
        nonlocal written
        for frame, heat in zip(pending, frame_heatmaps(source, pending, recipe, block=block, head=head,
                                                      token=token)):
            writer.write(np.ascontiguousarray(overlay(frame, heat, alpha=alpha)[..., ::-1]))
            written += 1
            if on_frame is not None:
                on_frame(written)
        pending.clear()

    try:
        for i, frame in enumerate(read_frames(in_path)):
            if max_frames is not None and i >= max_frames:
                break
            if writer is None:
                size = frame.shape[:2]
                if size[0] < p or size[1] < p:
                    raise ValueError(f"{in_path}: frames are {size[1]}x{size[0]} pixels, smaller than one "
                                     f"{p}x{p} patch")
                out_path = os.fspath(out_path)
                os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
                writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*fourcc), fps, (size[1], size[0]))
                if not writer.isOpened():
                    raise OSError(f"cannot write {out_path} with codec {fourcc!r}")
            pending.append(frame)
            if len(pending) == batch_size:
                flush()
        if pending:
            flush()
    finally:
        if writer is not None:
            writer.release()
    if written == 0:
        raise ValueError(f"{in_path} holds no frames")
    return {"frames": written, "fps": fps, "size": list(size), "path": os.fspath(out_path)}
