"""Cutting the blank paper beside a line's text (``data.trim_margins``): where it cuts, where it must not,
and that the data module, export and predict all apply it alike."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from seq2seq_lab.data.ocr import OCRDataModule
from seq2seq_lab.data.ocr.transforms import LineImageTransform
from seq2seq_lab.deploy.runtime import TRIM_PAD, median3x3, text_columns, trim_margins


def _line(width: int, text: tuple[int, int] | None, ink: float = 120.0, seed: int = 0) -> Image.Image:
    """A 32-pixel-high line on noisy paper lit unevenly (150 on the left to 230 on the right, noise
    sigma 6), with glyph-like strokes 2 pixels wide, ``ink`` levels darker than the paper, in columns
    ``text = [x0, x1)``."""
    rng = np.random.default_rng(seed)
    paper = np.linspace(150, 230, width)[None, :] + rng.normal(0, 6, (32, width))
    strokes = Image.new("L", (width, 32), 0)
    if text:
        draw = ImageDraw.Draw(strokes)
        x0, x1 = text
        for x in range(x0, x1 - 20 + 1, 22):  # one "glyph" per 22 columns: a box, a stroke across, one down
            draw.rectangle((x, 6, x + 19, 25), outline=255, width=2)
            draw.line((x, 15, x + 19, 15), fill=255, width=2)
            draw.line((x + 9, 6, x + 9, 25), fill=255, width=2)
        draw.line((x1 - 1, 6, x1 - 1, 25), fill=255, width=2)  # the last stroke ends at x1
    line = paper - ink * (np.asarray(strokes, dtype=np.float64) / 255)
    return Image.fromarray(np.clip(line, 0, 255).astype(np.uint8), "L")


def test_the_median_filter_is_pillows_to_the_pixel_edges_included():
    rng = np.random.default_rng(0)
    shapes = [(1, 1), (1, 7), (5, 1), (2, 2), (3, 3), (32, 280), (17, 43)]
    for h, w in shapes + [tuple(rng.integers(1, 60, 2)) for _ in range(30)]:
        a = rng.integers(0, 256, (h, w), dtype=np.uint8)
        a[:, : w // 3] = rng.integers(0, 2, (h, w // 3)) * 255  # salt and pepper: ties everywhere
        expected = np.asarray(Image.fromarray(a).filter(ImageFilter.MedianFilter(3)))
        assert np.array_equal(median3x3(a), expected), (h, w)


def test_the_text_is_found_on_noisy_unevenly_lit_paper_and_a_quarter_of_the_height_kept_beside_it():
    img = _line(320, (90, 212))
    x0, x1 = text_columns(img)
    assert abs(x0 - 90) <= 2 and abs(x1 - 212) <= 2
    trimmed = trim_margins(img)
    pad = round(TRIM_PAD * 32)
    assert trimmed.size == (x1 - x0 + 2 * pad, 32)
    assert np.array_equal(np.asarray(trimmed), np.asarray(img)[:, x0 - pad : x1 + pad])  # cut, never resampled
    rgb = trim_margins(img.convert("RGB"))  # found on the gray copy, cut from the colour one
    assert rgb.mode == "RGB" and rgb.size == trimmed.size


def test_tight_blank_and_faint_lines_are_left_as_they_are():
    tight = _line(140, (3, 137))
    assert trim_margins(tight).size == tight.size
    blank = _line(300, None)
    assert trim_margins(blank) is blank
    faint = _line(300, (100, 200), ink=25)  # strokes as far from the paper as its noise goes
    assert trim_margins(faint) is faint


def test_a_loose_generated_line_is_cut_back_to_its_text(cjk_faces):
    from seq2seq_lab.data.synth.look import LookConfig, render_real_line

    plain = dict(p_rotate=0.0, p_curve=0.0, p_perspective=0.0, p_blur=0.0, p_motion_blur=0.0, p_noise=0.0,
                 p_jpeg=0.0, p_texture=0.0, p_gradient=0.0, p_underline=0.0, p_rule=0.0, contrast=(150, 150))
    for seed in range(4):
        cfg = LookConfig(p_margin=1.0, margin=(0.5, 0.5), **plain)
        loose, _ = render_real_line("我们的国家在前进", cjk_faces[:1], np.random.default_rng(seed), cfg)
        a = np.asarray(loose, dtype=np.float32)
        ink = np.flatnonzero(a.min(axis=0) < a.max() - 40)  # the truth: no defects drawn
        x0, x1 = text_columns(loose)
        assert ink[0] - 2 <= x0 <= ink[0] + 2 and ink[-1] - 1 <= x1 <= ink[-1] + 3
        pad = round(TRIM_PAD * loose.height)
        assert trim_margins(loose).width <= ink[-1] - ink[0] + 1 + 2 * pad + 4 < 0.8 * loose.width


def test_the_data_module_cuts_every_split_and_says_so_in_its_contract(tmp_path):
    (tmp_path / "images").mkdir()
    _line(320, (90, 212)).save(tmp_path / "images" / "a.png")
    (tmp_path / "test.txt").write_text("images/a.png ab\n", encoding="utf-8")
    (tmp_path / "charset.txt").write_text("a\nb\n", encoding="utf-8")
    widths = {}
    for trim in (False, True):
        dm = OCRDataModule(test=str(tmp_path / "test.txt"), charset=str(tmp_path / "charset.txt"), num_workers=0,
                           width=400, channels=1, trim_margins=trim)
        dm.setup("test")
        image, width = dm.datasets["test"].transform((tmp_path / "images" / "a.png").read_bytes())
        assert dm.contract.trim_margins is trim and image.shape == (1, 32, width)
        widths[trim] = width
    assert widths[False] == 320 and abs(widths[True] - (122 + 2 * round(TRIM_PAD * 32))) <= 3


def test_read_cuts_only_the_lines_the_model_reads_and_a_bad_value_is_refused(tmp_path):
    (tmp_path / "images").mkdir()
    _line(320, (90, 212)).save(tmp_path / "images" / "a.png")
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.txt").write_text("images/a.png ab\n", encoding="utf-8")
    (tmp_path / "charset.txt").write_text("a\nb\n", encoding="utf-8")
    lists = {split: str(tmp_path / f"{split}.txt") for split in ("train", "val", "test")}
    dm = OCRDataModule(**lists, charset=str(tmp_path / "charset.txt"), num_workers=0, width=400, channels=1,
                       trim_margins="read")
    dm.setup(None)
    data = (tmp_path / "images" / "a.png").read_bytes()
    widths = {split: dm.datasets[split].transform(data)[1] for split in ("train", "val", "test")}
    assert widths["train"] == widths["val"] == 320  # training and validation see the line as drawn
    assert abs(widths["test"] - (122 + 2 * round(TRIM_PAD * 32))) <= 3
    assert dm.contract.trim_margins is True  # predict and export read new lines cut
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="trim_margins must be true, false or 'read'"):
            OCRDataModule(test=lists["test"], charset=str(tmp_path / "charset.txt"), trim_margins=bad)


def test_the_transform_trims_before_it_resizes():
    data = io.BytesIO()
    _line(320, (90, 212)).resize((640, 64)).save(data, format="PNG")  # twice the size: cut, then halved
    image, width = LineImageTransform(32, 400, 1, trim=True)(data.getvalue())
    assert abs(width - (122 + 2 * round(TRIM_PAD * 32))) <= 3
