"""The Synthetic Chinese String Dataset as shipped: its charset with repeats, its index-form labels;
UNK references in the metrics; oversized and 16-bit / float images."""

from __future__ import annotations

import functools
import io
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from seq2seq_lab.data.charset import CharsetError, read_charset
from seq2seq_lab.data.ocr import OCRDataModule
from seq2seq_lab.deploy import runtime
from seq2seq_lab.data.ocr.sources import BadSampleError, ListFileSource, detect_label_format
from seq2seq_lab.data.ocr.transforms import ImageTooLargeError, LineImageTransform, decode_image
from seq2seq_lab.data.tokenizer import Tokenizer
from seq2seq_lab.systems.text_metrics import decode_references, reference_unk, text_metrics

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ocr"
CHARSET = SHARED / "char_std_5990.txt"
SAMPLE = SHARED / "scsd_test_index_sample.txt"
# character -> its two lines (1-based) in char_std_5990.txt
DUPLICATES = {"1": (19, 5565), "3": (48, 5745), "■": (2111, 4105), "荼": (3390, 5464), "崂": (4409, 5539)}


@pytest.fixture
def shared() -> Path:
    if not (CHARSET.is_file() and SAMPLE.is_file()):
        pytest.skip(f"the shared OCR files are not at {SHARED}")
    return SHARED


@pytest.fixture
def scsd_lines(shared) -> list[str]:
    return read_charset(CHARSET)


def png_bytes(size=(60, 20), text="", mode="RGB") -> bytes:
    img = Image.new(mode, size, 230 if mode == "L" else (230, 230, 220))
    ImageDraw.Draw(img).text((2, 2), text, fill=10 if mode == "L" else (10, 10, 10))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- charset with repeats

def test_shared_charset_loads_with_a_warning_per_duplicate(shared, caplog):
    with caplog.at_level(logging.WARNING, logger="seq2seq_lab.data.charset"):
        lines = read_charset(CHARSET)
    assert len(lines) == 5989 and lines[0] == "，"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5
    for ch, (a, b) in DUPLICATES.items():
        assert lines[a - 1] == lines[b - 1] == ch
        [message] = [m for m in warnings if f"character {ch!r}" in m]
        assert f"char_std_5990.txt:{a},{b}" in message and f"lines {a} and {b}" in message


def test_duplicates_are_an_error_on_request(shared, tmp_path):
    with pytest.raises(CharsetError) as info:
        read_charset(CHARSET, on_duplicate="error")
    for ch, (a, b) in DUPLICATES.items():
        assert f"character {ch!r} appears twice (lines {a} and {b})" in str(info.value)
    with pytest.raises(CharsetError, match=r"char_std_5990.txt:19,5565: character '1' appears twice"):
        OCRDataModule(charset=str(CHARSET), on_duplicate_char="error")
    dm = OCRDataModule(charset=str(CHARSET))  # the default warns
    assert dm.output_dim == 5989 + 4 and dm.label_format == "auto"
    with pytest.raises(ValueError, match="on_duplicate_char must be one of 'warn', 'error'; got 'ignore'"):
        OCRDataModule(charset=str(CHARSET), on_duplicate_char="ignore")
    with pytest.raises(ValueError, match="label_format must be one of 'auto', 'text', 'index'; got 'ids'"):
        OCRDataModule(charset=str(CHARSET), label_format="ids")


def test_both_ids_of_a_repeated_character_decode_to_it(scsd_lines):
    tok = Tokenizer(scsd_lines)
    assert tok.vocab_size == 5989 + 4  # ids stay by line: SOS, EOS, 5989 lines, PAD, UNK
    for ch, (a, b) in DUPLICATES.items():
        assert tok.decode([a + 1]) == tok.decode([b + 1]) == ch
        assert tok.encode(ch) == [a + 1, tok.EOS]  # text encodes to the first line
    assert tok.encode_lines([5565, 48]) == [5566, 49, tok.EOS]
    assert tok.decode([5566, 49, tok.EOS]) == "13"
    with pytest.raises(ValueError, match="line 5990 is outside 1..5989"):
        tok.encode_lines([5990])


# --------------------------------------------------------------------------- index-form labels

def test_index_form_reads_the_shared_sample(scsd_lines, caplog):
    source = ListFileSource(SAMPLE, "auto", scsd_lines, str(CHARSET))
    with caplog.at_level(logging.INFO, logger="seq2seq_lab.data.ocr.sources"):
        samples = list(source)
    assert source.form == "index"
    assert any("scsd_test_index_sample.txt: labels read as index (detected)" in r.getMessage()
               for r in caplog.records)
    assert len(samples) == 200
    assert all(len(s.label) == 10 and len(s.lines) == 10 for s in samples)
    first = samples[0]
    # 35 50 27 45 637 1543 210 10 431 426, looked up by hand in char_std_5990.txt
    assert first.label == "要发生于早晨)、视线"
    assert first.lines == (35, 50, 27, 45, 637, 1543, 210, 10, 431, 426)
    assert first.key.endswith("22240671_1034114836.jpg") and first.origin.endswith("scsd_test_index_sample.txt:1")
    assert [scsd_lines[k - 1] for k in samples[-1].lines] == list(samples[-1].label)
    # without the charset, or forced to text, the same file is text
    assert next(iter(ListFileSource(SAMPLE))).label == "35 50 27 45 637 1543 210 10 431 426"
    assert next(iter(ListFileSource(SAMPLE, "text", scsd_lines))).label.startswith("35 50")


def test_text_form_is_still_detected_as_text(scsd_lines, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("a.jpg 要发生于早晨\nb.jpg 13 4\n", encoding="utf-8")
    source = ListFileSource(text, "auto", scsd_lines)
    assert [s.label for s in source] == ["要发生于早晨", "13 4"] and source.form == "text"
    assert all(s.lines == () for s in source)


def test_detect_label_format_prefers_text_when_ambiguous():
    assert detect_label_format(["1 2 3", "4 5"], 10) == "index"
    assert detect_label_format(["1", "42"], 100) == "text"  # one token each: a text of digits
    assert detect_label_format(["1 2", "3 11"], 10) == "text"  # 11 is past the charset
    assert detect_label_format(["1 2", "0 3"], 10) == "text"  # lines are 1-based
    assert detect_label_format(["1 2", "x 3"], 10) == "text"
    assert detect_label_format(["1 2", "   "], 10) == "index"  # blank labels do not decide
    assert detect_label_format(["1 2"], 0) == "text"


@pytest.mark.parametrize("label,what", [("35 5990 2", "'5990'.*out of range"), ("35 0", "'0'.*out of range"),
                                        ("35 x7", "'x7'.*not an integer")])
def test_a_bad_index_names_the_file_and_line(scsd_lines, tmp_path, label, what):
    lst = tmp_path / "idx.txt"
    lst.write_text(f"a.jpg 1 2 3\n\nb.jpg {label}\n", encoding="utf-8")
    with pytest.raises(BadSampleError, match=rf"idx.txt:3: index {what}: expected charset lines 1..5989"):
        list(ListFileSource(lst, "index", scsd_lines, str(CHARSET)))
    assert ListFileSource(lst, "auto", scsd_lines).form is None
    source = ListFileSource(lst, "auto", scsd_lines)
    list(source)
    assert source.form == "text"  # auto: one bad label makes the file text


def test_index_form_data_module_yields_decoded_texts(scsd_lines, tmp_path):
    rows = {"a.png": [35, 50, 27], "b.png": [5565, 5745, 19, 48], "c.png": [2111, 4105], "d.png": [10, 431, 426]}
    for name in rows:
        (tmp_path / name).write_bytes(png_bytes())
    lst = tmp_path / "train.txt"
    lst.write_text("".join(f"{n} {' '.join(map(str, ids))}\n" for n, ids in rows.items()), encoding="utf-8")
    dm = OCRDataModule(train=str(lst), charset=str(CHARSET), max_length=5, height=32, width=100, channels=1,
                       batch_size=4, num_workers=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    expected = {"".join(scsd_lines[k - 1] for k in ids): ids for ids in rows.values()}
    assert sorted(batch["texts"]) == sorted(expected) and "1313" in expected and "■■" in expected
    assert batch["inputs"].shape[:3] == (4, 1, 32)  # the width is the batching's business
    for text, targets, n in zip(batch["texts"], batch["targets"], batch["target_lengths"]):
        ids = expected[text]
        assert targets[: n].tolist() == [k + 1 for k in ids] + [Tokenizer.EOS]  # line ids, not first-line ids
        assert dm.tokenizer.decode(targets) == text


def test_new_options_are_validated_in_the_config():
    from omegaconf import OmegaConf

    from seq2seq_lab.errors import ConfigError
    from seq2seq_lab.validation import validate_config

    good = OmegaConf.create({"data": {"on_duplicate_char": "warn", "label_format": "index"}})
    validate_config(good, check_paths=False)
    bad = OmegaConf.create({"data": {"on_duplicate_char": "skip", "label_format": "ids"}})
    with pytest.raises(ConfigError) as info:
        validate_config(bad, check_paths=False)
    assert "data.on_duplicate_char='skip': must be one of warn, error" in str(info.value)
    assert "data.label_format='ids': must be one of auto, text, index" in str(info.value)


# --------------------------------------------------------------------------- UNK references

def test_a_reference_unk_is_an_error_even_against_a_predicted_unk():
    tok = Tokenizer("abc", use_unk=True)
    targets = torch.tensor([tok.encode("a?c") + [tok.PAD], tok.encode("abc") + [tok.PAD]])  # (2, 5)
    assert targets[0, 1] == tok.UNK
    refs = decode_references(tok, targets)
    preds = tok.batch_decode(targets)  # the model answers UNK where the reference has it
    assert preds[0] == "a\ufffdc" and refs[0] == "a" + reference_unk(tok) + "c" and refs[1] == "abc"
    metrics = text_metrics()["val"]
    for m in metrics.values():
        m.update(preds, refs)
    assert metrics["line_acc"].compute().item() == pytest.approx(0.5)
    assert metrics["cer"].compute().item() == pytest.approx(1 / 6)
    assert metrics["ned"].compute().item() == pytest.approx((2 / 3 + 1) / 2)
    assert reference_unk(Tokenizer(["\uffff", "a"])) not in ("\uffff", "a", "\ufffd")


def test_systems_score_reference_unk_as_wrong():
    from seq2seq_lab.models import CRNNCTC, CRNNAttention
    from seq2seq_lab.systems import CTCSystem, OCRSystem

    tok = Tokenizer("abc", use_unk=True)
    targets = torch.tensor([tok.encode("a?c"), tok.encode("abc")])  # (2, 4): chars, EOS
    batch = {"inputs": torch.rand(2, 1, 32, 64), "targets": targets, "target_lengths": torch.tensor([4, 4])}
    slim = dict(width_mult=0.25, rnn_hidden=32)

    model = CRNNAttention(4, tok.vocab_size, channels=1, width=64, **slim)
    system = OCRSystem(model, tok, optimizer=functools.partial(torch.optim.Adam))
    system.decode_batch = lambda *a, **k: (targets.clone(), None, None)  # answers the targets, UNK included
    _, outputs = system.eval().compute_loss(batch)
    system.update_metrics(batch, outputs, "val")
    assert system.text_metrics["val"]["line_acc"].compute().item() == pytest.approx(0.5)
    assert system.exact_match["val"].compute().item() == pytest.approx(0.5)

    ctc = CTCSystem(CRNNCTC(output_dim=tok.vocab_size, channels=1, width=64, **slim), tok,
                    optimizer=functools.partial(torch.optim.Adam))
    log_probs = torch.full((2, 3, tok.vocab_size), -30.0)
    for b in range(2):  # best path: the characters of the targets, UNK included
        for t in range(3):
            log_probs[b, t, targets[b, t]] = 0.0
    ctc.update_metrics(batch, (log_probs, torch.tensor([3, 3])), "val")
    assert ctc.text_metrics["val"]["line_acc"].compute().item() == pytest.approx(0.5)


# --------------------------------------------------------------------------- bad images

def _png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width x height`` (Pillow reads the size without decoding)."""
    data = bytearray(png_bytes((1, 1), mode="L"))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize("size", [(10_000, 5_001), (20_000, 20_000)])  # ours; past Pillow's own bomb limit
def test_a_decompression_bomb_is_refused(size):
    with pytest.raises(ImageTooLargeError, match=r"image too large.*more than the limit of 50,000,000 pixels"):
        decode_image(_png_claiming(*size), "L")


def test_the_pixel_limit_is_a_module_constant_and_the_dataset_names_the_file(monkeypatch, tmp_path):
    data = png_bytes((60, 20))
    assert decode_image(data, "RGB").size == (60, 20)
    monkeypatch.setattr(runtime, "MAX_PIXELS", 1000)
    with pytest.raises(ImageTooLargeError, match=r"60x20 = 1,200 pixels, more than the limit of 1,000"):
        LineImageTransform(32, 100, 1)(data)
    (tmp_path / "big.png").write_bytes(data)
    (tmp_path / "charset.txt").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "train.txt").write_text("big.png ab\n", encoding="utf-8")
    dm = OCRDataModule(train=str(tmp_path / "train.txt"), charset=str(tmp_path / "charset.txt"), num_workers=0,
                       batch_size=1)
    dm.setup("fit")
    with pytest.raises(BadSampleError, match=r"train.txt:1: cannot read image .*big.png.*image too large"):
        dm.datasets["train"][0]


def _encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_16_bit_grayscale_is_scaled_not_clipped():
    arr = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    data = _encoded(Image.fromarray(arr), "PNG")
    assert np.asarray(decode_image(data, "L")).tolist() == [[0, 1, 128, 255]]
    assert np.asarray(decode_image(data, "RGB"))[0, 2].tolist() == [128, 128, 128]
    as_int = Image.fromarray(arr.astype(np.int32))  # mode I, 16-bit values: by the 16-bit range
    assert np.asarray(decode_image(_encoded(as_int, "TIFF"), "L")).tolist() == [[0, 1, 128, 255]]
    signed = Image.fromarray(np.array([[-1000, 0, 1000]], dtype=np.int32))  # by its own range
    assert np.asarray(decode_image(_encoded(signed, "TIFF"), "L")).tolist() == [[0, 128, 255]]


def test_float_grayscale_is_scaled_not_clipped():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert unit.mode == "F"
    assert np.asarray(decode_image(_encoded(unit, "TIFF"), "L")).tolist() == [[0, 128, 255]]
    wide = Image.fromarray(np.array([[100.0, 200.0, 300.0, 1e4]], dtype=np.float32))
    assert np.asarray(decode_image(_encoded(wide, "TIFF"), "L")).tolist() == [[0, 3, 5, 255]]


def test_the_corpus_layout_as_shipped_loads_with_the_builtin_charset(shared, tmp_path):
    """data_test.txt with bare image names beside images/, index labels, charset=builtin:char_std_5990."""
    rows = SAMPLE.read_text(encoding="utf-8").splitlines()[:6]
    (tmp_path / "images").mkdir()
    for row in rows:
        (tmp_path / "images" / row.split()[0]).write_bytes(png_bytes((280, 32)))
    (tmp_path / "data_test.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    module = OCRDataModule(test=str(tmp_path / "data_test.txt"), charset="builtin:char_std_5990", channels=1,
                           batch_size=3, num_workers=0)
    module.setup("test")
    batch = next(iter(module.test_dataloader()))
    chars = read_charset(CHARSET)
    first = [chars[int(k) - 1] for k in rows[0].split()[1:]]
    assert "".join(first) in batch["texts"] and batch["inputs"].shape[:3] == (3, 1, 32)
    # an explicit image_dir wins
    moved = OCRDataModule(test=str(tmp_path / "data_test.txt"), charset="builtin:char_std_5990", channels=1,
                          num_workers=0, image_dir=str(tmp_path / "elsewhere"), on_bad_sample="skip")
    with pytest.raises(Exception, match="every sample"):
        moved.setup("test")
