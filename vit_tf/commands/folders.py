"""Folders of images for the dataset commands (`distance`, `similarity`, `heads`): the folder, model and label
checks made before TensorFlow loads, labels found from ImageNet layouts, one progress bar per pass over the images,
each unreadable file reported once, and the results written together.

Nothing at module level imports TensorFlow, NumPy or tqdm.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .common import check_model, output_directory, write_text


# -- checks before TensorFlow is loaded ------------------------------------------------------------------------------
def check_image_folder(path: str, hint: Optional[str] = None):
    """An existing folder of images; a file or a missing path is an error naming it (`hint`: what to use for one
    image instead)."""
    if os.path.isfile(path):
        raise NotADirectoryError(f"image folder {path}: is a file, not a folder of images"
                                 + (f" ({hint})" if hint else ""))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"image folder not found: {path}")


def check_models(args):
    """Every repeated `--model` (registry name or converted folder); `--checkpoint` goes with a single one."""
    if args.checkpoint is not None and len(args.model) > 1:
        raise ValueError("--checkpoint goes with a single --model; to compare checkpoints pass directories "
                         "written by `vit-tf convert` as --model")
    for model in args.model:
        check_model(model, args.checkpoint, args.random_weights)


def add_label_arguments(parser):
    """--labels FILE / --no-labels: the labels of a folder laid out as ImageNet (see `find_labelled`)."""
    parser.add_argument("--labels", default=None, help="label file of a flat ILSVRC2012_val_* folder (default: found "
                                                       "beside the images)")
    parser.add_argument("--no-labels", action="store_true",
                        help="ignore labels: agreement with the unmasked top-1 instead of accuracy")


def check_labels(args):
    if args.labels is not None and args.no_labels:
        raise ValueError("--labels and --no-labels contradict each other")
    if args.labels is not None and not os.path.isfile(args.labels):
        raise FileNotFoundError(f"--labels {args.labels}: file not found")


def find_labelled(image_dir: str, labels: Optional[str] = None,
                  no_labels: bool = False) -> Tuple[List[str], Optional[Dict[str, int]], str]:
    """-> (image paths, {path: class index} or None, how the labels were found). Labels come from ImageNet layouts
    (class folders named by WordNet id, or flat ILSVRC2012_val_* files with a label file; see
    `vit_tf.evaluation.find_images`); any other folder gives its images without labels."""
    from ..analysis import list_images
    from ..evaluation import find_images

    if not no_labels:
        try:
            paths, classes, info = find_images(image_dir, labels)
            return paths, dict(zip(paths, classes)), f"{info['layout']} ({info['labels']})"
        except (FileNotFoundError, ValueError) as e:
            if labels is not None:
                raise
            reason = str(e)
    else:
        reason = "--no-labels"
    return list_images(image_dir), None, f"none ({reason}): agreement with the unmasked top-1"


# -- while the images stream -----------------------------------------------------------------------------------------
class Skipped:
    """Unreadable files, each reported once on stderr (above the progress bar) however many passes meet it; call it
    as the `on_skip(path, reason)` of `vit_tf.analysis.iter_batches`."""

    def __init__(self):
        self.reasons: Dict[str, str] = {}

    def __call__(self, path: str, reason: str):
        if path not in self.reasons:
            from tqdm import tqdm

            self.reasons[path] = reason
            tqdm.write(f"skipped {path}: {reason}", file=sys.stderr)

    def __len__(self) -> int:
        return len(self.reasons)

    def report(self) -> List[dict]:
        """[{"path", "reason"}] for the commands' JSON."""
        return [{"path": p, "reason": why} for p, why in self.reasons.items()]

    def no_images(self, image_dir: str) -> ValueError:
        """The error of a pass that found no readable image."""
        return ValueError(f"no readable images in {image_dir} ({len(self)} files skipped)")


def progress_bar(paths: Sequence[str], limit: Optional[int], desc: str):
    """A tqdm bar on stderr counting the images one pass reads (all of `paths`, or the first `limit`); advance it
    with `bar.update(1)` as `iter_batches`'s `on_item`."""
    from tqdm import tqdm

    total = len(paths) if limit is None else min(limit, len(paths))
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr)


# -- results -----------------------------------------------------------------------------------------------------------
def write_results(out: str, texts: Dict[str, str], figures: Iterable[Tuple[str, object]], report_name: str,
                  report: dict, dpi: int):
    """Write a command's results into `out` at once (`output_directory`: nothing is left by a failure): text files
    {name: contents} (CSV), figures [(file name, matplotlib figure)] and the JSON report."""
    from .. import plotting

    with output_directory(out) as tmp:
        for name, text in texts.items():
            write_text(os.path.join(tmp, name), text)
        for filename, fig in figures:
            plotting.save_figure(fig, os.path.join(tmp, filename), dpi)
        write_text(os.path.join(tmp, report_name), json.dumps(report, indent=2) + "\n")
