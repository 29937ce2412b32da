"""Realistic synthetic lines: text sources, rare characters, per-line font coverage, looks, held-out fonts."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from ocr_fakes import CJK
from seq2seq_lab.data.synth.corpus import CorpusSpec, generate_corpus, spec_from_config
from seq2seq_lab.data.synth.drawer import LineDrawer, make_drawer
from seq2seq_lab.data.synth.faces import CoverageIndex, FontFace, coverage, faces_for, resolve_faces
from seq2seq_lab.data.synth.look import LookConfig, render_real_line
from seq2seq_lab.data.synth.text import TextSampler, read_text_source, to_charset
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.precision import resolve_precision


def test_full_width_forms_map_to_the_charset_half_width_ones():
    allowed = set("12%:，") | set(CJK)
    assert to_charset("１２％：，的", allowed) == "12%:，的"  # '，' is in the charset: kept
    assert to_charset("Ｘ", allowed) == "Ｘ"  # its half-width form is not allowed either: unchanged


def test_builtin_news_is_running_text_without_tags():
    lines = read_text_source("builtin:news")
    assert len(lines) > 10_000
    text = "".join(lines[:200])
    assert "/" not in lines[0] and "中共中央" in text  # "中共中央/nt" lost its tag
    with pytest.raises(ValueError, match="unknown builtin"):
        read_text_source("builtin:nothing")


def test_windows_of_real_text_keep_punctuation_and_digits_in_place():
    lines = ["１９９８年，经济增长８％。", "他说：“我们要继续努力。”"]
    charset = "".join(dict.fromkeys("".join(to_charset(ln, set("0123456789%")) for ln in lines)))
    charset += "0123456789%"
    sampler = TextSampler(charset, 6, 6, lines, policy="skip")
    rng = np.random.default_rng(0)
    joined = [to_charset(ln, set(charset)) for ln in lines]
    for _ in range(50):
        label = sampler.sample(rng)
        assert len(label) == 6 and any(label in ln for ln in joined)


def test_rare_lines_cover_characters_the_text_lacks():
    text = ["我们的国家在前进" * 10]
    charset = "我们的国家在前进龘靐齉"  # the last three never occur in the text
    sampler = TextSampler(charset, 8, 8, text, policy="skip", rare_share=0.5, rare_below=1)
    assert set(sampler.rare) == set("龘靐齉")
    rng = np.random.default_rng(1)
    labels = [sampler.sample(rng) for _ in range(400)]
    with_rare = [lb for lb in labels if set(lb) & set("龘靐齉")]
    assert 0.35 < len(with_rare) / len(labels) < 0.65
    assert set("".join(labels)) >= set("龘靐齉")  # every character is trained
    assert all(len(lb) == 8 for lb in labels)


def test_ascii_lines_bring_latin_words_numbers_and_half_width_punctuation():
    import string

    text = ["我们的国家在前进，经济增长３．５％。" * 5]
    charset = "我们的国家在前进，经济增长。" + string.ascii_letters + string.digits + ".%:-/()?"
    sampler = TextSampler(charset, 10, 10, text, policy="skip", ascii_share=0.5)
    assert not any("．" in s for s in sampler._segments)  # "3．5" -> "3.5"
    rng = np.random.default_rng(2)
    labels = [sampler.sample(rng) for _ in range(3000)]
    assert all(len(lb) == 10 and set(lb) <= set(charset) for lb in labels)
    joined = sampler._segments[0]
    mixed = [lb for lb in labels if lb not in joined]
    assert 0.4 < len(mixed) / len(labels) < 0.6
    trained = set("".join(labels))
    assert trained >= set(string.ascii_letters + string.digits + ".%:-/()?")  # every ASCII character
    assert any(re.search(r"[a-z]{3}", lb) for lb in labels) and any(re.search(r"[0-9]\.[0-9]", lb) for lb in labels)


def test_without_shares_a_label_takes_no_extra_draw():
    """Corpora drawn before ascii_share existed keep their labels for their seed."""
    text = ["我们的国家在前进" * 10]
    charset = "我们的国家在前进abc123"
    sampler = TextSampler(charset, 8, 8, text, policy="skip", ascii_share=0.0)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert [sampler.sample(a) for _ in range(50)] == [sampler._plain(b) for _ in range(50)]
    with pytest.raises(ConfigError, match="rare_share \\+ ascii_share"):
        TextSampler(charset, 8, 8, text, policy="skip", rare_share=0.6, ascii_share=0.6)


def test_ascii_twins_print_full_width_parentheses_as_ascii_in_their_share_of_labels():
    text = ["我们（国家）在前进（经济）增长" * 10]
    charset = "我们国家在前进经济增长（）()"
    sampler = TextSampler(charset, 8, 8, text, policy="skip", ascii_twins="（）", twin_share=0.3)
    rng = np.random.default_rng(3)
    labels = [sampler.sample(rng) for _ in range(2000)]
    paren = [lb for lb in labels if set(lb) & set("（）()")]
    ascii_ = [lb for lb in paren if set(lb) & set("()")]
    assert 0.2 < len(ascii_) / len(paren) < 0.4
    assert not any(set(lb) >= set("（(") or set(lb) >= set("）)") for lb in paren)  # one form per label
    back = str.maketrans("()", "（）")
    assert all(lb.translate(back) in sampler._segments[0] for lb in ascii_)  # the text's window, twins swapped
    # without a share nothing changes and no extra draw is taken
    plain = TextSampler(charset, 8, 8, text, policy="skip", ascii_twins="（）")
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert [plain.sample(a) for _ in range(50)] == [plain._plain(b) for _ in range(50)]
    with pytest.raises(ConfigError, match="'，' has no ASCII twin"):
        TextSampler(charset + "，", 8, 8, text, policy="skip", ascii_twins="，", twin_share=0.5)  # no ',' in it


def test_varied_share_draws_that_share_of_lengths_from_the_range_and_the_rest_at_length():
    text = ["我们的国家在前进，经济增长" * 20]
    charset = "我们的国家在前进，经济增长"
    sampler = TextSampler(charset, 2, 40, text, policy="skip", length=10, varied_share=0.25)
    rng = np.random.default_rng(1)
    lengths = np.array([len(sampler.sample(rng)) for _ in range(4000)])
    varied = lengths[lengths != 10]
    assert 0.2 < len(varied) / len(lengths) < 0.3  # a tenth of the range's draws are 10 too
    assert varied.min() == 2 and varied.max() == 40 and 18 < varied.mean() < 24  # uniform over 2..40
    plain = TextSampler(charset, 2, 40, text, policy="skip")  # without a share: the range, and no extra draw
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert [plain.sample(a) for _ in range(50)] == [plain._plain(b) for _ in range(50)]
    assert len({len(plain.sample(a)) for _ in range(200)}) > 20
    with pytest.raises(ConfigError, match="varied_share needs length"):
        TextSampler(charset, 2, 40, text, policy="skip", varied_share=0.2)
    with pytest.raises(ConfigError, match="varied_share needs length"):
        spec_from_config({"num_train": 1, "num_val": 1, "num_test": 1, "charset": charset, "length": 10,
                          "varied_share": 0.2})
    spec = spec_from_config({"num_train": 1, "num_val": 1, "num_test": 1, "charset": charset, "length": 10,
                             "min_length": 2, "max_length": 40, "varied_share": 0.2})
    assert (spec.min_length, spec.max_length, spec.length, spec.varied_share) == (2, 40, 10, 0.2)
    older = spec_from_config({"num_train": 1, "num_val": 1, "num_test": 1, "charset": charset, "length": 10})
    assert older.length is None and older.varied_share is None  # the manifests of older corpora still match


def test_a_line_is_drawn_only_with_faces_that_have_every_glyph(cjk_faces):
    rare = "丂丄丅丆丏丒丗丟丠両丣並丩丮丯丱丳丵丷丼乀乁乂乄乆乊乑乕乗乚乛乢乣乤乥乧乨乪乫乬乭乮乯"
    narrow = [f for f in cjk_faces if not set(rare) <= coverage(f)]
    if not narrow:
        pytest.skip("every installed CJK face covers the rare test characters")
    face = narrow[0]
    lacking = next(c for c in rare if c not in coverage(face))
    assert face not in faces_for("我们" + lacking, cjk_faces)
    assert face in faces_for("我们 的", cjk_faces)  # spaces need no glyph


def test_the_coverage_index_answers_as_the_character_maps_do(cjk_faces):
    """The drawer's per-character bit masks give, line after line, the faces whose maps hold every glyph."""
    rare = "丂丄丅丆丏丒丗丟丠両丣並丩丮丯丱丳丵丷丼乀乁乂乄乆乊乑乕乗乚乛乢乣乤乥乧乨乪乫乬乭乮乯"
    alphabet = CJK + rare + "，。《》ABC12 "
    index, rng = CoverageIndex(cjk_faces), np.random.default_rng(0)
    answers = set()
    for _ in range(300):
        text = "".join(rng.choice(list(alphabet), size=int(rng.integers(1, 12))))
        expected = [f for f in cjk_faces if {c for c in text if not c.isspace()} <= coverage(f)]
        assert index.covering(text) == expected, text
        answers.add(len(expected))
    if any(not set(rare) <= coverage(f) for f in cjk_faces):
        assert len(answers) > 1  # some lines were covered by fewer faces than others


def test_realistic_line_is_deterministic_for_a_seed_and_keeps_its_aspect(cjk_faces):
    cfg = LookConfig(height=32)
    a, face_a = render_real_line("我们的国家在前进", cjk_faces, np.random.default_rng([7, 3]), cfg)
    b, face_b = render_real_line("我们的国家在前进", cjk_faces, np.random.default_rng([7, 3]), cfg)
    assert face_a == face_b and np.array_equal(np.asarray(a), np.asarray(b))
    assert a.mode == "L" and a.height == 32
    assert 8 * 32 * 0.5 < a.width < 8 * 32 * 1.6  # about one square per character
    short, _ = render_real_line("我们", cjk_faces, np.random.default_rng([7, 3]), cfg)
    assert short.width < a.width
    ink = np.asarray(a, dtype=np.float32)
    assert ink.std() > 10  # text on paper, not a flat image


def test_stretch_condenses_or_extends_the_glyphs_and_is_off_by_default(cjk_faces):
    plain = dict(p_rotate=0.0, p_curve=0.0, p_perspective=0.0)
    widths = {}
    for scale in (0.8, 1.0, 1.25):
        cfg = LookConfig(stretch=(scale, scale), **plain)
        widths[scale] = render_real_line("我们的国家在前进", cjk_faces[:1], np.random.default_rng(5), cfg)[0].width
    assert widths[0.8] < 0.9 * widths[1.0] and widths[1.25] > 1.15 * widths[1.0]
    assert LookConfig().stretch == (1.0, 1.0)  # older corpora keep their images for a seed


def test_distortion_bends_the_strokes_keeps_their_ink_and_is_off_by_default(cjk_faces):
    from seq2seq_lab.data.synth.look import _glyph_mask

    plain = dict(p_bold=0.0, p_thin=0.0)
    masks = {}
    for d in (0.0, 0.01, 0.03):  # the same draws up to the distortion, which comes last
        cfg = LookConfig(p_distort=1.0 if d else 0.0, distort=(d, d), **plain)
        masks[d] = np.asarray(_glyph_mask("我们的国家在前进", cjk_faces[0], 56, np.random.default_rng(4), cfg), np.float32)
    ink = {d: m.sum() for d, m in masks.items()}
    moved = {}
    for d in (0.01, 0.03):
        assert abs(ink[d] - ink[0.0]) < 0.15 * ink[0.0]  # the strokes move, they do not fade or fill
        h, w = min(masks[d].shape[0], masks[0.0].shape[0]), min(masks[d].shape[1], masks[0.0].shape[1])
        moved[d] = np.abs(masks[d][:h, :w] - masks[0.0][:h, :w]).mean()
    assert 0 < moved[0.01] < moved[0.03]  # stronger bends move more ink
    cfg = LookConfig(p_distort=1.0)
    a, _ = render_real_line("我们的国家在前进", cjk_faces, np.random.default_rng([7, 3]), cfg)
    b, _ = render_real_line("我们的国家在前进", cjk_faces, np.random.default_rng([7, 3]), cfg)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and a.height == 32
    assert LookConfig().p_distort == 0.0  # older corpora keep their images for a seed


def test_a_thinner_stroke_keeps_hairlines_with_thin_keep_and_is_the_erosion_by_default():
    from PIL import Image, ImageFilter

    from seq2seq_lab.data.synth.look import _thinner

    hair = np.zeros((40, 60), np.uint8)
    hair[10:30, 20:22] = 255  # a hairline two pixels wide at twice the size, with an anti-aliased rim
    hair[10:30, 19] = hair[10:30, 22] = 100
    bold = np.zeros((40, 60), np.uint8)
    bold[10:30, 20:28] = 255  # a stroke eight pixels wide
    ink = lambda m: np.asarray(m, np.float32).sum()  # noqa: E731
    hair_img, bold_img = Image.fromarray(hair), Image.fromarray(bold)
    faded = _thinner(hair_img, None)  # the erosion alone: the hairline fades to its rim's faint gray
    assert np.asarray(faded).max() <= 100 and ink(faded) < 0.3 * ink(hair_img)
    cut = np.asarray(_thinner(hair_img, 0.5))
    assert np.array_equal(cut[10:30, 20:22], hair[10:30, 20:22]) and cut[:, 19].max() == cut[:, 22].max() == 0
    eroded = bold_img.filter(ImageFilter.MinFilter(3))  # keeps 18 x 6 of 20 x 8 pixels: eroded
    assert np.array_equal(np.asarray(_thinner(bold_img, 0.5)), np.asarray(eroded))
    assert 0.6 * ink(bold_img) < ink(eroded) < 0.7 * ink(bold_img)
    assert LookConfig().thin_keep is None  # older corpora keep their images for a seed


def _left_end_shear(image: np.ndarray) -> int:
    """How far a vertical stroke near the left end leans: its column a quarter and three quarters down."""
    h, quarter = image.shape[0], image.shape[1] // 4
    return abs(int(np.argmin(image[3 * h // 4, :quarter])) - int(np.argmin(image[h // 4, :quarter])))


def test_the_perspective_shears_a_long_lines_ends_no_more_than_a_short_lines(cjk_faces):
    import albumentations as A
    import cv2

    from seq2seq_lab.data.synth.look import _PERSPECTIVE_SCALE, _perspective

    def stroke(width: int) -> np.ndarray:
        image = np.full((32, width), 255, np.uint8)
        image[:, 12:15] = 0
        return image

    theirs = A.Perspective(scale=_PERSPECTIVE_SCALE, fit_output=True, border_mode=cv2.BORDER_REPLICATE, p=1.0)
    ours, albumentations = {}, {}
    for width in (320, 800):  # 10 and 25 line heights
        ours[width] = np.mean([_left_end_shear(_perspective(stroke(width), np.random.default_rng(s), 10.0))
                               for s in range(40)])
        sheared = []
        for s in range(40):
            theirs.set_random_seed(s)
            sheared.append(_left_end_shear(theirs(image=stroke(width))["image"]))
        albumentations[width] = np.mean(sheared)
    assert albumentations[800] > 2 * albumentations[320]  # why look.perspective_span exists
    assert 1 <= ours[320] and ours[800] <= ours[320] + 1  # a perspective, capped at 10 heights across
    out = _perspective(stroke(800), np.random.default_rng(1), 10.0)
    assert out.shape[0] >= 32 and out.shape[1] >= 800  # fit to its output: nothing is cut off

    cfg = LookConfig(p_perspective=1.0, perspective_span=10)
    a, _ = render_real_line(CJK[:36], cjk_faces, np.random.default_rng(3), cfg)  # a 36-character line
    b, _ = render_real_line(CJK[:36], cjk_faces, np.random.default_rng(3), cfg)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and a.height == 32
    assert LookConfig().perspective_span is None  # older corpora keep their images for a seed


def test_rotate_span_keeps_a_long_lines_ends_within_a_short_lines_rise():
    from seq2seq_lab.data.synth.look import _bend

    size = 40

    def bent(length: int, span: float | None, seed: int) -> Image.Image:
        mask = Image.new("L", (length * size, size), 255)  # the ink of a line `length` glyphs long
        cfg = LookConfig(p_rotate=1.0, max_angle=1.5, p_curve=0.0, rotate_span=span)
        return _bend(mask, size, np.random.default_rng(seed), cfg)

    rise = [bent(40, None, s).height - size for s in range(20)]  # as before: up to 40 glyphs' worth of rise
    capped = [bent(40, 12.0, s).height - size for s in range(20)]
    short = [bent(10, 12.0, s).height - size for s in range(20)]
    assert max(rise) > 0.8 * 40 * size * math.tan(math.radians(1.5))  # a whole line height and more
    assert max(capped) <= 12 * size * math.tan(math.radians(1.5)) + 3
    assert max(capped) > 0.6 * 12 * size * math.tan(math.radians(1.5))  # still rotated, as far as 12 glyphs
    assert all(np.array_equal(np.asarray(bent(10, None, s)), np.asarray(bent(10, 12.0, s))) for s in range(5))
    assert short == [bent(10, None, s).height - size for s in range(20)]  # a line under 12 glyphs: as before
    assert LookConfig().rotate_span is None  # older corpora keep their images for a seed


def _ink_columns(image: Image.Image) -> tuple[int, int]:
    """First and last column darker than the paper (dark ink on light paper, no defects drawn)."""
    a = np.asarray(image, dtype=np.float32)
    dark = np.nonzero(a.min(axis=0) < a.max() - 40)[0]
    return int(dark[0]), int(dark[-1])


def test_a_loose_crop_leaves_blank_paper_beside_the_text_and_is_off_by_default(cjk_faces):
    plain = dict(p_rotate=0.0, p_curve=0.0, p_perspective=0.0, p_blur=0.0, p_motion_blur=0.0, p_noise=0.0,
                 p_jpeg=0.0, p_texture=0.0, p_gradient=0.0, p_underline=0.0, p_rule=0.0, contrast=(150, 150))
    tight, _ = render_real_line("我们的国家在前进", cjk_faces[:1], np.random.default_rng(5), LookConfig(**plain))
    lo, hi = _ink_columns(tight)
    assert lo < 12 and hi > tight.width - 12  # about half a glyph at most beside the text
    sides = set()
    for seed in range(6):
        cfg = LookConfig(p_margin=1.0, margin=(0.5, 0.5), **plain)
        loose, _ = render_real_line("我们的国家在前进", cjk_faces[:1], np.random.default_rng(seed), cfg)
        lo, hi = _ink_columns(loose)
        text = hi - lo
        assert loose.width - text > 0.4 * text  # half the text's width of blank paper, and the usual margins
        sides.add(lo > loose.width - hi)  # more blank on the left than on the right
    assert sides == {True, False}  # split at random between the two sides
    assert LookConfig().p_margin == 0.0  # older corpora keep their images for a seed


def test_a_blur_kernel_sized_from_its_sigma_blurs_more_than_three_by_three():
    from seq2seq_lab.data.synth.look import _camera

    bars = np.zeros((32, 200), np.uint8)
    bars[:, ::8] = 255
    spreads = {}
    for kernel in (3, 0):
        cfg = LookConfig(p_blur=1.0, p_motion_blur=0.0, p_noise=0.0, p_jpeg=0.0, p_perspective=0.0,
                         blur_sigma=(1.5, 1.5), blur_kernel=kernel)
        camera = _camera(tuple(vars(cfg).items()))
        spreads[kernel] = []
        for seed in range(8):
            camera.set_random_seed(seed)
            spreads[kernel].append(float(camera(image=bars)["image"][16, 8:40].std()))
    # each seed blurs with a gaussian or a motion blur; where it is the gaussian the larger kernel blurs more
    pairs = list(zip(spreads[0], spreads[3]))
    assert all(a <= b for a, b in pairs) and any(a < 0.6 * b for a, b in pairs)


def test_look_config_rejects_bad_values():
    with pytest.raises(ConfigError, match=r"look\.p_blur"):
        LookConfig(p_blur=1.5)
    with pytest.raises(ConfigError, match=r"look\.spacing"):
        LookConfig(spacing=(0.3, 0.1))
    with pytest.raises(ConfigError, match=r"look\.perspective_span"):
        LookConfig(perspective_span=0)
    with pytest.raises(ConfigError, match=r"look\.rotate_span must be > 0"):
        LookConfig(rotate_span=-1)
    with pytest.raises(ConfigError, match=r"look\.blur_kernel must be odd"):
        LookConfig(blur_kernel=4)
    with pytest.raises(ConfigError, match=r"look\.margin must be >= 0"):
        LookConfig(margin=(-0.1, 0.2))
    with pytest.raises(ConfigError, match=r"look\.thin_keep must be a share"):
        LookConfig(thin_keep=1.5)


def test_a_setting_the_look_lacks_is_named_not_a_type_error():
    # render.* is the simple style's look; a real-style setting under it is named, with the settings it has
    with pytest.raises(ConfigError, match=r"render has no setting contrast; its settings are: width, height"):
        CorpusSpec(charset=CJK, style="real", render={"contrast": [25, 60]})
    with pytest.raises(ConfigError, match=r"look has no setting contrsat, p_blurr; its settings are: height"):
        CorpusSpec(charset=CJK, style="real", look={"contrsat": [25, 60], "p_blurr": 1.0})
    spec = CorpusSpec(charset=CJK, style="real", look={"contrast": [25, 60]})
    assert spec.look["contrast"] == [25.0, 60.0] and spec.look["p_blur"] == LookConfig().p_blur


def _spec(train_face: FontFace, heldout_face: FontFace, **kw) -> CorpusSpec:
    args = dict(num_train=12, num_val=2, num_test=2, num_test_heldout=4, charset=CJK, min_length=4,
                max_length=6, style="real", fonts=[train_face.path], heldout_fonts=[heldout_face.path],
                rare_share=0.2, seed=3, format="png")
    return CorpusSpec(**(args | kw))


def test_corpus_holds_out_its_heldout_fonts_and_is_deterministic(cjk_faces, tmp_path, caplog):
    files = list(dict.fromkeys(f.path for f in cjk_faces))
    if len(files) < 2:
        pytest.skip("needs two CJK font files")
    train_face, heldout_face = resolve_faces([files[0]])[0], resolve_faces([files[1]])[0]
    with caplog.at_level(logging.INFO):
        m1 = generate_corpus(_spec(train_face, heldout_face), tmp_path / "a", workers=1)
    generate_corpus(_spec(train_face, heldout_face), tmp_path / "b", workers=2)
    assert m1["counts"]["test_heldout"] == 4 and m1["heldout_fonts"] == [str(heldout_face)]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["args"]["style"] == "real" and manifest["args"]["look"]["height"] == 32
    rows = dict(line.split("\t") for line in (tmp_path / "a" / "fonts.tsv").read_text(encoding="utf-8").splitlines())
    heldout_images = [ln.split(" ")[0] for ln in (tmp_path / "a" / "test_heldout.txt").read_text().splitlines()]
    assert {rows[i] for i in heldout_images} == {heldout_face.name}
    assert heldout_face.name not in {v for k, v in rows.items() if k not in heldout_images}
    for split in ("train", "test_heldout"):  # same seed, other worker count: the same bytes
        assert (tmp_path / "a" / f"{split}.txt").read_text() == (tmp_path / "b" / f"{split}.txt").read_text()
    first = (tmp_path / "a" / "train.txt").read_text().split(" ")[0]
    assert (tmp_path / "a" / first).read_bytes() == (tmp_path / "b" / first).read_bytes()
    assert Image.open(tmp_path / "a" / first).height == 32


def test_a_corpus_made_before_a_look_setting_existed_is_reused(cjk_faces, tmp_path):
    face = cjk_faces[0]
    spec = _spec(face, face, heldout_fonts=None, num_test_heldout=0, num_train=4)
    generate_corpus(spec, tmp_path, workers=1)
    path = tmp_path / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest["args"]["look"]["stretch"]  # as written before look.stretch was added
    path.write_text(json.dumps(manifest), encoding="utf-8")
    assert generate_corpus(spec, tmp_path, workers=1)["reused"]
    with pytest.raises(FileExistsError, match="look"):  # a real change of look is still refused
        generate_corpus(_spec(face, face, heldout_fonts=None, num_test_heldout=0, num_train=4,
                              look={"stretch": [0.8, 1.2]}), tmp_path, workers=1)


def test_lines_are_shared_alike_among_font_groups_then_families(cjk_faces):
    if len(cjk_faces) < 4:
        pytest.skip("needs four CJK font faces")
    a, b, c, d = cjk_faces[:4]
    sampler = TextSampler(CJK, 4, 6)
    # group 0 holds one face; group 1 two families, the second of them in two faces (weights)
    drawer = LineDrawer(sampler, [a, b, c, d], [], LookConfig(), 0, families=[(0, 0), (1, 0), (1, 1), (1, 1)])
    rng = np.random.default_rng(0)
    picks = [tuple(drawer._family_faces("的一是了", False, rng)) for _ in range(4000)]
    share = {k: picks.count(k) / len(picks) for k in set(picks)}
    assert set(share) == {(a,), (b,), (c, d)}
    assert share[(a,)] == pytest.approx(0.5, abs=0.03) and share[(b,)] == pytest.approx(0.25, abs=0.03)


def test_a_font_reached_by_a_link_too_is_one_face(cjk_faces, tmp_path):
    real = next((f for f in cjk_faces if not f.path.lower().endswith((".ttc", ".otc"))), cjk_faces[0])
    target = tmp_path / ("b" + os.path.splitext(real.path)[1])
    shutil.copyfile(real.path, target)
    (tmp_path / ("a" + target.suffix)).symlink_to(target)  # sorts first, as Debian's alternatives links may
    faces = resolve_faces([tmp_path])
    assert [os.path.realpath(f.path) for f in faces] == [str(target.resolve())]
    assert faces[0].path == str(target)  # the file itself, not the link


def test_a_heldout_font_reached_through_a_link_in_fonts_is_refused(cjk_faces, tmp_path):
    heldout = cjk_faces[0]
    (tmp_path / ("copy" + os.path.splitext(heldout.path)[1])).symlink_to(heldout.path)
    spec = _spec(heldout, heldout, fonts=[str(tmp_path)])  # the names differ: a directory and a file
    with pytest.raises(ConfigError, match="heldout_fonts name faces that fonts names too"):
        make_drawer(spec, with_heldout=True)


def test_heldout_fonts_must_differ_from_training_fonts():
    face = FontFace("/x/font.ttf", 0, "X")
    with pytest.raises(ValueError, match="must not be in fonts"):
        _spec(face, face)
    with pytest.raises(ValueError, match="must not be in fonts"):  # also inside a group
        _spec(face, face, fonts=[["/y/other.ttf", face.path]])
    with pytest.raises(ValueError, match="needs heldout_fonts"):
        CorpusSpec(num_test_heldout=3, style="real")


@pytest.mark.parametrize("flags, expected", [({"avx2", "avx512_bf16"}, "bf16-mixed"), ({"avx2", "fma"}, "32-true"),
                                             ({"amx_bf16"}, "bf16-mixed")])
def test_auto_precision_follows_the_cpu(flags, expected, monkeypatch):
    import seq2seq_lab.precision as precision

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("32-true", "cpu") == "32-true"  # an explicit setting wins
