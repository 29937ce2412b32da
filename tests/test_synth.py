"""The synthetic text-line corpus: charsets, text sampling, fonts, rendering and the generator."""

from __future__ import annotations

import json
import logging
import os
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seq2seq_lab.data.charset import read_charset
from seq2seq_lab.data.synth.fonts import NoFontError, find_fonts, missing_chars
from seq2seq_lab.data.synth.render import RenderConfig, render_line
from seq2seq_lab.data.synth.text import CJK_COMMON_FILE, TextSampler, load_charset
from seq2seq_lab.data.synth.corpus import CorpusExistsError, CorpusSpec, generate_corpus
from seq2seq_lab.synth import main

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PLAIN = dict(blur=0.0, noise=0.0, rotate=0.0, perspective=0.0)  # no effect that blurs the background


@pytest.fixture(scope="module")
def latin_fonts() -> list[str]:
    fonts = find_fonts(["DejaVu Sans", "DejaVu Serif"], load_charset("latin"))
    assert DEJAVU in fonts
    return fonts


@pytest.fixture(scope="module")
def cjk_fonts() -> list[str]:
    try:
        return find_fonts([], load_charset("cjk_common"))
    except NoFontError:
        pytest.skip("no installed font covers cjk_common; `make fonts` installs fonts-wqy-microhei")


def small_spec(**kw) -> CorpusSpec:
    args = dict(num_train=24, num_val=6, num_test=6, charset="latin", min_length=3, max_length=12,
                fonts=["DejaVu Sans", "DejaVu Serif"], seed=7)
    return CorpusSpec(**(args | kw))


# --- charsets and text ---------------------------------------------------------------------------
def test_cjk_common_is_a_frequency_list_of_common_characters():
    chars = read_charset(CJK_COMMON_FILE)  # one per line, no repeats
    assert len(chars) >= 1000
    assert all(unicodedata.name(c).startswith("CJK UNIFIED IDEOGRAPH") for c in chars)
    assert "".join(chars[:10]) == "的一是不了在人有我他"
    assert all(c.encode("gb2312") for c in chars[:500])  # simplified, common (GB2312)


def test_load_charset_specs(tmp_path):
    assert load_charset("digits") == "0123456789"
    assert len(load_charset("latin")) == 62
    assert load_charset("cjk_common:500") == "".join(read_charset(CJK_COMMON_FILE)[:500])
    assert load_charset("cjk_common", size=20) == load_charset("cjk_common:20")
    assert load_charset("abcab") == "abc"
    (tmp_path / "cs.txt").write_text("x\ny\n \nz\n", encoding="utf-8")
    assert load_charset(str(tmp_path / "cs.txt")) == "xy z"
    with pytest.raises(ValueError, match="no characters"):
        load_charset("")


@pytest.mark.parametrize("lo,hi", [(10, 10), (2, 7)])
def test_random_labels_have_the_lengths_and_charset(lo, hi):
    sampler = TextSampler("abc", lo, hi)
    labels = [sampler.sample(np.random.default_rng([0, i])) for i in range(300)]
    assert {len(s) for s in labels} == set(range(lo, hi + 1))
    assert set("".join(labels)) == set("abc")
    assert labels == [sampler.sample(np.random.default_rng([0, i])) for i in range(300)]


def test_zipf_labels_follow_the_charset_ranks():
    sampler = TextSampler("abcd", 10, 10, zipf=1.0)
    text = "".join(sampler.sample(np.random.default_rng([2, i])) for i in range(2000))
    share = {c: text.count(c) / len(text) for c in "abcd"}  # expected 1 : 1/2 : 1/3 : 1/4, i.e. .48 .24 .16 .12
    assert share["a"] > share["b"] > share["c"] > share["d"] > 0.09
    assert abs(share["a"] - 0.48) < 0.03 and abs(share["d"] - 0.12) < 0.02
    assert text == "".join(sampler.sample(np.random.default_rng([2, i])) for i in range(2000))
    with pytest.raises(ValueError, match="zipf must be a positive"):
        TextSampler("abcd", 2, 2, zipf=0)


def test_labels_with_a_space_never_start_or_end_with_it():
    labels = [TextSampler("ab ", 2, 6).sample(np.random.default_rng([1, i])) for i in range(300)]
    assert " " in "".join(labels) and all(s == s.strip() for s in labels)


def test_windows_of_text_lines_drop_or_skip_unknown_characters():
    lines = ["hello, world", "xy", "ab-cd"]
    drop = TextSampler("abcdehlorw", 5, 5, lines, policy="drop")
    skip = TextSampler("abcdehlorw", 5, 5, lines, policy="skip")
    got_drop = {drop.sample(np.random.default_rng([0, i])) for i in range(200)}
    got_skip = {skip.sample(np.random.default_rng([0, i])) for i in range(200)}
    assert got_skip == {"hello", "world"}
    assert got_drop == {"helloworld"[i:i + 5] for i in range(6)}  # "abcd" is too short
    with pytest.raises(ValueError, match="no text line"):
        TextSampler("abc", 6, 6, ["abc abc"], policy="skip")


# --- fonts ---------------------------------------------------------------------------------------
def test_find_fonts_by_path_directory_and_family(latin_fonts):
    latin = load_charset("latin")
    assert find_fonts([DEJAVU], latin) == [DEJAVU]
    assert DEJAVU in find_fonts([str(Path(DEJAVU).parent)], latin)
    assert all("DejaVu" in f for f in latin_fonts)
    assert missing_chars(DEJAVU, "a中b") == ["中"]


def test_find_fonts_errors_clearly_for_an_impossible_charset():
    with pytest.raises(NoFontError) as err:
        find_fonts([DEJAVU, "/no/such/font.ttf"], "ab\U00013000")  # an Egyptian hieroglyph
    msg = str(err.value)
    assert "ab\U00013000" in msg and "DejaVuSans.ttf" in msg and "/no/such/font.ttf" in msg
    assert "make fonts" in msg


# --- rendering -----------------------------------------------------------------------------------
def _ink_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """Bounding box of the pixels that differ from the (flat) background's top-left pixel."""
    a = np.asarray(image.convert("L"), dtype=np.int16)
    return Image.fromarray((np.abs(a - a[0, 0]) > 8).astype(np.uint8) * 255).getbbox()


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_render_size_mode_and_the_text_stays_inside(latin_fonts, mode):
    cfg = RenderConfig(mode=mode, **PLAIN)
    texts = ["W" * 40, "Wg", "jQyp" * 5, "i"]
    for i in range(40):
        rng = np.random.default_rng([3, i])
        image = render_line(texts[i % len(texts)], latin_fonts, rng, cfg)
        assert image.size == (280, 32) and image.mode == mode
        box = _ink_box(image)
        assert box is not None
        left, top, right, bottom = box
        assert left >= cfg.margin and top >= cfg.margin and right <= 280 - cfg.margin and bottom <= 32 - cfg.margin


def test_render_with_every_effect_keeps_size_and_is_deterministic(latin_fonts):
    cfg = RenderConfig(width=100, height=24, blur=1.0, noise=1.0, rotate=1.0, perspective=1.0)
    a = render_line("Hello", latin_fonts, np.random.default_rng([5, 1]), cfg)
    b = render_line("Hello", latin_fonts, np.random.default_rng([5, 1]), cfg)
    assert a.size == (100, 24) and a.tobytes() == b.tobytes()


# --- the corpus ----------------------------------------------------------------------------------
def _read_corpus(root: Path) -> dict[str, list[tuple[str, str]]]:
    out = {}
    for split in ("train", "val", "test"):
        rows = (root / f"{split}.txt").read_text(encoding="utf-8").splitlines()
        out[split] = [tuple(r.split(" ", 1)) for r in rows]
    return out


def test_corpus_files_parse_and_match_the_spec(tmp_path):
    spec = small_spec()
    manifest = generate_corpus(spec, tmp_path / "c", workers=1)
    root = tmp_path / "c"
    assert manifest["complete"] and manifest["counts"] == {"train": 24, "val": 6, "test": 6}
    charset = read_charset(root / "charset.txt")
    assert "".join(charset) == load_charset("latin")
    corpus = _read_corpus(root)
    names = [p for rows in corpus.values() for p, _ in rows]
    assert names == [f"images/{i:09d}.jpg" for i in range(36)]  # train, val, test; sorted by index
    assert {len(rows) for rows in corpus.values()} <= {24, 6}
    for path, label in (r for rows in corpus.values() for r in rows):
        assert 3 <= len(label) <= 12 and set(label) <= set(charset)
        with Image.open(root / path) as im:
            assert im.size == (280, 32) and im.mode == "L"
    assert sorted(os.listdir(root)) == ["charset.txt", "images", "manifest.json", "test.txt", "train.txt", "val.txt"]


def test_one_worker_and_two_workers_write_identical_corpora(tmp_path):
    spec = small_spec(format="png")
    generate_corpus(spec, tmp_path / "one", workers=1)
    generate_corpus(spec, tmp_path / "two", workers=2)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 36 + 5
    for rel in files:
        if rel.name != "manifest.json":  # it records the run time
            assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    generate_corpus(small_spec(format="png", seed=8), tmp_path / "other", workers=1)
    assert _read_corpus(tmp_path / "other") != _read_corpus(tmp_path / "one")


def test_an_identical_complete_corpus_is_reused_and_another_refused(tmp_path):
    root = tmp_path / "c"
    first = generate_corpus(small_spec(), root)
    stamp = (root / "images" / "000000000.jpg").stat().st_mtime_ns
    again = generate_corpus(small_spec(), root)
    assert again["reused"] and not first["reused"]
    assert (root / "images" / "000000000.jpg").stat().st_mtime_ns == stamp

    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["args"]["zipf"]  # a corpus made before the zipf argument existed
    (root / "manifest.json").write_text(json.dumps(manifest))
    assert generate_corpus(small_spec(), root)["reused"]
    with pytest.raises(CorpusExistsError, match="zipf=None .now 1.0"):
        generate_corpus(small_spec(zipf=1.0), root)

    with pytest.raises(CorpusExistsError, match="num_train=24 .now 30.*overwrite=true"):
        generate_corpus(small_spec(num_train=30), root)
    redone = generate_corpus(small_spec(num_train=30), root, overwrite=True)
    assert not redone["reused"] and len(_read_corpus(root)["train"]) == 30

    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps(manifest | {"complete": False}))
    assert not generate_corpus(small_spec(num_train=30), root)["reused"]  # an interrupted run is redone

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "train.txt").write_text("x y\n")
    with pytest.raises(CorpusExistsError, match="no readable manifest"):
        generate_corpus(small_spec(), stray)


def test_cjk_corpus(tmp_path, cjk_fonts):
    spec = small_spec(charset="cjk_common:1000", min_length=10, max_length=10, fonts=cjk_fonts, format="png")
    generate_corpus(spec, tmp_path / "zh")
    charset = set(load_charset("cjk_common:1000"))
    for rows in _read_corpus(tmp_path / "zh").values():
        assert all(len(label) == 10 and set(label) <= charset for _, label in rows)


def test_lmdb_output(tmp_path):
    lmdb_io = pytest.importorskip("seq2seq_lab.data.ocr.lmdb_io")
    generate_corpus(small_spec(lmdb=True), tmp_path / "c")
    got = [s.label for s in lmdb_io.LMDBSource(tmp_path / "c" / "lmdb" / "val")]
    assert got == [label for _, label in _read_corpus(tmp_path / "c")["val"]]


def test_cli_writes_the_corpus_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["synth", "out_dir=corpus", "num_train=8", "num_val=2", "num_test=2", "charset=digits",
            "length=null", "min_length=2", "max_length=4", "fonts=[DejaVu Sans]", "workers=1", "progress=false"]
    monkeypatch.setattr(sys, "argv", args)
    root = logging.getLogger()  # Hydra configures logging: give the root logger back afterwards
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    main()
    assert os.listdir(tmp_path) == ["corpus"]
    manifest = json.loads((tmp_path / "corpus" / "manifest.json").read_text())
    assert manifest["args"]["min_length"] == 2 and manifest["counts"]["train"] == 8
    assert all(2 <= len(label) <= 4 and label.isdigit() for _, label in _read_corpus(tmp_path / "corpus")["train"])


def test_the_ocr_data_module_generates_its_corpus_in_prepare_data_and_a_trained_model_never_does(tmp_path,
                                                                                                 monkeypatch):
    """The contract (charset, sizes) is known before the corpus exists; prepare_data writes it; eval rebuilds the
    data module from the checkpoint without drawing a line, even with the corpus gone."""
    import shutil

    from helpers import compose_config
    from omegaconf import open_dict

    from seq2seq_lab.assemble import build_datamodule, load_trained
    from seq2seq_lab.data.synth.fonts import NoFontError
    from seq2seq_lab.train import train
    from seq2seq_lab.validation import validate_config

    monkeypatch.setenv("S2S_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    cfg = compose_config("train", ["experiment=ocr_synth_cpu", "threads=1", "logger=csv", "trainer.max_epochs=1",
                                   "data.batch_size=4", "data.num_workers=0", "test=false"], tmp_path / "run")
    with open_dict(cfg):
        cfg.synth.update(num_train=8, num_val=4, num_test=4, workers=1)
    corpus = Path(cfg.synth.out_dir)
    validate_config(cfg)  # the lists and charset that prepare_data will write are not missing files
    datamodule = build_datamodule(cfg)
    assert not corpus.exists() and datamodule.contract.output_dim == 500 + 4  # cjk_common:500 + specials
    with open_dict(cfg):
        cfg.prepare_only = True
    try:
        assert train(cfg) == {}  # prepare_only: the corpus, and nothing trained
    except NoFontError as err:
        pytest.skip(f"no font draws the synth charset: {err}")
    assert (corpus / "train.txt").is_file() and not (tmp_path / "run" / "checkpoints").exists()
    drawn = {f.name: f.stat().st_mtime_ns for f in corpus.rglob("*")}
    with open_dict(cfg):
        cfg.prepare_only = False
    train(cfg)  # finds the identical corpus and trains on it
    assert {f.name: f.stat().st_mtime_ns for f in corpus.rglob("*")} == drawn
    assert (corpus / "train.txt").is_file() and (corpus / "charset.txt").read_text().count("\n") == 500

    shutil.rmtree(corpus)
    ckpt = next((tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    loaded, _ = load_trained(str(ckpt))
    loaded.prepare_data()
    assert not corpus.exists() and loaded.contract.output_dim == 504
