"""What every part of the app shares: its limits and choices, and how a failure becomes one line on the page."""

from __future__ import annotations

SAMPLES = ("china.jpg", "flower.jpg")  # scikit-learn's bundled photos (sklearn.datasets.load_sample_image)
UPLOAD = "upload"
CROP = "centre crop (the weights' recipe)"
ASPECT = "keep aspect ratio (any grid)"
RESIZE_MODES = (CROP, ASPECT)
DEFAULT_MODEL = "deit_small_distilled_patch16_224.fb_in1k"  # small, classifies, and has two prefix tokens
MAX_UPLOAD_BYTES = 50 * 2 ** 20
MAX_FILE_SIZE = "50mb"  # the same limit for Gradio's upload route
MAX_PIXELS = 50_000_000  # decoded pixels; more is refused with a message (decompression bombs, memory)
MAX_MODELS = 2  # models kept loaded: a ViT-B/16 holds some 350 MB, a ViT-L/14 about 1.2 GB
MAX_IMAGES = 32  # forward passes kept and upload digests remembered
CACHE_BYTES = 1 << 30  # forward passes kept (attention arrays); the latest one is always kept
PICTURE_SIDES = (192, 448)  # pictures are scaled so that their longer side falls in this range
MASK_KEEP = 0.6


class InputError(ValueError):
    """Bad input that the page reports as a message (an unreadable upload, an unknown model, a block out of
    range)."""


def describe_error(error: BaseException) -> str:
    """The one-line message the page shows for an error (never a traceback)."""
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    text = (str(error).strip() or type(error).__name__).splitlines()[0]
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return f"out of memory ({text[:200]}); try a smaller image, the centre crop or a smaller model"
    if isinstance(error, (ValueError, KeyError, OSError, ImportError, TypeError)):
        return text
    return f"unexpected {type(error).__name__}: {text}"


def whole(value, what: str) -> int:
    """`value` as an int, or an InputError naming `what` (a slider sends 3.0, a text box "3")."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a whole number, got {value!r}") from None
    if not f.is_integer():
        raise InputError(f"{what} must be a whole number, got {value!r}")
    return int(f)


__all__ = ["ASPECT", "CACHE_BYTES", "CROP", "DEFAULT_MODEL", "InputError", "MASK_KEEP", "MAX_FILE_SIZE", "MAX_IMAGES",
           "MAX_MODELS", "MAX_PIXELS", "MAX_UPLOAD_BYTES", "PICTURE_SIDES", "RESIZE_MODES", "SAMPLES", "UPLOAD",
           "describe_error", "whole"]
