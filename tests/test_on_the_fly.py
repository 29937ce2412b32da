"""Training lines drawn on the fly: new lines every epoch, never the corpus's validation or test ones."""

from __future__ import annotations

import pytest
import torch

from ocr_fakes import write_text_lines
from seq2seq_lab.data.ocr import OCRDataModule
from seq2seq_lab.data.ocr.on_the_fly import FreshLinesSampler
from seq2seq_lab.data.synth.faces import coverage, resolve_faces
from seq2seq_lab.data.synth.fonts import NoFontError

CJK = "的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会"


def test_every_epoch_gets_new_indices_above_the_corpus():
    sampler = FreshLinesSampler(size=100, offset=1000, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == list(range(1000, 1100)) and sorted(second) == list(range(1100, 1200))
    assert first != sorted(first)  # shuffled
    sampler.set_epoch(0)
    assert list(sampler) == first  # a function of (seed, epoch): a resumed run draws the same


def _font() -> str:
    try:
        faces = [f for f in resolve_faces([]) if set(CJK) <= coverage(f)]
    except NoFontError:
        faces = []
    if not faces:
        pytest.skip("no installed font covers common Chinese characters (make fonts)")
    return faces[0].path  # a .ttc given by path draws with its Simplified-Chinese face


def test_the_data_module_trains_on_drawn_lines_and_validates_on_its_lists(tmp_path):
    corpus = write_text_lines(tmp_path / "corpus", charset=CJK, length=4, counts={"val": 4, "test": 4})
    synth = {"num_train": 6, "num_val": 4, "num_test": 4, "charset": CJK, "length": 4, "text_file": None,
             "fonts": [_font()], "style": "real", "seed": 0, "look": {"height": 32}}
    module = OCRDataModule(val=str(corpus / "val.txt"), charset=str(corpus / "charset.txt"), max_length=4,
                           channels=1, width=128, batch_size=3, num_workers=0, on_the_fly=True, synth=synth)
    module.setup("fit")
    loader = module.train_dataloader()
    epoch0 = [b["texts"] for b in loader]
    loader.sampler.set_epoch(1)
    epoch1 = [b["texts"] for b in loader]
    assert [len(t) for t in epoch0] == [3, 3] and all(len(s) == 4 and set(s) <= set(CJK) for t in epoch0 for s in t)
    assert epoch0 != epoch1  # new lines every epoch
    batch = next(iter(loader))
    assert batch["inputs"].shape[:3] == (3, 1, 32) and batch["inputs"].shape[3] <= 128
    assert torch.equal(batch["target_lengths"], torch.full((3,), 5))
    assert len(module.datasets["val"]) == 4  # validation reads its list file


def test_on_the_fly_needs_the_generator_settings(tmp_path):
    corpus = write_text_lines(tmp_path / "corpus", charset="abc", length=2, counts={"val": 2})
    with pytest.raises(ValueError, match="data.on_the_fly=true needs data.synth"):
        OCRDataModule(val=str(corpus / "val.txt"), charset=str(corpus / "charset.txt"), on_the_fly=True)
