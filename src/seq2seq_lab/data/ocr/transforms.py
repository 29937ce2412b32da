"""Text-line image transforms with Pillow only: decode, resize to a fixed height, pad, normalise.

:class:`LineImageTransform` turns encoded image bytes into a float32 tensor
``(C, H, W)`` in ``[-1, 1]``:

1. decode (EXIF orientation applied; transparency composited on white);
2. convert to ``L`` (``channels=1``) or ``RGB`` (``channels=3``);
3. resize to height ``H`` keeping the aspect ratio (area filter when shrinking,
   bilinear when enlarging); an image that would then be wider than ``W`` is
   squashed to exactly ``W``;
4. optionally augment (small affine, brightness/contrast, blur);
5. pad on the right to ``W`` by repeating the last column, so the padding looks
   like the line's own background rather than a hard black edge;
6. scale ``0..255`` to ``[-1, 1]``.

Randomness comes from torch's global generator, which DataLoader seeds per worker.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps, ImageStat

__all__ = ["LineImageTransform", "decode_image"]

_MODES = {1: "L", 3: "RGB"}


def decode_image(data: bytes, mode: str) -> Image.Image:
    """Decode encoded image bytes into a fully loaded ``mode`` (``"L"`` / ``"RGB"``) image.

    Raises:
        PIL.UnidentifiedImageError, OSError, ValueError, ...: the bytes are not a readable image.
    """
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return img.convert(mode)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


class LineImageTransform:
    """Encoded image bytes -> float32 ``(C, H, W)`` in ``[-1, 1]``, plus the content width.

    Args:
        height: output height ``H``.
        width: output width ``W``.
        channels: 1 (grayscale) or 3 (RGB).
        augment: apply light random augmentation (training only).

    ``transform(data)`` returns ``(image, content_width)``: ``content_width`` is
    the number of columns (``<= W``) that hold the resized line before padding.
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

    def resize(self, img: Image.Image) -> Image.Image:
        """Resize to height ``H`` keeping the aspect ratio; squash to ``W`` when wider."""
        w, h = img.size
        new_w = min(self.width, max(1, round(w * self.height / h)))
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
        img = self.resize(decode_image(data, self.mode))
        if self.augment:
            img = self.augment_image(img)
        arr = np.array(img, dtype=np.uint8)  # (h, w) or (h, w, 3), a writable copy
        if arr.ndim == 2:
            arr = arr[:, :, None]
        content = arr.shape[1]
        if content < self.width:
            arr = np.pad(arr, ((0, 0), (0, self.width - content), (0, 0)), mode="edge")
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).to(torch.float32)  # (C, H, W)
        return x.div_(127.5).sub_(1.0), content
