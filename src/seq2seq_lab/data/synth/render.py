"""Rendering one synthetic text line with Pillow and numpy.

:func:`render_line` draws a label in a random font and size, warps it a little
(rotation, a quadrilateral "perspective"), puts it at a random place on a flat
background of a random gray level, then maybe blurs it and adds noise. The
whole text always lies inside the image, ``margin`` pixels from the borders:
the font shrinks, and at last the warped text is scaled down, until it fits.
Every random choice comes from the ``numpy.random.Generator`` passed in, in a
fixed order, so a generator seeded per sample index gives the same image in
any process.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from seq2seq_lab.errors import ConfigError

__all__ = ["RenderConfig", "load_font", "render_line", "settings_from", "text_mask"]

_MIN_FONT_SIZE = 6


@dataclass
class RenderConfig:
    """How lines look; ranges are ``[low, high]``, probabilities in ``[0, 1]``.

    width, height: image size in pixels.
    mode: ``"L"`` (grayscale) or ``"RGB"`` (gray levels with a slight random tint per channel).
    font_size: font size as a fraction of ``height``.
    margin: pixels kept free of text at every border.
    min_contrast: least difference between the text and background gray levels.
    tint: largest per-channel shift of the colours in RGB mode.
    blur, blur_radius: probability of a gaussian blur, and its radius.
    noise, noise_sigma: probability of additive gaussian noise, and its standard deviation.
    rotate, max_angle: probability of a rotation, and its largest angle in degrees.
    perspective, max_warp: probability of a quadrilateral warp, and how far each
        corner may move, as a fraction of the text height.
    """

    width: int = 280
    height: int = 32
    mode: str = "L"
    font_size: tuple[float, float] = (0.6, 0.9)
    margin: int = 2
    min_contrast: int = 70
    tint: int = 12
    blur: float = 0.3
    blur_radius: tuple[float, float] = (0.3, 1.0)
    noise: float = 0.3
    noise_sigma: tuple[float, float] = (2.0, 8.0)
    rotate: float = 0.3
    max_angle: float = 3.0
    perspective: float = 0.2
    max_warp: float = 0.15

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.mode not in ("L", "RGB"):
            raise ConfigError(f"render.mode must be 'L' or 'RGB', got {self.mode!r}")
        if not 0 <= self.min_contrast <= 127:
            raise ConfigError(f"render.min_contrast must be in 0..127, got {self.min_contrast}")
        if self.width < 2 * self.margin + 4 or self.height < 2 * self.margin + 4:
            raise ConfigError(f"image {self.width}x{self.height} is too small for margin {self.margin}")

    def to_dict(self) -> dict:
        return settings_dict(self)


def check_ranges(settings, key: str = "render") -> None:
    """Check a settings dataclass: ``[low, high]`` pairs (made float tuples) and ``p_*`` probabilities.

    Raises:
        ConfigError: naming the ``<key>.*`` setting.
    """
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, (list, tuple)):
            if len(value) != 2 or value[0] > value[1]:
                raise ConfigError(f"{key}.{f.name} must be [low, high], got {list(value)}")
            setattr(settings, f.name, (float(value[0]), float(value[1])))
        elif f.name.startswith("p_") and not 0.0 <= value <= 1.0:
            raise ConfigError(f"{key}.{f.name} must be a probability in [0, 1], got {value}")


def settings_from(cls, values: Mapping, key: str):
    """``cls(**values)`` for a settings dataclass, with a clear error for a setting it lacks.

    Raises:
        ConfigError: naming ``<key>.<setting>`` and the settings ``cls`` has.
    """
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{key} has no setting {', '.join(unknown)}; its settings are: {', '.join(known)}")
    return cls(**values)


def settings_dict(settings) -> dict:
    """A settings dataclass as plain data (tuples as lists), for manifests and configs."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}


@functools.lru_cache(maxsize=256)
def load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    """A font at a size, cached per process."""
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


def text_mask(text: str, path: str, size: int, pad: int = 0) -> Image.Image:
    """The text drawn in white on black (mode ``L``), cropped to its ink plus ``pad`` pixels."""
    font = load_font(path, size)
    left, top, right, bottom = font.getbbox(text)
    mask = Image.new("L", (max(1, right - left) + 2 * pad, max(1, bottom - top) + 2 * pad), 0)
    ImageDraw.Draw(mask).text((pad - left, pad - top), text, fill=255, font=font)
    return mask


def _fitting_mask(text: str, path: str, size: int, box_w: int, box_h: int) -> Image.Image:
    """The text mask at ``size``, or at the largest smaller size whose mask fits ``box_w`` x ``box_h``."""
    mask = text_mask(text, path, size)
    while (mask.width > box_w or mask.height > box_h) and size > _MIN_FONT_SIZE:
        ratio = min(box_w / mask.width, box_h / mask.height)
        size = max(_MIN_FONT_SIZE, min(size - 1, int(size * ratio)))
        mask = text_mask(text, path, size)
    return mask


def _warp(mask: Image.Image, rng: np.random.Generator, cfg: RenderConfig) -> Image.Image:
    """Maybe rotate and maybe warp the mask; the result is cropped to the ink."""
    if rng.random() < cfg.rotate:
        angle = float(rng.uniform(-cfg.max_angle, cfg.max_angle))
        mask = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    if rng.random() < cfg.perspective:
        # corners of a source quad pushed outward: the whole text stays in the output
        w, h = mask.size
        d = rng.uniform(0.0, cfg.max_warp * h, size=(4, 2))
        quad = (-d[0, 0], -d[0, 1], -d[1, 0], h + d[1, 1], w + d[2, 0], h + d[2, 1], w + d[3, 0], -d[3, 1])
        mask = mask.transform((w, h), Image.Transform.QUAD, tuple(float(v) for v in quad),
                              resample=Image.Resampling.BILINEAR)
    box = mask.getbbox()
    return mask.crop(box) if box else mask


def _colors(rng: np.random.Generator, cfg: RenderConfig) -> tuple[np.ndarray, np.ndarray]:
    """Background and text colours: gray levels ``min_contrast`` apart (per channel in RGB, tinted)."""
    c = cfg.min_contrast
    bg = int(rng.integers(0, 256))
    below, above = max(0, bg - c + 1), max(0, 256 - (bg + c))  # values 0..bg-c and bg+c..255
    r = int(rng.integers(0, below + above))
    fg = r if r < below else bg + c + (r - below)
    channels = 3 if cfg.mode == "RGB" else 1
    bgs = np.full(channels, bg, dtype=np.float32)
    fgs = np.full(channels, fg, dtype=np.float32)
    if channels == 3 and cfg.tint > 0:
        bgs += rng.integers(-cfg.tint, cfg.tint + 1, size=3)
        fgs += rng.integers(-cfg.tint, cfg.tint + 1, size=3)
    return np.clip(bgs, 0, 255), np.clip(fgs, 0, 255)


def render_line(text: str, fonts: list[str], rng: np.random.Generator,
                cfg: RenderConfig | None = None) -> Image.Image:
    """Draw ``text`` as a ``cfg.width`` x ``cfg.height`` image (mode ``cfg.mode``).

    Args:
        text: the label; every character must be drawable by every font in ``fonts``.
        fonts: font file paths to choose from (see :func:`seq2seq_lab.data.synth.fonts.find_fonts`).
        rng: the source of every random choice.
        cfg: the look; defaults to :class:`RenderConfig`'s.
    """
    cfg = cfg or RenderConfig()
    if not fonts:
        raise ConfigError("render_line needs at least one font")
    box_w, box_h = cfg.width - 2 * cfg.margin, cfg.height - 2 * cfg.margin
    path = fonts[int(rng.integers(0, len(fonts)))]
    lo, hi = (max(_MIN_FONT_SIZE, round(f * cfg.height)) for f in cfg.font_size)
    size = int(rng.integers(lo, max(lo, hi) + 1))

    mask = _warp(_fitting_mask(text, path, size, box_w, box_h), rng, cfg)
    if mask.width > box_w or mask.height > box_h:  # a warp, or a text too long for any font size
        ratio = min(box_w / mask.width, box_h / mask.height)
        mask = mask.resize((max(1, int(mask.width * ratio)), max(1, int(mask.height * ratio))),
                           Image.Resampling.BILINEAR)
    x = cfg.margin + int(rng.integers(0, box_w - mask.width + 1))
    y = cfg.margin + int(rng.integers(0, box_h - mask.height + 1))

    bg, fg = _colors(rng, cfg)
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    canvas = np.empty((cfg.height, cfg.width, len(bg)), dtype=np.float32)
    canvas[...] = bg
    canvas[y:y + mask.height, x:x + mask.width] = bg + (fg - bg) * alpha
    image = Image.fromarray(np.rint(canvas).astype(np.uint8).squeeze(-1) if len(bg) == 1
                            else np.rint(canvas).astype(np.uint8), cfg.mode)

    if rng.random() < cfg.blur:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(*cfg.blur_radius))))
    if rng.random() < cfg.noise:
        pixels = np.asarray(image, dtype=np.float32)
        pixels = pixels + rng.normal(0.0, float(rng.uniform(*cfg.noise_sigma)), size=pixels.shape)
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), cfg.mode)
    return image
