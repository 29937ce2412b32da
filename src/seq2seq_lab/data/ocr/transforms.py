"""Text-line image transforms with Pillow only: decode, resize to a fixed height, normalise.

:class:`LineImageTransform` turns encoded image bytes into a float32 tensor
``(C, H, W)`` in ``[-1, 1]``:

1. decode (EXIF orientation applied; transparency composited on white);
2. convert to ``L`` (``channels=1``) or ``RGB`` (``channels=3``);
3. resize to height ``H`` keeping the aspect ratio (area filter when shrinking,
   bilinear when enlarging); an image that would then be wider than the maximum
   width ``W`` is squashed to exactly ``W``, a narrower one is not stretched;
4. optionally augment (small affine, brightness/contrast, blur);
5. scale ``0..255`` to ``[-1, 1]``.

Images keep their own width ``w <= W``; the collate pads a batch to its widest
image (:mod:`seq2seq_lab.data.ocr.widths`).

Randomness comes from torch's global generator, which DataLoader seeds per worker.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps, ImageStat

__all__ = ["MAX_PIXELS", "ImageTooLargeError", "LineImageTransform", "decode_image"]

_MODES = {1: "L", 3: "RGB"}
MAX_PIXELS = 50_000_000  # width * height above which decode_image refuses an image (a decompression bomb)
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # 16/32-bit integer and float grayscale


class ImageTooLargeError(ValueError):
    """An image has more than :data:`MAX_PIXELS` pixels; refused before decoding."""


def _open(data: bytes) -> Image.Image:
    """``Image.open`` (header only) that refuses more than :data:`MAX_PIXELS` pixels."""
    limit = f"more than the limit of {MAX_PIXELS:,} pixels (transforms.MAX_PIXELS)"
    try:
        with warnings.catch_warnings():  # Pillow's own, higher, limit warns; ours is the one that counts
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise ImageTooLargeError(f"image too large: {err}; {limit}") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise ImageTooLargeError(f"image too large: {w}x{h} = {w * h:,} pixels, {limit}")
    return img


def _to_8bit(img: Image.Image) -> Image.Image:
    """A 16/32-bit integer or float grayscale image as ``L``, scaled (never clipped) to ``0..255``.

    ``I;16*``: by the dtype (``/ 257``). ``I``: as 16-bit when every value is in
    ``0..65535`` (16-bit PNGs open as ``I``), else by its own ``min..max``. ``F``:
    ``* 255`` when every value is in ``[0, 1]``, else by its ``min..max``. NaN is 0;
    a constant image outside the dtype range is black.
    """
    arr = np.nan_to_num(np.asarray(img, dtype=np.float64))  # (h, w)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if img.mode.startswith("I;16") or (img.mode == "I" and lo >= 0 and hi <= 65535):
        arr = arr / 257.0
    elif img.mode == "F" and lo >= 0 and hi <= 1:
        arr = arr * 255.0
    else:
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(np.rint(arr).astype(np.uint8), "L")


def decode_image(data: bytes, mode: str) -> Image.Image:
    """Decode encoded image bytes into a fully loaded ``mode`` (``"L"`` / ``"RGB"``) image.

    16-bit and float grayscale are scaled to ``0..255`` (see :func:`_to_8bit`), not clipped.

    Raises:
        ImageTooLargeError: more than :data:`MAX_PIXELS` pixels ("image too large", with the limit).
        PIL.UnidentifiedImageError, OSError, ValueError, ...: the bytes are not a readable image.
    """
    with _open(data) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode in _WIDE_MODES:
            img = _to_8bit(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return img.convert(mode)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


class LineImageTransform:
    """Encoded image bytes -> float32 ``(C, H, w)`` in ``[-1, 1]``, plus its width ``w``.

    Args:
        height: output height ``H``.
        width: maximum output width ``W``: wider lines are squashed to it.
        channels: 1 (grayscale) or 3 (RGB).
        augment: apply light random augmentation (training only).

    ``transform(data)`` returns ``(image, w)``: the line resized to height ``H``
    with its aspect ratio, ``w = scaled_width(size) <= W`` columns, unpadded.
    """

    def __init__(self, height: int = 32, width: int = 280, channels: int = 3, augment: bool = False):
        if channels not in _MODES:
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        if height < 1 or width < 1:
            raise ValueError(f"height and width must be >= 1, got {height}, {width}")
        self.height, self.width, self.channels, self.augment = height, width, channels, augment
        self.mode = _MODES[channels]

    def __repr__(self) -> str:
        return (f"LineImageTransform(height={self.height}, width={self.width}, "
                f"channels={self.channels}, augment={self.augment})")

    def scaled_width(self, size: tuple[int, int]) -> int:
        """Width in ``1..W`` of an image of ``size = (w, h)`` resized to height ``H``."""
        w, h = size
        return min(self.width, max(1, round(w * self.height / h)))

    def resize(self, img: Image.Image) -> Image.Image:
        """Resize to height ``H`` keeping the aspect ratio; squash to ``W`` when wider."""
        w, h = img.size
        new_w = self.scaled_width(img.size)
        if (new_w, self.height) == (w, h):
            return img
        shrink = new_w < w and self.height < h
        return img.resize((new_w, self.height), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)

    def augment_image(self, img: Image.Image) -> Image.Image:
        """Small random rotation/shear/scale, brightness/contrast jitter and blur (each with some probability)."""
        if float(torch.rand(())) < 0.5:
            img = self._affine(img)
        if float(torch.rand(())) < 0.5:
            img = ImageEnhance.Brightness(img).enhance(_uniform(0.7, 1.3))
        if float(torch.rand(())) < 0.5:
            img = ImageEnhance.Contrast(img).enhance(_uniform(0.6, 1.4))
        if float(torch.rand(())) < 0.3:
            img = img.filter(ImageFilter.GaussianBlur(_uniform(0.3, 1.0)))
        return img

    def _affine(self, img: Image.Image) -> Image.Image:
        """Rotate by up to 2 degrees, shear by up to 0.15 and scale by 0.9..1.05 about the centre."""
        w, h = img.size
        angle = math.radians(_uniform(-2.0, 2.0))
        shear = _uniform(-0.15, 0.15)
        scale = _uniform(0.9, 1.05)
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        # inverse map (output -> input) of rotation+scale, then x-shear, about the centre
        a, b = cos, -sin + shear * cos
        d, e = sin, cos + shear * sin
        cx, cy = w / 2, h / 2
        c = cx - a * cx - b * cy
        f = cy - d * cx - e * cy
        fill = tuple(round(v) for v in ImageStat.Stat(img).median)  # background: most of a text line
        fill = fill[0] if len(fill) == 1 else fill
        return img.transform((w, h), Image.Transform.AFFINE, (a, b, c, d, e, f),
                             resample=Image.Resampling.BILINEAR, fillcolor=fill)

    def __call__(self, data: bytes) -> tuple[torch.Tensor, int]:
        return self.from_image(decode_image(data, self.mode))

    def from_image(self, img: Image.Image) -> tuple[torch.Tensor, int]:
        """The same for a decoded image (converted to this transform's mode first)."""
        img = self.resize(img if img.mode == self.mode else img.convert(self.mode))
        if self.augment:
            img = self.augment_image(img)
        arr = np.array(img, dtype=np.uint8)  # (h, w) or (h, w, 3), a writable copy
        if arr.ndim == 2:
            arr = arr[:, :, None]
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(torch.float32)  # (C, H, w)
        return x.div_(127.5).sub_(1.0), arr.shape[1]
