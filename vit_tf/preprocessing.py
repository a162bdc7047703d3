"""Eval preprocessing of each weight tag (timm's eval transform: resize shorter side, centre crop, normalise), with
checked decoding: EXIF orientation, every PIL mode to 8-bit RGB, a pixel limit against decompression bombs, and very
large images decoded at a reduced scale.

Pixel limit: images with more pixels than `max_pixels` (argument), else $VIT_TF_MAX_IMAGE_PIXELS, else PIL's
`Image.MAX_IMAGE_PIXELS` (89,478,485 by default) are refused with a ValueError; 0 or "none" means no limit.

Reduced-scale decoding (`draft=True`, the default): a JPEG is decoded by libjpeg at 1/2, 1/4 or 1/8 scale
(`Image.draft`) and other 8-bit images are box-reduced (`Image.reduce`) only when the reduced image still has at least
`DRAFT_MARGIN` (8) times the pixels per side that the recipe's resize needs. Images below that size (with the
224/256 recipes: shorter side under 4096 pixels) are decoded at full size and match timm exactly. Above it the
result differs from a full-size decode by at most 8/255 per pixel before normalisation, under 0.5/255 on average
(worst measured over ~4000 random cases: 6/255 on one pixel of a 16x16 crop; 4/255 on sharp-edged JPEGs at 224;
1/255 on photo-like ones)
for bilinear, bicubic and lanczos recipes; `draft=False` always decodes at full size. Preprocessing a 12000x12000
baseline JPEG peaks 68 MB above its starting RSS (562 MB with draft=False). Progressive JPEGs still need libjpeg's
full-size coefficient buffer.

Very elongated images (resized image over 64 crops, aspect ratio beyond about 50:1 with 224/256 recipes) and reduced
decodes resample only the cropped region: within 1/255 of resize-then-crop for bilinear, bicubic and lanczos; with
"nearest" a sample on a pixel boundary may take the neighbouring pixel.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import re
import threading
import warnings
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .registry import Recipe, default_recipe, resolve

_PIL_FILTERS = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
                "lanczos": Image.LANCZOS}
_FILTER_SUPPORT = {"bicubic": 2.0, "bilinear": 1.0, "nearest": 0.5, "lanczos": 3.0}

MAX_PIXELS_ENV = "VIT_TF_MAX_IMAGE_PIXELS"
DRAFT_MARGIN = 8
# A resize whose full output would exceed this many crops (only very elongated images: aspect ratio beyond ~50:1
# with the 224/256 recipes) resamples just the cropped region, so memory stays at the crop's size.
_FULL_RESIZE_LIMIT = 64
_ORIENTATION = 0x0112
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_OPEN_LOCK = threading.Lock()


def get_recipe(model_or_name) -> Recipe:
    """The eval recipe of a model (`model.recipe`: models from `create_model`, `vit_tf.load` and SavedModels that
    carry one), of a registry name (a weight name's recipe; an architecture's default), or a `Recipe` itself."""
    if isinstance(model_or_name, Recipe):
        return model_or_name
    if isinstance(model_or_name, str):
        arch, entry = resolve(model_or_name)
        return entry.recipe if entry is not None else default_recipe(arch)
    recipe = getattr(model_or_name, "recipe", None)
    if recipe is None:
        raise ValueError(f"this {type(model_or_name).__name__} carries no eval recipe; pass a registry name or a "
                         f"vit_tf.Recipe")
    return recipe


# -- pixel limit -------------------------------------------------------------------------------------------------------
def image_pixel_limit(max_pixels: Optional[int] = None) -> Optional[int]:
    """The pixel limit in force, None for no limit: `max_pixels` if given (0 = no limit), else
    $VIT_TF_MAX_IMAGE_PIXELS (an integer; 0 or "none" = no limit), else PIL's `Image.MAX_IMAGE_PIXELS`."""
    if max_pixels is not None:
        if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) or max_pixels < 0:
            raise ValueError(f"max_pixels must be a non-negative integer (0 = no limit), got {max_pixels!r}")
        return int(max_pixels) or None
    env = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if env:
        if env.lower() == "none":
            return None
        try:
            value = int(env)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"{MAX_PIXELS_ENV}={env!r} is not a pixel count; use a non-negative integer such as "
                             f"200000000, or 0 / none for no limit")
        return value or None
    return Image.MAX_IMAGE_PIXELS


def _too_many_pixels(name: str, size, pixels: int, limit: int, exact: bool = True) -> ValueError:
    needed = max(pixels, limit + 1)
    shape = f"{size[0]}x{size[1]} = " if size else ("" if exact else "more than ")
    return ValueError(
        f"{name} is {shape}{pixels:,} pixels, more than the limit of {limit:,} (a guard against decompression "
        f"bombs). If you trust the file, raise the limit: set the environment variable {MAX_PIXELS_ENV}={needed} "
        f"(or 'none' for no limit) or pass max_pixels={needed} to vit_tf.preprocess / to_rgb_image")


def _check_pixels(name: str, size, limit: Optional[int]) -> None:
    pixels = int(size[0]) * int(size[1])
    if limit is not None and pixels > limit:
        raise _too_many_pixels(name, size, pixels, limit)


def _bomb_error(name: str, error: Exception, limit: Optional[int]) -> ValueError:
    # PIL's own message is the only place that carries the pixel count here.
    found = re.search(r"\((\d+) pixels\)", str(error))
    pil_limit = Image.MAX_IMAGE_PIXELS or 0
    pixels = int(found.group(1)) if found else 2 * pil_limit
    return _too_many_pixels(name, None, pixels, limit if limit is not None else 2 * pil_limit, exact=bool(found))


def _open(source, limit: Optional[int]) -> ImageFile.ImageFile:
    """Image.open with our pixel limit in place of PIL's: its warning is silenced, and its error threshold (twice
    `Image.MAX_IMAGE_PIXELS`) is lifted for this call when `limit` allows more. The lock keeps concurrent calls
    (tf.data workers) from seeing each other's setting."""
    with _OPEN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        lift = saved is not None and (limit is None or limit > 2 * saved)
        if lift:
            Image.MAX_IMAGE_PIXELS = None if limit is None else limit // 2 + 1
        try:
            return Image.open(source)
        finally:
            if lift:
                Image.MAX_IMAGE_PIXELS = saved


# -- decoding ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DecodedImage:
    """An upright 8-bit RGB image, possibly decoded at a reduced scale.

    image: the RGB PIL image. size: (W, H) of the upright full-resolution image. box: (x0, y0, x1, y1), the region
    of `image` (its pixel coordinates) that holds the full-resolution image; (0, 0, W, H) when not reduced.
    """

    image: Image.Image
    size: Tuple[int, int]
    box: Tuple[float, float, float, float]

    @property
    def factor(self) -> float:
        """Full-resolution pixels per decoded pixel (1 when decoded at full size)."""
        return self.size[0] / (self.box[2] - self.box[0])


def _resized_size(w: int, h: int, recipe: Recipe) -> Tuple[int, int]:
    th, tw = recipe.input_size
    if th != tw:
        return math.floor(tw / recipe.crop_pct), math.floor(th / recipe.crop_pct)
    scale = math.floor(th / recipe.crop_pct)
    # torchvision.Resize(int): the shorter side becomes `scale`, the longer one is truncated proportionally.
    return (scale, int(scale * h / w)) if w <= h else (int(scale * w / h), scale)


def _reduction(size, recipe: Optional[Recipe]) -> int:
    """Largest integer factor that keeps DRAFT_MARGIN x the pixels per side that the recipe's resize needs."""
    if recipe is None:
        return 1
    rw, rh = _resized_size(size[0], size[1], recipe)
    return max(1, min(size[0] // (DRAFT_MARGIN * rw), size[1] // (DRAFT_MARGIN * rh)))


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_ORIENTATION, 1))
    except Exception:  # unreadable EXIF: treat the pixels as upright rather than refuse the image
        return 1
    return value if 1 <= value <= 8 else 1


def _transpose_box(box, size, orientation: int):
    """Where region `box` of an image of `size` lands after ImageOps.exif_transpose for `orientation`."""
    x0, y0, x1, y1 = box
    w, h = size
    return {
        2: (w - x1, y0, w - x0, y1),          # mirror left-right
        3: (w - x1, h - y1, w - x0, h - y0),  # rotate 180
        4: (x0, h - y1, x1, h - y0),          # mirror top-bottom
        5: (y0, x0, y1, x1),                  # transpose
        6: (h - y1, x0, h - y0, x1),          # rotate 270 (clockwise)
        7: (h - y1, w - x1, h - y0, w - x0),  # transverse
        8: (y0, w - x1, y1, w - x0),          # rotate 90
    }.get(orientation, box)


def _gray_to_uint8(im: Image.Image, name: str) -> Image.Image:
    """Mode I;16*, I or F -> L by the data's real range (never clipped at 255).

    I;16*: value * 255 / 65535. I: the same for values in 0..65535 (PIL opens many 16-bit PNG/TIFF files as I),
    otherwise min..max -> 0..255. F: values in [0, 1] times 255, otherwise min..max -> 0..255. Constant images
    outside those ranges become 0.
    """
    a = np.asarray(im)
    if im.mode == "F" and not np.isfinite(a).all():
        raise ValueError(f"{name} (mode F, 32-bit float) contains NaN/Inf pixels")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode.startswith("I;16") or (im.mode == "I" and lo >= 0 and hi <= 65535):
        offset, scale = 0.0, 255.0 / 65535.0
    elif im.mode == "F" and lo >= 0 and hi <= 1:
        offset, scale = 0.0, 255.0
    else:
        offset, scale = lo, (255.0 / (hi - lo) if hi > lo else 0.0)
    out = np.empty(a.shape, np.uint8)
    rows = max(1, (1 << 20) // max(1, a.shape[1]))  # about 1M pixels at a time: float temporaries stay small
    for r in range(0, a.shape[0], rows):
        chunk = (a[r:r + rows].astype(np.float64) - offset) * scale
        out[r:r + rows] = np.clip(np.round(chunk), 0, 255)
    return Image.fromarray(out)  # uint8 (H, W): mode L


def _to_rgb(im: Image.Image, name: str) -> Image.Image:
    """Any PIL mode -> 8-bit RGB; alpha (and palette or colour-key transparency) is composited on white."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _gray_to_uint8(im, name).convert("RGB")
    try:
        if mode in _ALPHA_MODES or "transparency" in im.info:
            if mode in ("La", "RGBa"):  # premultiplied: PIL converts these to RGBA only via their plain forms
                im = im.convert(mode.upper())
            rgba = im.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return im.convert("RGB")
    except ValueError as e:
        raise ValueError(f"{name}: PIL cannot convert image mode {mode} to RGB ({e})") from e


def _describe(image) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "image bytes"
    if isinstance(image, np.ndarray):
        return "image array"
    filename = getattr(image, "filename", None) or getattr(image, "name", None)
    return str(filename) if isinstance(filename, (str, os.PathLike)) and str(filename) else "image"


def _check_file(path: str) -> None:
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory, not an image file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"image not found: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"{path} is not a regular file (a device, socket or pipe), not an image file")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"cannot read {path}: permission denied")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path} is not a readable image: the file is empty (0 bytes)")


def _unreadable(name: str, error: Exception, head: bytes = b"") -> ValueError:
    if isinstance(error, UnidentifiedImageError):
        start = f"; it starts with {head[:16]!r}" if head else ""
        reason = f"not an image format PIL can read{start}"
    else:
        text = str(error) or type(error).__name__
        truncated = "truncat" in text.lower()
        reason = f"the file is truncated or corrupt ({text})" if truncated else f"{type(error).__name__}: {text}"
    return ValueError(f"{name} is not a readable image: {reason}")


def _head(source) -> bytes:
    try:
        if isinstance(source, str):
            with open(source, "rb") as f:
                return f.read(16)
        if isinstance(source, io.BytesIO):
            return source.getvalue()[:16]
    except OSError:
        pass
    return b""


def _load_file(source, name: str, recipe: Optional[Recipe], limit: Optional[int],
               exif: bool = True) -> DecodedImage:
    try:
        im = _open(source, limit)
    except Image.DecompressionBombError as e:
        raise _bomb_error(name, e, limit) from None
    except PermissionError as e:
        raise PermissionError(f"cannot read {name}: permission denied") from e
    except MemoryError:
        raise
    except Exception as e:  # PIL reports non-images and broken headers with many exception types
        raise _unreadable(name, e, _head(source)) from e
    try:
        _check_pixels(name, im.size, limit)
        full_size, drafted = im.size, None
        if recipe is not None and isinstance(im, ImageFile.ImageFile) and im.format in ("JPEG", "MPO"):
            orientation = _orientation(im) if exif else 1  # a JPEG's EXIF is in its header
            upright = full_size[::-1] if orientation >= 5 else full_size
            if _reduction(upright, recipe) > 1:
                # libjpeg scales by 1/2, 1/4 or 1/8 while decoding: the full-size image never exists in memory.
                rw, rh = (DRAFT_MARGIN * s for s in _resized_size(*upright, recipe))
                drafted = im.draft(im.mode, (rh, rw) if orientation >= 5 else (rw, rh))
        try:
            im.load()
        except Image.DecompressionBombError as e:
            raise _bomb_error(name, e, limit) from None
        except MemoryError:
            raise
        except Exception as e:
            raise _unreadable(name, e) from e
        orientation = _orientation(im) if exif else 1
        upright = full_size[::-1] if orientation >= 5 else full_size
        if drafted is not None:
            box, factor = tuple(float(v) for v in drafted[1]), 1
        else:
            box, factor = (0.0, 0.0, float(im.width), float(im.height)), _reduction(upright, recipe)
        decoded = _finish(im, name, recipe, upright, box, orientation, factor)
    except BaseException:
        im.close()
        raise
    if decoded.image is not im:
        im.close()
    elif getattr(im, "fp", None) is not None:  # animated images keep their file open: detach the first frame
        decoded = dataclasses.replace(decoded, image=im.copy())
        im.close()
    return decoded


def _finish(im: Image.Image, name: str, recipe, upright, box, orientation: int, factor: int) -> DecodedImage:
    """Orientation, box-reduction of big 8-bit images, conversion to RGB; never modifies `im` in place."""
    result = im
    if orientation != 1:
        box = _transpose_box(box, result.size, orientation)
        result = ImageOps.exif_transpose(result)
    if factor > 1 and result.mode in ("L", "LA", "RGB", "RGBA"):
        result = result.reduce(factor)
        box = (0.0, 0.0, upright[0] / factor, upright[1] / factor)
    result = _to_rgb(result, name)
    return DecodedImage(result, (int(upright[0]), int(upright[1])), tuple(float(v) for v in box))


def _from_array(image: np.ndarray, name: str) -> Image.Image:
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (H, W[, C]), got {image.dtype}; scale floats yourself")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(f"{name} must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {image.shape}")
    return Image.fromarray(np.ascontiguousarray(image))


def decode_image(image, recipe: Optional[Recipe] = None, *, max_pixels: Optional[int] = None,
                 name: Optional[str] = None, exif: bool = True) -> DecodedImage:
    """Decode an image upright to 8-bit RGB, at a reduced scale when `recipe` is given and the image is far larger
    than the recipe's resize needs (see the module docstring).

    Args:
        image: a path, bytes, binary file object, PIL image, or uint8 array (H, W), (H, W, 1|3|4).
        recipe: the recipe the image is for; None decodes at full size.
        max_pixels: pixel limit for files and not-yet-loaded PIL images (see `image_pixel_limit`).
        name: how errors refer to the image (default: its path or kind).
        exif: apply the EXIF orientation (False: the stored pixel order, as timm's and the official ImageNet eval
            loaders read images, so that published accuracies reproduce).
    Returns:
        `DecodedImage`.
    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError; ValueError for unreadable, empty, truncated or
        too-large images; TypeError for other input types.
    """
    name = name or _describe(image)
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        _check_file(path)
        return _load_file(path, name, recipe, image_pixel_limit(max_pixels), exif)
    if isinstance(image, (bytes, bytearray, memoryview)):
        if len(image) == 0:
            raise ValueError(f"{name} is not a readable image: no bytes given")
        return _load_file(io.BytesIO(bytes(image)), name, recipe, image_pixel_limit(max_pixels), exif)
    if isinstance(image, np.ndarray):
        im = _from_array(image, name)
        return DecodedImage(_to_rgb(im, name), im.size, (0.0, 0.0, float(im.width), float(im.height)))
    if isinstance(image, Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"{name} is empty: {image.width}x{image.height} pixels")
        if isinstance(image, ImageFile.ImageFile) and image.tile:  # opened but not decoded yet
            _check_pixels(name, image.size, image_pixel_limit(max_pixels))
            try:
                image.load()
            except MemoryError:
                raise
            except Exception as e:
                raise _unreadable(name, e) from e
        orientation = _orientation(image) if exif else 1
        upright = image.size[::-1] if orientation >= 5 else image.size
        box = (0.0, 0.0, float(image.width), float(image.height))
        return _finish(image, name, recipe, upright, box, orientation, _reduction(upright, recipe))
    if hasattr(image, "read"):
        return _load_file(image, name, recipe, image_pixel_limit(max_pixels), exif)
    raise TypeError(f"expected a path, bytes, file object, PIL image or uint8 array, got {type(image).__name__}")


def to_rgb_image(image, *, max_pixels: Optional[int] = None) -> Image.Image:
    """A path, bytes, file object, PIL image or uint8 array (H, W), (H, W, 1|3|4) -> upright RGB PIL image at full
    size.

    EXIF orientation is applied; alpha is composited on white; 16-bit and float modes are scaled by their real range
    (see `decode_image`). Files with more than `max_pixels` pixels are refused (see `image_pixel_limit`).
    """
    rgb = decode_image(image, max_pixels=max_pixels).image
    return rgb.copy() if rgb is image else rgb  # never hand the caller's own object back


# -- resize, crop, normalise -------------------------------------------------------------------------------------------
def _resample_region(image: Image.Image, size, resample, box, support: float) -> Image.Image:
    """`image.resize(size, resample, box=box)` as two explicit passes, horizontal first, over only the rows the
    vertical filter reads. Matches resizing the whole image and cropping (up to PIL's float32 box coordinates);
    PIL's one-call box path does not when one axis is enlarged and the other reduced."""
    if resample == Image.NEAREST:
        return image.resize(size, resample, box=box)
    x0, y0, x1, y1 = box
    reach = support * max((y1 - y0) / size[1], 1.0) + 2.0
    r0, r1 = max(0, math.floor(y0 - reach)), min(image.height, math.ceil(y1 + reach))
    strip = image.crop((0, r0, image.width, r1))
    strip = strip.resize((size[0], r1 - r0), resample, box=(x0, 0, x1, r1 - r0))
    return strip.resize(size, resample, box=(0, y0 - r0, size[0], y1 - r0))


def resize_and_crop(image, recipe: Recipe) -> Image.Image:
    """Shorter side to floor(size / crop_pct) (timm), then a centre crop of `recipe.input_size`.

    Args:
        image: an RGB PIL image, or a `DecodedImage` (geometry computed on its full-resolution size).
    Returns:
        RGB PIL image of size `recipe.input_size`.
    """
    decoded = image if isinstance(image, DecodedImage) else None
    if decoded is not None:
        image, (w, h), content = decoded.image, decoded.size, decoded.box
    else:
        w, h = image.size
        content = (0.0, 0.0, float(w), float(h))
    th, tw = recipe.input_size
    rw, rh = _resized_size(w, h, recipe)
    if rw < tw or rh < th:
        raise ValueError(f"image resized to {rw}x{rh} is smaller than the crop {tw}x{th}")
    top, left = int(round((rh - th) / 2.0)), int(round((rw - tw) / 2.0))
    resample = _PIL_FILTERS[recipe.interpolation]
    full = content == (0.0, 0.0, float(image.width), float(image.height)) and image.size == (w, h)
    if full and rw * rh <= _FULL_RESIZE_LIMIT * tw * th:
        # The exact timm path: resize the whole image, then crop.
        if (rw, rh) != image.size:
            image = image.resize((rw, rh), resample)
        return image.crop((left, top, left + tw, top + th))
    cx0, cy0, cx1, cy1 = content
    sx, sy = (cx1 - cx0) / rw, (cy1 - cy0) / rh  # decoded pixels per resized pixel
    box = (cx0 + left * sx, cy0 + top * sy, cx0 + (left + tw) * sx, cy0 + (top + th) * sy)
    return _resample_region(image, (tw, th), resample, box, _FILTER_SUPPORT[recipe.interpolation])


def normalize(pixels: np.ndarray, recipe: Recipe) -> np.ndarray:
    """uint8 (..., 3) -> float32 ((x / 255) - mean) / std."""
    x = pixels.astype(np.float32) / 255.0
    return (x - np.asarray(recipe.mean, np.float32)) / np.asarray(recipe.std, np.float32)


def preprocess(image, model_name, *, max_pixels: Optional[int] = None, draft: bool = True,
               exif: bool = True) -> np.ndarray:
    """Image(s) -> model input with the weights' own eval recipe.

    Args:
        image: a path, bytes, binary file object, PIL image or uint8 array, or a list of them. Every PIL mode
            becomes RGB (see `to_rgb_image`); EXIF orientation is applied; animated images give their first frame.
        model_name: registry name, model from `create_model`, or a `Recipe`.
        max_pixels: pixel limit for files (default $VIT_TF_MAX_IMAGE_PIXELS or PIL's; 0 = none).
        draft: decode images far larger than needed at a reduced scale (see the module docstring); False decodes
            at full size.
        exif: apply EXIF orientation (see `decode_image`; `vit-tf eval` passes False, as timm's eval does).
    Returns:
        float32 array (B, H, W, 3), B = 1 for a single image.
    """
    recipe = get_recipe(model_name)
    many = isinstance(image, (list, tuple))
    images = image if many else [image]
    if not images:
        raise ValueError("no images given")
    batch = []
    for i, im in enumerate(images):
        name = f"image {i}" if many and not isinstance(im, (str, os.PathLike)) else None
        decoded = decode_image(im, recipe if draft else None, max_pixels=max_pixels, name=name, exif=exif)
        batch.append(normalize(np.asarray(resize_and_crop(decoded, recipe)), recipe))
    return np.stack(batch).astype(np.float32)
