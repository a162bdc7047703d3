"""`vit-tf video IN.mp4 --model M --out OUT.mp4`: attention heatmaps overlaid on every frame, streamed."""

from __future__ import annotations

import sys

from .common import add_analysis_arguments, load_for_analysis


def _head(value: str):
    if value == "mean":
        return value
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"--head must be 'mean' or a head index, got {value!r}") from None


def add_parser(subparsers):
    p = subparsers.add_parser(
        "video", help="overlay per-frame attention heatmaps on a video",
        description="Read a video frame by frame, run the model on each frame (resized to the model's input "
                    "size), and write the video with the class token's attention heatmap overlaid.")
    p.add_argument("video", help="input video file")
    add_analysis_arguments(p, "output video (.mp4, codec mp4v)")
    p.add_argument("--block", type=int, default=-1, help="block whose attention is shown (default last)")
    p.add_argument("--head", default="mean", help="'mean' over heads (default) or a head index")
    p.add_argument("--token", choices=("cls", "dist"), default="cls", help="query token")
    p.add_argument("--alpha", type=float, default=0.5, help="heatmap opacity")
    p.add_argument("--batch-size", type=int, default=4, help="frames per forward pass (bounds memory)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from tqdm import tqdm

    from ..video import attention_video

    if not os.path.isfile(args.video):
        raise FileNotFoundError(f"video not found: {args.video}")
    if args.batch_size < 1:
        raise ValueError("--batch-size must be at least 1")
    head = _head(args.head)
    net, recipe, info = load_for_analysis(args.model, args.checkpoint, args.random_weights)
    with tqdm(desc=info["name"], unit="frame", file=sys.stderr) as bar:
        result = attention_video(args.video, args.out, net, recipe, block=args.block, head=head, token=args.token,
                                 alpha=args.alpha, batch_size=args.batch_size, max_frames=args.max_frames,
                                 on_frame=lambda n: bar.update(n - bar.n))
    print(f"{result['frames']} frames ({result['size'][1]}x{result['size'][0]}, {result['fps']:g} fps) "
          f"written to {result['path']}")
    return 0
