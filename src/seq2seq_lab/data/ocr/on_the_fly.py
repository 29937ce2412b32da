"""Training lines drawn on the fly by the synthetic generator instead of read from disk.

Every epoch sees ``size`` lines never drawn before: :class:`FreshLinesSampler` hands
out global sample indices ``offset + epoch * size + permutation``, and
:class:`OnTheFlyLines` draws sample ``i`` with the corpus generator
(:class:`~seq2seq_lab.data.synth.drawer.LineDrawer`, a generator seeded by
``(seed, i)``). ``offset`` is the size of the corpus on disk, so the validation and
test lines (indices below it) are never drawn for training. The lines depend only on
the seed and the epoch, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from seq2seq_lab.data.batching import epoch_generator
from seq2seq_lab.data.ocr.transforms import LineImageTransform
from seq2seq_lab.data.synth.drawer import LineDrawer
from seq2seq_lab.data.tokenizer import Tokenizer

__all__ = ["FreshLinesSampler", "OnTheFlyLines", "line_item"]


def line_item(image: torch.Tensor, width: int, ids: list[int], label: str, max_length: int,
              pad_id: int) -> dict[str, Any]:
    """One sample as the OCR batches hold it: ``inputs (C, H, w)``, ``input_lengths ()``,
    ``targets (max_length + 1,)`` (``ids``, then PAD), ``target_lengths ()``, ``texts``."""
    targets = torch.full((max_length + 1,), pad_id, dtype=torch.long)
    targets[: len(ids)] = torch.tensor(ids, dtype=torch.long)
    return {
        "inputs": image,
        "input_lengths": torch.tensor(width, dtype=torch.long),
        "targets": targets,
        "target_lengths": torch.tensor(len(ids), dtype=torch.long),
        "texts": label,
    }


class FreshLinesSampler(Sampler[int]):
    """``size`` new global sample indices per epoch: ``offset + epoch * size + a seeded permutation``.

    Lightning calls :meth:`set_epoch` before every epoch (as for
    :class:`~seq2seq_lab.data.batching.EpochRandomSampler`).
    """

    def __init__(self, size: int, offset: int, seed: int):
        self.size, self.offset, self.seed = int(size), int(offset), int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        start = self.offset + self.epoch * self.size
        order = torch.randperm(self.size, generator=epoch_generator(self.seed, self.epoch))
        return iter((order + start).tolist())


class OnTheFlyLines(Dataset):
    """Item ``i`` (a global sample index) is sample ``i`` of the generator, transformed like a line read from disk.

    Args:
        drawer: draws labels and images.
        size: lines per epoch (``len`` of this dataset; indices go beyond it).
        tokenizer: encodes the labels; the generator draws only charset characters.
        max_length: longest label in characters.
        transform: the data module's line transform.
    """

    def __init__(self, drawer: LineDrawer, size: int, tokenizer: Tokenizer, max_length: int,
                 transform: LineImageTransform):
        self.drawer, self.size = drawer, int(size)
        self.tokenizer, self.max_length, self.transform = tokenizer, max_length, transform

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Any]:
        label, image, _ = self.drawer.draw(int(index))
        tensor, width = self.transform.from_image(image)
        ids = self.tokenizer.encode(label)
        return line_item(tensor, width, ids, label, self.max_length, self.tokenizer.PAD)
