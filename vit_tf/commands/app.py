"""`vit-tf app [--model M ...] [--port P] [--host 127.0.0.1] [--share]`: the attention explorer in the browser
(Gradio).

A thin layer over `vit_tf.app.build_app` and `serve`; the page's views are the analysis toolkit's functions. Needs
the app extra: `pip install 'vit_tf[app]'`.
"""

from __future__ import annotations

import importlib.util
import ipaddress

from .common import check_model, non_negative_int, positive_int

DEFAULT_HOST = "127.0.0.1"


def add_parser(subparsers):
    p = subparsers.add_parser(
        "app", help="interactive attention explorer in the browser (Gradio; pip install 'vit_tf[app]')",
        description="Serve the attention explorer: upload a photo or pick a sample, choose a model, and see the "
                    "top-5 prediction, per-head maps of any block and token, DINO masks, rollout, the block x head "
                    "grid, mean attention distance, where a clicked patch attends and class explanations; download "
                    "the figures and summary.json. Models load once; the forward pass on each image is cached "
                    "(bounded: --max-models, --max-images), so controls answer without running the model again. "
                    "Serves on 127.0.0.1 unless --host says otherwise; --share adds a temporary public link.")
    p.add_argument("--model", action="append", default=None,
                   help="registry name or directory written by `vit-tf convert`, listed first in the page's model "
                        "box (repeat to list several; the first is selected; default: a small DeiT)")
    p.add_argument("--checkpoint", default=None,
                   help="local checkpoint (.npz, .pth, .safetensors) for the first --model, filled into the page")
    p.add_argument("--random-weights", action="store_true",
                   help="SMOKE TEST ONLY: start with random weights ticked (no download); the page says so")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on; 0.0.0.0 makes the app reachable from other machines")
    p.add_argument("--port", type=positive_int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument("--share", action="store_true",
                   help="also serve on a temporary public link through Gradio's share servers (needs internet); "
                        "anyone with the link can use the app, so it then opens no paths on this machine but those "
                        "given here (--model, --checkpoint)")
    p.add_argument("--no-local-paths", action="store_true",
                   help="the page opens no folders or checkpoints on this machine but those given here (always so "
                        "with --share)")
    p.add_argument("--max-pixels", type=non_negative_int, default=None,
                   help="decoded pixels allowed per image (0: no limit; default 50 million)")
    p.add_argument("--max-models", type=positive_int, default=None,
                   help="models kept loaded, least recently used out first (default 2)")
    p.add_argument("--max-images", type=positive_int, default=None,
                   help="forward passes (model, image, resize) kept and uploads remembered (default 32)")
    p.set_defaults(func=run, check=check)
    return p


def check(args):
    """Everything that can be checked before TensorFlow is loaded."""
    if importlib.util.find_spec("gradio") is None:
        raise ImportError("the app needs Gradio, which is not installed: pip install 'vit_tf[app]'")
    for model in args.model or ():
        check_model(model, None, args.random_weights)
    if args.model:
        check_model(args.model[0], args.checkpoint, args.random_weights)
    elif args.checkpoint is not None:
        raise ValueError("--checkpoint goes with --model (the registry name whose architecture it fits)")
    if args.port is not None and args.port > 65535:
        raise ValueError(f"--port {args.port}: ports run from 1 to 65535")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args) -> int:
    from ..app import MAX_IMAGES, MAX_MODELS, MAX_PIXELS, build_app, serve

    local_paths = not (args.share or args.no_local_paths)
    demo = build_app(args.model or (), checkpoint=args.checkpoint, random_weights=args.random_weights,
                     seed=args.seed, max_pixels=MAX_PIXELS if args.max_pixels is None else args.max_pixels,
                     max_models=args.max_models or MAX_MODELS, max_images=args.max_images or MAX_IMAGES,
                     local_paths=local_paths)
    if not _is_loopback(args.host):
        print(f"vit-tf app: serving on {args.host}: reachable from other machines on this network")
    if args.share:
        print("vit-tf app: --share: anyone with the public link can use the app; it opens no paths on this machine "
              "but those given on the command line")
    serve(demo, args.host, args.port, share=args.share)  # blocks until interrupted (Ctrl-C)
    return 0
