"""`vit-tf video IN.mp4 --model M --out OUT.mp4`: attention heatmaps overlaid on every frame, streamed."""

from __future__ import annotations

import argparse
import sys

from .common import (RANDOM_WEIGHTS, add_analysis_arguments, check_block, check_input_file, check_model,
                     check_output_file, check_token, is_random, load_for_analysis, model_config, positive_int,
                     unit_interval)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")


def head_index(value: str):
    """--head: "mean" or a head index."""
    if value == "mean":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'mean' or a head index, got {value!r}") from None


def add_parser(subparsers):
    p = subparsers.add_parser(
        "video", help="overlay per-frame attention heatmaps on a video",
        description="Read a video frame by frame, run the model on each frame (resized to the model's input "
                    "size), and write the video with the query token's attention heatmap overlaid (written "
                    "under a temporary name, renamed when complete).")
    p.add_argument("video", help="input video file")
    add_analysis_arguments(p, "output video (.mp4, codec mp4v)")
    p.add_argument("--block", type=int, default=-1, help="block whose attention is shown (-1: the last)")
    p.add_argument("--head", type=head_index, default="mean", help="'mean' over heads or a head index")
    p.add_argument("--token", choices=("cls", "dist"), default="cls",
                   help="query token: class token, or distillation token (distilled DeiT)")
    p.add_argument("--alpha", type=unit_interval(), default=0.5, help="heatmap opacity")
    p.add_argument("--batch-size", type=positive_int, default=4, help="frames per forward pass (bounds memory)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after this many frames")
    p.set_defaults(func=run, check=check)
    return p


def _check_options(args, config, name):
    check_block(config, args.block, name)
    check_token(config, args.token, name)
    if config is not None and args.head != "mean" and not -config.num_heads <= args.head < config.num_heads:
        raise ValueError(f"--head {args.head}: out of range for {name}, which has {config.num_heads} heads "
                         f"(use 0..{config.num_heads - 1} or mean)")


def check(args):
    check_input_file(args.video, "video")
    check_model(args.model, args.checkpoint, args.random_weights)
    check_output_file(args.out, "--out", VIDEO_SUFFIXES)
    _check_options(args, model_config(args.model), args.model)


def run(args) -> int:
    from tqdm import tqdm

    from ..video import attention_video

    net, recipe, info = load_for_analysis(args.model, args.checkpoint, args.random_weights, args.seed)
    _check_options(args, net.config, info["name"])
    caption = f"{info['name']}: {RANDOM_WEIGHTS.upper()}" if is_random(info) else None
    with tqdm(desc=info["name"], unit="frame", file=sys.stderr) as bar:
        result = attention_video(args.video, args.out, net, recipe, block=args.block, head=args.head,
                                 token=args.token, alpha=args.alpha, batch_size=args.batch_size,
                                 max_frames=args.max_frames, on_frame=lambda n: bar.update(n - bar.n),
                                 caption=caption)
    print(f"{result['frames']} frames ({result['size'][1]}x{result['size'][0]}, {result['fps']:g} fps) "
          f"written to {result['path']}")
    return 0
