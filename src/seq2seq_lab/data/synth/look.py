"""Rendering realistic text lines: many typefaces, uneven paper, print and scan defects.

:func:`render_real_line` draws a label at its natural width (the aspect ratio a
printed line of that text has), ``height`` pixels high:

1. glyphs: a face that covers every character of the line (per-line coverage,
   :mod:`~seq2seq_lab.data.synth.faces`), drawn character by character at twice
   the final size, with random character spacing, small size changes and
   baseline jitter within the line, a heavier or lighter stroke, a
   horizontal stretch (condensed or extended faces), and now and then an
   elastic distortion of the strokes (shapes the faces at hand do not draw);
2. layout: a slight rotation, a gentle curvature of the baseline, and now and
   then an underline or a rule line across the image;
3. paper: a gray background with a smooth random texture, an uneven lighting
   gradient and a random contrast between ink and paper;
4. camera and scanner (albumentations): perspective (optionally drawn here, with
   the ends of a long line sheared no more than a short line's), gaussian or
   motion blur, sensor noise and JPEG compression.

Every random choice comes from the ``numpy.random.Generator`` passed in (the
albumentations pipeline is reseeded from it), so a generator seeded per sample
index gives the same image in any process.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from seq2seq_lab.data.synth.faces import FontFace
from seq2seq_lab.data.synth.render import check_ranges, settings_dict
from seq2seq_lab.errors import ConfigError

__all__ = ["LookConfig", "render_real_line"]

_SS = 2  # supersampling: glyphs are drawn at twice the final size, then shrunk


@dataclass
class LookConfig:
    """How realistic lines look; ranges are ``[low, high]``, ``p_*`` probabilities.

    height: image height in pixels; the width follows the text (at most ``max_width``, squashed beyond).
    font_size: glyph size as a fraction of ``height``.
    spacing: extra space after each character, as a fraction of the glyph size (negative: tighter).
    size_jitter: largest relative size change of one character within the line.
    baseline_jitter: largest vertical shift of one character, as a fraction of the glyph size.
    p_bold, p_thin: a heavier stroke (outline) or a thinner one (eroded: a 3 x 3 minimum at twice
        the size takes about a pixel of the final size off every stroke's width).
    thin_keep: a thinner stroke is eroded only where the erosion keeps at least this share of the
        glyphs' ink; elsewhere it loses its anti-aliased rim instead (coverage below half dropped).
        The erosion wipes hairlines out: at the sizes ``ocr_zh_cpu`` draws it keeps 3-25% of the ink
        of AR PL UMing, UKai, SungtiL and KaitiM and 19-71% of seven other training faces', where
        the rim cut keeps 75-95%. ``null`` (the default, so corpora made before it keep their
        images): the erosion always.
    stretch: the glyphs' horizontal scale, as condensed or extended faces draw them; ``[1, 1]``
        (the default) draws nothing, so corpora made before it keep their images.
    p_distort, distort: an elastic distortion of the strokes, smooth over a quarter of the glyph
        size; its strength, the displacements' standard deviation in glyph sizes, is drawn from
        ``distort``: 0.01 bends strokes a little, 0.04 a lot. ``p_distort=0`` (the default) draws
        nothing, so corpora made before it keep their images.
    p_rotate, max_angle: a rotation of the whole line, in degrees.
    rotate_span: the rotation's angle is drawn up to ``max_angle`` on a line up to this many glyph
        sizes long, and scaled down on a longer one so that its ends rise no further. ``null`` (the
        default, so corpora made before it keep their images): up to ``max_angle`` whatever the
        length, so that a 40-character line's ends rise by a whole line height and, the rotated
        line kept whole at the same height, its glyphs shrink to about half the size of a
        10-character line's; a line detector's crop follows a skewed line instead.
    p_curve, max_curve: a sine-shaped baseline, amplitude as a fraction of the glyph size.
    p_underline, p_rule: an underline below the text; a thin rule line at a random height.
    contrast: gray-level difference between paper and ink.
    p_texture, p_gradient: a smooth paper texture; an uneven lighting gradient.
    p_perspective, p_blur, p_motion_blur, p_noise, p_jpeg: camera/scanner defects (albumentations).
    perspective_span: the perspective's corners move sideways by a share of the line's width up to
        this many line heights, and no further on a wider line. ``null`` (the default, so corpora
        made before it keep their images): albumentations' ``Perspective``, which moves them by a
        share of the whole width and so shears the ends of a long line more than a camera would
        (an 800-pixel line's ends lean 2.7 times as far as a 320-pixel one's). A number draws the
        same kind of perspective here (:func:`_perspective`).
    jpeg_quality: JPEG quality range.
    """

    height: int = 32
    max_width: int = 800
    font_size: tuple[float, float] = (0.62, 0.92)
    spacing: tuple[float, float] = (-0.04, 0.2)
    size_jitter: float = 0.08
    baseline_jitter: float = 0.06
    p_bold: float = 0.2
    p_thin: float = 0.1
    thin_keep: float | None = None
    stretch: tuple[float, float] = (1.0, 1.0)
    p_distort: float = 0.0
    distort: tuple[float, float] = (0.01, 0.03)
    p_rotate: float = 0.3
    max_angle: float = 1.5
    rotate_span: float | None = None
    p_curve: float = 0.1
    max_curve: float = 0.08
    p_underline: float = 0.04
    p_rule: float = 0.04
    contrast: tuple[float, float] = (50.0, 230.0)
    p_texture: float = 0.6
    p_gradient: float = 0.5
    p_perspective: float = 0.2
    perspective_span: float | None = None
    p_blur: float = 0.4
    blur_sigma: tuple[float, float] = (0.3, 1.0)
    blur_kernel: int = 3
    p_motion_blur: float = 0.1
    p_noise: float = 0.4
    p_jpeg: float = 0.6
    jpeg_quality: tuple[float, float] = (30.0, 95.0)
    p_margin: float = 0.0
    margin: tuple[float, float] = (0.05, 0.4)

    def __post_init__(self) -> None:
        check_ranges(self, "look")
        if self.blur_kernel < 0 or (self.blur_kernel and self.blur_kernel % 2 == 0):
            raise ConfigError(f"look.blur_kernel must be odd, or 0 to size it from the sigma; got {self.blur_kernel}")
        if self.margin[0] < 0:
            raise ConfigError(f"look.margin must be >= 0 (a share of the text's width), got {list(self.margin)}")
        if self.height < 8 or self.max_width < self.height:
            raise ConfigError(f"look.height must be >= 8 and max_width >= height, got {self.height}, {self.max_width}")
        if self.thin_keep is not None and not 0.0 <= self.thin_keep <= 1.0:
            raise ConfigError(f"look.thin_keep must be a share in [0, 1] or null, got {self.thin_keep}")
        for key in ("perspective_span", "rotate_span"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ConfigError(f"look.{key} must be > 0 or null, got {value}")
        if not 0 <= self.contrast[0] <= 255:
            raise ConfigError(f"look.contrast must lie in [0, 255], got {list(self.contrast)}")

    def to_dict(self) -> dict:
        return settings_dict(self)


# ocr_zh_cpu's 26 faces draw at ~720 (face, size) pairs (size_jitter within font_size's range): a cache of 512
# reopened a font file on 3 lines in 4; these hold them all for ~100 MB more per process
@functools.lru_cache(maxsize=2048)
def _font(face: FontFace, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(face.path, size, index=face.index, layout_engine=ImageFont.Layout.BASIC)


@functools.lru_cache(maxsize=65536)
def _advance(face: FontFace, size: int, char: str) -> float:
    """How far ``char`` moves the pen in ``face`` at ``size`` (asked twice per character, once per line)."""
    return _font(face, size).getlength(char)


def _glyph_mask(text: str, face: FontFace, size: int, rng: np.random.Generator, cfg: LookConfig) -> Image.Image:
    """White-on-black ink of ``text``, one character at a time, cropped to the ink (``size`` at 2x)."""
    spacing = rng.uniform(*cfg.spacing) * size
    scales = 1.0 + rng.uniform(-cfg.size_jitter, cfg.size_jitter, size=len(text))
    shifts = rng.uniform(-cfg.baseline_jitter, cfg.baseline_jitter, size=len(text)) * size
    stroke = int(rng.random() < cfg.p_bold) * max(1, round(size / 28))
    thin = rng.random() < cfg.p_thin
    sizes = [max(6, round(size * s)) for s in scales]
    width = int(sum(_advance(face, s, c) for c, s in zip(text, sizes)) + spacing * len(text) + 2 * size)
    mask = Image.new("L", (max(width, size), 2 * size), 0)
    draw = ImageDraw.Draw(mask)
    x, baseline = size * 0.5, size * 1.5
    for c, s, dy in zip(text, sizes, shifts):
        if not c.isspace():
            draw.text((x, baseline + dy), c, fill=255, font=_font(face, s), anchor="ls", stroke_width=stroke,
                      stroke_fill=255)
        x += _advance(face, s, c) + spacing + (size * 0.3 if c.isspace() else 0.0)
    if thin:
        mask = _thinner(mask, cfg.thin_keep)
    if cfg.p_distort and rng.random() < cfg.p_distort:  # no draw at 0: corpora made before keep their images
        mask = _distort(mask, size, rng, cfg)
    box = mask.getbbox()
    mask = mask.crop(box) if box else mask
    if cfg.stretch != (1.0, 1.0):
        scale = rng.uniform(*cfg.stretch)
        mask = mask.resize((max(1, round(mask.width * scale)), mask.height), Image.Resampling.BICUBIC)
    return mask


_RIM_CUT = [0 if v < 128 else round((v - 128) * 255 / 127) for v in range(256)]  # coverage below half dropped


def _thinner(mask: Image.Image, keep: float | None) -> Image.Image:
    """A thinner stroke of the white-on-black ``mask``: eroded (3 x 3 minimum) where that keeps at least
    ``keep`` of its ink (always when ``keep`` is None), else with its anti-aliased rim cut."""
    eroded = mask.filter(ImageFilter.MinFilter(3))
    if keep is None:
        return eroded
    ink = np.asarray(mask, dtype=np.float32).sum()
    return eroded if np.asarray(eroded, dtype=np.float32).sum() >= keep * ink else mask.point(_RIM_CUT)


def _distort(mask: Image.Image, size: int, rng: np.random.Generator, cfg: LookConfig) -> Image.Image:
    """The strokes of ``mask`` (glyphs ``size`` pixels high, with half that of margin around them) moved
    by a smooth random field: a random displacement every quarter of a glyph, ``distort`` glyph sizes
    (standard deviation), interpolated between. The field albumentations' ``ElasticTransform`` makes by
    blurring per-pixel noise took 4 ms a line, more than all the rest of the drawing; this one is the
    same kind of elastic distortion at about a quarter of that (0.9 ms)."""
    w, h = mask.size
    cell = max(2.0, size / 4)
    grid = (max(2, round(h / cell) + 1), max(2, round(w / cell) + 1))
    sd = rng.uniform(*cfg.distort) * size
    dx, dy = (cv2.resize(rng.normal(0.0, sd, size=grid).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
              for _ in range(2))
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return Image.fromarray(cv2.remap(np.asarray(mask), xs + dx, ys + dy, cv2.INTER_LINEAR, borderValue=0))


def _bend(mask: Image.Image, size: int, rng: np.random.Generator, cfg: LookConfig) -> Image.Image:
    """Maybe rotate, maybe curve the baseline (columns shifted along half a sine period or more) of
    ``mask``, the ink of glyphs ``size`` pixels high."""
    if rng.random() < cfg.p_rotate:
        angle = float(rng.uniform(-cfg.max_angle, cfg.max_angle))
        if cfg.rotate_span is not None:  # no steeper than a line rotate_span glyphs long rises at max_angle
            angle *= min(1.0, cfg.rotate_span * size / mask.width)
        mask = mask.rotate(angle, Image.Resampling.BICUBIC, expand=True)
    if rng.random() < cfg.p_curve:
        w, h = mask.size
        amp = rng.uniform(-cfg.max_curve, cfg.max_curve) * h
        periods, phase = rng.uniform(0.5, 1.5), rng.uniform(0, 2 * math.pi)
        pad = int(abs(amp)) + 1
        src = np.pad(np.asarray(mask), ((pad, pad), (0, 0)))
        xs = np.arange(w, dtype=np.float32)
        map_x = np.broadcast_to(xs, (h + 2 * pad, w)).astype(np.float32)
        dy = amp * np.sin(2 * math.pi * periods * xs / w + phase)
        map_y = (np.arange(h + 2 * pad, dtype=np.float32)[:, None] + dy[None, :]).astype(np.float32)
        mask = Image.fromarray(cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderValue=0))
    return mask


def _paper(h: int, w: int, rng: np.random.Generator, cfg: LookConfig) -> tuple[np.ndarray, float]:
    """``(h, w)`` float32 background gray levels and the ink level."""
    contrast = rng.uniform(*cfg.contrast)
    dark_ink = rng.random() < 0.85  # mostly dark text on light paper
    lo, hi = (contrast, 255.0) if dark_ink else (0.0, 255.0 - contrast)
    bg = rng.uniform(lo, hi) if hi > lo else lo
    paper = np.full((h, w), bg, dtype=np.float32)
    if rng.random() < cfg.p_texture:  # smooth blotches plus a fine grain
        coarse = rng.normal(0.0, rng.uniform(3, 14), size=(max(2, h // 8), max(2, w // 8))).astype(np.float32)
        paper += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        paper += rng.normal(0.0, rng.uniform(0, 4), size=(h, w)).astype(np.float32)
    if rng.random() < cfg.p_gradient:  # light falling off across the line
        angle = rng.uniform(0, 2 * math.pi)
        xs, ys = np.arange(w, dtype=np.float32)[None, :], np.arange(h, dtype=np.float32)[:, None]
        ramp = (xs * math.cos(angle) / max(w, 1) + ys * math.sin(angle) / max(h, 1))  # (h, w)
        paper *= 1.0 + rng.uniform(-0.3, 0.3) * (ramp - ramp.mean())
    ink = bg - contrast if dark_ink else bg + contrast
    return paper, float(ink)


_PERSPECTIVE_SCALE = (0.01, 0.04)  # the corners' moves' standard deviation, as shares of the width and height


def _perspective(image: np.ndarray, rng: np.random.Generator, span: float) -> np.ndarray:
    """A camera's slight perspective on ``image (H, W)``, as albumentations' ``Perspective(fit_output=True)``
    draws it, but with the corners' sideways moves a share of ``min(W, span * H)`` rather than of ``W``.

    Each corner moves outward by ``|N(0, s)|`` (``s`` drawn from the same range; folded below 0.32) of
    that width across and of ``H`` up and down; the whole image is warped onto those corners, with its
    border replicated. Returns the warped image ``(H', W')``, at least as large.
    """
    h, w = image.shape
    scale = rng.uniform(*_PERSPECTIVE_SCALE)
    moves = np.mod(np.abs(rng.normal(0.0, scale, size=(4, 2))), 0.32) * np.array([min(w, span * h), h])
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    moved = corners + moves * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])  # top-left, top-right, ...
    moved -= moved.min(axis=0)
    size = np.ceil(moved.max(axis=0)).astype(int)
    matrix = cv2.getPerspectiveTransform(corners, moved.astype(np.float32))
    return cv2.warpPerspective(image, matrix, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


@functools.lru_cache(maxsize=4)
def _camera(cfg_key: tuple) -> A.Compose:
    """The albumentations pipeline of a look; ``cfg_key`` is its ``(setting, value)`` pairs (all hashable
    once ``check_ranges`` has made the ranges tuples)."""
    cfg = LookConfig(**dict(cfg_key))
    lo, hi = (int(q) for q in cfg.jpeg_quality)
    return A.Compose([
        A.Perspective(scale=_PERSPECTIVE_SCALE, fit_output=True, border_mode=cv2.BORDER_REPLICATE,
                      p=cfg.p_perspective if cfg.perspective_span is None else 0.0),
        A.OneOf([A.GaussianBlur(blur_limit=(cfg.blur_kernel,) * 2, sigma_limit=cfg.blur_sigma),
                 A.MotionBlur(blur_limit=(3, 5))],
                p=min(1.0, cfg.p_blur + cfg.p_motion_blur)),
        A.GaussNoise(std_range=(0.01, 0.06), p=cfg.p_noise),
        A.ImageCompression(quality_range=(lo, hi), p=cfg.p_jpeg),
    ])


def render_real_line(text: str, faces: list[FontFace], rng: np.random.Generator,
                     cfg: LookConfig | None = None) -> tuple[Image.Image, FontFace]:
    """Draw ``text`` as a grayscale line ``cfg.height`` pixels high; returns the image and its face.

    Args:
        text: the label; at least one of ``faces`` must cover it (see ``faces_for``).
        faces: the faces to choose from; the caller passes those covering ``text``.
        rng: the source of every random choice.
        cfg: the look; defaults to :class:`LookConfig`'s.
    """
    cfg = cfg or LookConfig()
    if not faces:
        raise ConfigError(f"no font face covers {text!r}")
    face = faces[int(rng.integers(0, len(faces)))]
    size = max(12, round(rng.uniform(*cfg.font_size) * cfg.height * _SS))
    mask = _bend(_glyph_mask(text, face, size, rng, cfg), size, rng, cfg)
    h_full = cfg.height * _SS
    margin_x = [int(v) for v in rng.integers(_SS, size // 2 + _SS + 1, size=2)]
    if cfg.p_margin and rng.random() < cfg.p_margin:  # no draw at 0: corpora made before keep their images
        blank = rng.uniform(*cfg.margin) * mask.width
        left = rng.random()
        margin_x = [margin_x[0] + round(blank * left), margin_x[1] + round(blank * (1.0 - left))]
    top = int(rng.integers(0, max(1, h_full - mask.height) + 1)) if mask.height < h_full else 0
    canvas_h = max(h_full, mask.height)
    alpha = np.zeros((canvas_h, mask.width + sum(margin_x)), dtype=np.float32)
    alpha[top:top + mask.height, margin_x[0]:margin_x[0] + mask.width] = np.asarray(mask, dtype=np.float32) / 255.0
    if rng.random() < cfg.p_underline:
        y = min(canvas_h - 1, top + mask.height + int(rng.integers(1, _SS * 2 + 1)))
        alpha[y:y + _SS, margin_x[0]:margin_x[0] + mask.width] = 1.0
    if rng.random() < cfg.p_rule:
        y = int(rng.integers(0, canvas_h - 1))
        alpha[y:y + 1, :] = np.maximum(alpha[y:y + 1, :], rng.uniform(0.3, 0.8))
    paper, ink = _paper(*alpha.shape, rng, cfg)
    pixels = paper + (ink - paper) * alpha
    width = min(cfg.max_width, max(cfg.height // 2, round(alpha.shape[1] * cfg.height / canvas_h)))
    small = np.rint(cv2.resize(np.clip(pixels, 0, 255), (width, cfg.height), interpolation=cv2.INTER_AREA))
    if cfg.perspective_span is not None and rng.random() < cfg.p_perspective:
        small = _perspective(small.astype(np.uint8), rng, cfg.perspective_span)
    camera = _camera(tuple(vars(cfg).items()))
    camera.set_random_seed(int(rng.integers(0, 2**31 - 1)))
    out = camera(image=small.astype(np.uint8))["image"]
    if out.shape[0] != cfg.height:  # a perspective (fit to its output) changes the size: back to the height
        out = cv2.resize(out, (min(cfg.max_width, max(1, round(out.shape[1] * cfg.height / out.shape[0]))),
                               cfg.height), interpolation=cv2.INTER_AREA)
    return Image.fromarray(out, "L"), face
