"""OCR breakdown: per-character-type accuracy from the alignment, per-font scores, and the eval wiring."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.plugins.precision import Precision
from PIL import Image

from helpers import compose_config
from ocr_fakes import write_text_lines
from seq2seq_lab.eval_breakdown import (LINE_COLUMNS, NO_FONT, FontListError, breakdown_metrics, decode_split,
                                        read_font_list, sample_fonts, recorded_readings)
from seq2seq_lab.reporting.ocr_breakdown import LineAlignment, align, char_type, ocr_breakdown

pytestmark = pytest.mark.usefixtures("one_thread")


# --- pure scoring ----------------------------------------------------------------------------------
def test_char_types():
    types = {c: char_type(c) for c in "北〇7０aÉＡ，。“《%(α "}
    assert types == {"北": "chinese", "〇": "chinese", "7": "digit", "０": "digit", "a": "latin", "É": "latin",
                     "Ａ": "latin", "，": "punct", "。": "punct", "“": "punct", "《": "punct", "%": "punct",
                     "(": "punct", "α": "punct", " ": None}


def test_per_type_accuracy_follows_the_alignment():
    # one digit substituted (1 -> 2), one Chinese character deleted (北), one Latin letter inserted (X)
    ref, hyp = "2021年北京，ABC", "2022年京，ABXC"
    alignment = align(ref, hyp)
    assert alignment.edits == 3
    assert [c for c, ok in zip(ref, alignment.matched) if not ok] == ["1", "北"]
    metrics = ocr_breakdown([(ref, hyp), ("ab 12", "ab 12")]).metrics()
    assert metrics == {
        "test/char_count/chinese": 3, "test/char_acc/chinese": pytest.approx(2 / 3),
        "test/char_count/digit": 6, "test/char_acc/digit": pytest.approx(5 / 6),
        "test/char_count/latin": 5, "test/char_acc/latin": 1.0,  # an insertion is no reference char's error
        "test/char_count/punct": 1, "test/char_acc/punct": 1.0,  # the space counts for no type
    }


def test_misreadings_are_counted_by_reference_char_and_what_it_was_read_as():
    result = ocr_breakdown([("2021年北京，ABC", "2022年京，ABXC"), ("北京", "兆京"), ("北京", "北京")])
    assert align("2021年北京", "2022年京").read == ("2", "0", "2", "2", "年", "", "京")
    assert result.confusions == {("1", "2"): 1, ("北", ""): 1, ("北", "兆"): 1}  # the inserted X is no reference's
    table = result.table()
    assert "| '北' | (dropped) | 1 |" in table and "| '1' | '2' | 1 |" in table
    assert "read as" not in ocr_breakdown([("北京", "北京")]).table()  # no misreadings: no table


def test_alignment_has_the_fewest_edits_then_the_most_matches():
    assert align("", "abc").edits == 3 and align("abc", "").matched == (False, False, False)
    assert align("kitten", "sitting").edits == 3
    # "ab" -> "ba": two substitutions or delete+insert around a kept "a": both 2 edits, the latter matches one
    assert align("ab", "ba") == LineAlignment(2, (True, False), ("a", ""))
    assert align("北京", "京北京").matched == (True, True)


def test_no_reference_char_of_a_type_gives_no_accuracy_key():
    metrics = ocr_breakdown([("abc", "abd")]).metrics("val")
    assert metrics["val/char_acc/latin"] == pytest.approx(2 / 3) and metrics["val/char_count/digit"] == 0
    assert "val/char_acc/digit" not in metrics


def test_scores_by_group():
    pairs = [("abcd", "abcd"), ("abcd", "abxd"), ("12", "1"), ("你好", "你好")]
    result = ocr_breakdown(pairs, ["Sans", "Sans", "Serif/Bold", "Serif/Bold"])
    metrics = result.metrics()
    assert metrics["test/by_font/Sans/lines"] == 2
    assert metrics["test/by_font/Sans/line_acc"] == 0.5 and metrics["test/by_font/Sans/cer"] == 1 / 8
    assert metrics["test/by_font/Serif_Bold/line_acc"] == 0.5 and metrics["test/by_font/Serif_Bold/cer"] == 1 / 4
    table = result.table()
    assert "| Sans | 2 | 0.5000 | 0.1250 |" in table and "| chinese | 2 | 1.0000 |" in table
    assert not any(k.startswith("test/by_font") for k in ocr_breakdown(pairs).metrics())
    with pytest.raises(ValueError, match="3 group labels for 4 lines"):
        ocr_breakdown(pairs, ["a", "b", "c"])


# --- fonts.tsv -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """8 test lines of 3 letters, each image a different width (line i: 72 - 4 i pixels), so that the
    width-sorted test loader reverses the file order; fonts.tsv names a font for lines 0-5 only."""
    root = write_text_lines(tmp_path_factory.mktemp("breakdown"), "abcde", 3, {"test": 8}, size=(64, 32))
    for i in range(8):
        path = root / "images" / f"test_{i:03d}.png"
        Image.open(path).resize((72 - 4 * i, 32)).save(path)
    for split in ("train", "val"):
        (root / f"{split}.txt").write_text((root / "test.txt").read_text())
    (root / "fonts.tsv").write_text("".join(f"images/test_{i:03d}.png\t{'Sans' if i % 2 else 'Serif'}\n"
                                            for i in range(6)), encoding="utf-8")
    return root


def test_fonts_come_from_the_font_list_beside_the_list_file(corpus, tmp_path):
    from seq2seq_lab.data.ocr.module import open_sources

    samples = list(open_sources(corpus / "test.txt")[0])
    assert sample_fonts(samples, str(corpus / "test.txt")) == ["Serif", "Sans"] * 3 + [NO_FONT] * 2
    (tmp_path / "test.txt").write_text("images/x.png abc\n")
    assert sample_fonts(samples, [str(tmp_path / "test.txt")]) is None  # no fonts.tsv there

    (tmp_path / "fonts.tsv").write_text("images/x.png\tSans\nimages/y.png Serif\n")
    with pytest.raises(FontListError, match=r"fonts.tsv:2: expected 'image path<TAB>font face'"):
        read_font_list(tmp_path / "fonts.tsv")


def _datamodule(corpus, **kwargs):
    from seq2seq_lab.data.ocr import OCRDataModule

    return OCRDataModule(test=str(corpus / "test.txt"), charset=str(corpus / "charset.txt"), max_length=3,
                         width=96, eval_batch_size=3, num_workers=0, **kwargs)


class WidthOracle(torch.nn.Module):
    """Reads a line by its width: right for the lines ``right`` names (by label), ``"?"`` for the others."""

    capabilities = frozenset({"transcribe"})

    def __init__(self, labels_by_width: dict[int, str], right: set[str]):
        super().__init__()
        self.labels_by_width, self.right = labels_by_width, right

    def transcribe(self, images, input_lengths):
        labels = [self.labels_by_width[int(w)] for w in input_lengths]
        return [label if label in self.right else "?" for label in labels], torch.ones(len(labels))


def test_breakdown_matches_each_decoded_line_with_its_sample_in_a_width_sorted_loader(corpus, tmp_path):
    datamodule = _datamodule(corpus)
    datamodule.setup("test")
    dataset = datamodule.datasets["test"]
    order = [i for batch in datamodule.test_dataloader().batch_sampler for i in batch]
    assert order == list(range(7, -1, -1))  # sorted by width: the file order reversed
    labels = [s.label for s in dataset.samples]
    serif = {labels[i] for i in range(0, 6, 2)} - {labels[i] for i in range(1, 8, 2)}  # labels of Serif lines only
    system = WidthOracle(dict(zip(dataset.widths(), labels)), right=serif)
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), precision_plugin=Precision())

    metrics = breakdown_metrics(system, datamodule, trainer, tmp_path / "out" / "lines.tsv")
    n_serif = sum(labels[i] in serif for i in range(0, 6, 2))
    assert n_serif > 0
    assert metrics["test/by_font/Serif/lines"] == 3 and metrics["test/by_font/Serif/line_acc"] == n_serif / 3
    assert metrics["test/by_font/Sans/line_acc"] == 0.0 and metrics["test/by_font/Sans/cer"] == 1.0
    assert metrics[f"test/by_font/{NO_FONT}/lines"] == 2
    assert metrics["test/char_count/latin"] == 24 and metrics["test/char_count/punct"] == 0
    with open(tmp_path / "out" / "lines.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == list(LINE_COLUMNS) and len(rows) == 9  # a header, then the lines in file order
    for i, (image, origin, font, edits, reference, hypothesis) in enumerate(rows[1:]):
        assert image.endswith(f"test_{i:03d}.png") and origin.endswith(f"test.txt:{i + 1}")
        assert font == (NO_FONT if i >= 6 else "Sans" if i % 2 else "Serif") and reference == labels[i]
        assert (hypothesis, int(edits)) == ((reference, 0) if reference in serif else ("?", 3))

    classifier = torch.nn.Linear(1, 1)
    classifier.capabilities = frozenset({"classify"})
    assert breakdown_metrics(classifier, datamodule, trainer) == {}  # cannot transcribe: skipped


def test_eval_writes_the_breakdown_of_a_checkpoint(corpus, tmp_path):
    from seq2seq_lab.assemble import build_datamodule, build_system
    from seq2seq_lab.eval import evaluate

    data = [f"data.{s}={corpus}/{s}.txt" for s in ("train", "val", "test")]
    cfg = compose_config("train", ["experiment=ocr_crnn_ctc", *data, f"data.charset={corpus}/charset.txt",
                                   "data.max_length=3", "data.width=96", "data.num_workers=0",
                                   "model.width_mult=0.25", "model.rnn_hidden=16"], tmp_path / "train")
    torch.manual_seed(0)
    system = build_system(cfg, build_datamodule(cfg))
    ckpt = tmp_path / "random.ckpt"
    torch.save({"state_dict": system.state_dict(), "run_config": system.run_config}, ckpt)

    metrics = evaluate(compose_config("eval", [f"ckpt_path={ckpt}", "trainer=cpu"], tmp_path / "eval"))
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(written) == set(metrics)
    assert written["test/char_count/latin"] == 24 and 0 <= written["test/char_acc/latin"] <= 1
    assert {k: written[f"test/by_font/{k}/lines"] for k in ("Serif", "Sans", NO_FONT)} == {
        "Serif": 3, "Sans": 3, NO_FONT: 2}
    lines = (tmp_path / "eval" / "test_lines.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == list(LINE_COLUMNS) and len(lines) == 9
    skipped = evaluate(compose_config("eval", [f"ckpt_path={ckpt}", "trainer=cpu", "breakdown=false"],
                                      tmp_path / "eval2"))
    assert "test/cer" in skipped and not any("char_acc" in k or "by_font" in k for k in skipped)


@pytest.mark.parametrize("experiment, more", [
    ("ocr_crnn_ctc", []),
    ("ocr_crnn_attention", []),
    ("ocr_crnn_attention", ["system.beam_width=3", "+system.views=[{right: 1}]",
                            "+system.lm={text_file: builtin:news, weight: 0.3}"]),   # as ocr_zh_cpu reads
])
def test_the_test_pass_readings_are_those_a_second_decode_gives(experiment, more, corpus, tmp_path):
    """eval's breakdown reads the test pass's readings instead of decoding the split again: the same texts."""
    import lightning

    from seq2seq_lab.assemble import build_datamodule, build_system

    data = [f"data.{s}={corpus}/{s}.txt" for s in ("train", "val", "test")]
    cfg = compose_config("train", [f"experiment={experiment}", *data, f"data.charset={corpus}/charset.txt",
                                   "data.max_length=3", "data.width=96", "data.num_workers=0", "data.eval_batch_size=3",
                                   "model.width_mult=0.25", "model.rnn_hidden=16", *more], tmp_path)
    torch.manual_seed(0)
    datamodule = build_datamodule(cfg)
    system = build_system(cfg, datamodule)
    with torch.no_grad():  # large random weights: readings that differ from line to line, some without EOS
        for weight in system.net.parameters():
            weight.normal_(0.0, 0.7)
    trainer = lightning.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False)
    trainer.test(system, datamodule=datamodule, verbose=False)
    loader = datamodule.test_dataloader()
    found = recorded_readings(system, loader)
    assert found is not None and found == decode_split(system, loader, torch.device("cpu"), trainer.precision_plugin)
    assert len(set(found[1])) > 2  # not one reading for every line
    assert found[0] == list(range(7, -1, -1))  # the width-sorted order, each reading with its own line
    assert recorded_readings(system, loader, world_size=2) is None
    system.test_readings = system.test_readings[1:]  # lines that are not the loader's: decode again
    assert recorded_readings(system, loader) is None
