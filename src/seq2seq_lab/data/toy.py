"""Synthetic sequence-to-sequence tasks on random digit strings: copy, reverse, sort.

Every split is generated in full, up front, in :meth:`ToyDataModule.setup` as
tensors. Shapes are fixed (global padding, not per batch): inputs are padded to
``T = max_length`` steps and targets to ``L = max_length + 1`` tokens, so every
batch has the same ``T`` and ``L`` and they match ``input_length`` and
``output_length``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from seq2seq_lab.data.batching import ResumableDataModule, collate_tokens, make_loader
from seq2seq_lab.data.contract import DataContract
from seq2seq_lab.data.tokenizer import Tokenizer

TASKS = ("copy", "reverse", "sort")
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def make_split(
    task: str, num: int, min_length: int, max_length: int, charset: str, tokenizer: Tokenizer, seed: int, split: str
) -> dict[str, Any]:
    """Generate one split deterministically from ``(seed, split)``.

    Returns a dict with ``N = num``, ``T = max_length``, ``F = len(charset)``,
    ``L = max_length + 1``:
        inputs: ``(N, T, F)`` float32 one-hot source, all-zero at padded steps.
        input_lengths: ``(N,)`` long, source lengths in ``[min_length, max_length]``.
        targets: ``(N, L)`` long, ``chars..., EOS, PAD...`` (same as ``tokenizer.batch_encode``).
        target_lengths: ``(N,)`` long, target tokens including ``EOS``.
        texts: ``N`` target strings.
        sources: ``N`` source strings.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_IDS[split]]))
    num_chars = len(charset)
    lengths = rng.integers(min_length, max_length + 1, size=num)  # (N,)
    src = rng.integers(0, num_chars, size=(num, max_length))  # (N, T) charset indices
    steps = np.arange(max_length)
    valid = steps[None, :] < lengths[:, None]  # (N, T)
    src = np.where(valid, src, num_chars)  # padded steps hold the sentinel num_chars

    if task == "copy":
        tgt = src
    elif task == "reverse":
        idx = np.where(valid, lengths[:, None] - 1 - steps[None, :], steps[None, :])
        tgt = np.take_along_axis(src, idx, axis=1)
    else:  # sort: the sentinel is larger than every char index, so padding stays at the end
        tgt = np.sort(src, axis=1)

    lut = np.array(list(charset) + [""], dtype=object)
    sources = ["".join(row) for row in lut[src].tolist()]
    texts = ["".join(row) for row in lut[tgt].tolist()]

    one_hot = np.eye(num_chars + 1, num_chars, dtype=np.float32)  # sentinel row is all zeros
    inputs = torch.from_numpy(one_hot[src])  # (N, T, F)
    # Vectorised equivalent of tokenizer.batch_encode(texts, max_length): chars..., EOS, PAD...
    id_lut = np.array(tokenizer.encode(charset)[:-1] + [tokenizer.PAD], dtype=np.int64)
    targets = np.full((num, max_length + 1), tokenizer.PAD, dtype=np.int64)  # (N, L)
    targets[:, :max_length] = id_lut[tgt]
    targets[np.arange(num), lengths] = tokenizer.EOS
    return {
        "inputs": inputs,
        "input_lengths": torch.from_numpy(lengths).long(),
        "targets": torch.from_numpy(targets),
        "target_lengths": torch.from_numpy(lengths + 1).long(),
        "texts": texts,
        "sources": sources,
    }


class ToyDataset(Dataset):
    """Indexable view over one generated split; item ``i`` is a dict of per-sample tensors.

    Item fields: ``inputs (T, F)`` float32, ``input_lengths ()`` long,
    ``targets (L,)`` long, ``target_lengths ()`` long, ``texts`` str.
    """

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def __len__(self) -> int:
        return len(self.data["texts"])

    def __getitem__(self, i: int) -> dict[str, Any]:
        d = self.data
        return {
            "inputs": d["inputs"][i],
            "input_lengths": d["input_lengths"][i],
            "targets": d["targets"][i],
            "target_lengths": d["target_lengths"][i],
            "texts": d["texts"][i],
        }


collate_toy = collate_tokens  # inputs (B, T, F), input_lengths (B,), targets (B, L), target_lengths (B,), texts


def _check_min(name: str, value: int, low: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


class ToyDataModule(ResumableDataModule):
    """Copy / reverse / sort of random strings over ``charset``.

    Batches are dicts (fixed padding, ``T = max_length``, ``L = max_length + 1``,
    ``F = len(charset)``):
        inputs: ``(B, T, F)`` float32 one-hot source, zero at padded steps.
        input_lengths: ``(B,)`` long.
        targets: ``(B, L)`` long token ids ``chars..., EOS, PAD...``.
        target_lengths: ``(B,)`` long, including ``EOS``.
        texts: list of ``B`` target strings.

    Each split has its own generator seeded from ``(seed, split)``.
    """

    def __init__(
        self,
        task: str = "reverse",
        min_length: int = 3,
        max_length: int = 8,
        num_train: int = 20000,
        num_val: int = 1000,
        num_test: int = 1000,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
        charset: str = "0123456789",
    ):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
        _check_min("min_length", min_length, 1)
        _check_min("max_length", max_length, 1)
        if max_length < min_length:
            raise ValueError(f"max_length must be >= min_length={min_length}, got {max_length!r}")
        for name, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
            _check_min(name, value, 1)
        _check_min("batch_size", batch_size, 1)
        if eval_batch_size is not None:
            _check_min("eval_batch_size", eval_batch_size, 1)
        _check_min("num_workers", num_workers, 0)
        if not charset:
            raise ValueError(f"charset must not be empty, got {charset!r}")
        self.save_hyperparameters()

        self.task = task
        self.min_length = min_length
        self.max_length = max_length
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.loader_options(batch_size, eval_batch_size, num_workers, seed)
        self.charset = charset

        self.tokenizer = Tokenizer(charset)
        self.input_dim = len(charset)
        self.input_length = max_length
        self.output_length = max_length + 1
        self.vocab_size = self.tokenizer.vocab_size
        self.output_dim = self.vocab_size  # the model's output size
        self.contract = DataContract("tokens", self.output_dim, self.output_length, self.input_length,
                                     self.input_dim, tokenizer=self.tokenizer)
        self.splits: dict[str, dict[str, Any]] = {}

    def setup(self, stage: str | None = None) -> None:
        """Generate all three splits (idempotent; ``stage`` is ignored)."""
        counts = {"train": self.num_train, "val": self.num_val, "test": self.num_test}
        for split, num in counts.items():
            if split not in self.splits:
                self.splits[split] = make_split(
                    self.task,
                    num,
                    self.min_length,
                    self.max_length,
                    self.charset,
                    self.tokenizer,
                    self.seed,
                    split,
                )

    def _loader(self, split: str, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        if split not in self.splits:
            self.setup()
        return make_loader(
            ToyDataset(self.splits[split]), batch_size, shuffle, self.num_workers, seed=self.seed, collate_fn=collate_toy,
            resume_at=self.resume_at if shuffle else None
        )




