"""Text-line image transforms with Pillow only: decode, resize to a fixed height, normalise.

:class:`LineImageTransform` turns encoded image bytes into a float32 tensor
``(C, H, W)`` in ``[-1, 1]``:

1. decode (EXIF orientation applied; transparency composited on white);
2. convert to ``L`` (``channels=1``) or ``RGB`` (``channels=3``), and optionally cut the blank
   paper beside the text off (``trim``: :func:`~seq2seq_lab.deploy.runtime.trim_margins`);
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

import math

import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageStat

from seq2seq_lab.deploy.runtime import (
    MAX_PIXELS, ImageTooLargeError, decode_image, line_array, resize_line, scaled_width, trim_margins,
)

__all__ = ["MAX_PIXELS", "ImageTooLargeError", "LineImageTransform", "decode_image"]

_MODES = {1: "L", 3: "RGB"}


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


class LineImageTransform:
    """Encoded image bytes -> float32 ``(C, H, w)`` in ``[-1, 1]``, plus its width ``w``.

    Args:
        height: output height ``H``.
        width: maximum output width ``W``: wider lines are squashed to it.
        channels: 1 (grayscale) or 3 (RGB).
        augment: apply light random augmentation (training only).
        trim: cut the blank paper beside the text off first, keeping a quarter of the height.

    ``transform(data)`` returns ``(image, w)``: the line resized to height ``H``
    with its aspect ratio, ``w = scaled_width(size) <= W`` columns, unpadded.
    """

    def __init__(self, height: int = 32, width: int = 280, channels: int = 3, augment: bool = False,
                 trim: bool = False):
        if channels not in _MODES:
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        if height < 1 or width < 1:
            raise ValueError(f"height and width must be >= 1, got {height}, {width}")
        self.height, self.width, self.channels, self.augment, self.trim = height, width, channels, augment, trim
        self.mode = _MODES[channels]

    def __repr__(self) -> str:
        return (f"LineImageTransform(height={self.height}, width={self.width}, "
                f"channels={self.channels}, augment={self.augment}, trim={self.trim})")

    def scaled_width(self, size: tuple[int, int]) -> int:
        """Width in ``1..W`` of an image of ``size = (w, h)`` resized to height ``H``."""
        return scaled_width(size, self.height, self.width)

    def resize(self, img: Image.Image) -> Image.Image:
        """Resize to height ``H`` keeping the aspect ratio; squash to ``W`` when wider."""
        return resize_line(img, self.height, self.width)

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
        img = img if img.mode == self.mode else img.convert(self.mode)
        img = self.resize(trim_margins(img) if self.trim else img)
        if self.augment:
            img = self.augment_image(img)
        x = torch.from_numpy(line_array(img))  # (C, H, w)
        return x, x.size(2)
