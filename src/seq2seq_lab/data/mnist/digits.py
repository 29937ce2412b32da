"""MNIST digit strings: text-line images of ``min_digits..max_digits`` real MNIST digits.

Digits are pasted left-aligned with random gaps and vertical offsets; the target is the
digit string. No image is shared between splits: train and val lines draw from a seeded
disjoint split of the MNIST training images (the same split as ``MNISTDataModule`` with
``val_size``), test lines from the MNIST test images. Each split is generated in ``setup``
as one uint8 tensor ``(N, H, W)``; batches are converted to float32 in ``[-1, 1]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import Tensor
from torch.utils.data import DataLoader

from seq2seq_lab.data.batching import ResumableDataModule, TensorBatchDataset, make_loader
from seq2seq_lab.data.contract import DataContract
from seq2seq_lab.data.mnist.module import load_mnist
from seq2seq_lab.data.paths import resolve_data_dir
from seq2seq_lab.data.tokenizer import Tokenizer

__all__ = ["MNISTDigitsDataModule", "DigitLineDataset", "compose_lines"]

CHARSET = "0123456789"
DIGIT_SIZE = 28  # MNIST images are 28x28
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def _as_range(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    """``k`` -> ``(0, k)``; ``(lo, hi)`` -> itself; both ends inclusive, ``0 <= lo <= hi``."""
    pair = (0, value) if isinstance(value, (int, np.integer)) else tuple(value)
    ok = len(pair) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair)
    if not ok or not 0 <= pair[0] <= pair[1]:
        raise ValueError(f"{name} must be an int >= 0 or a pair (lo, hi) of ints with 0 <= lo <= hi, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_min(name: str, value: Any, low: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def compose_lines(
    pool: np.ndarray, num: int, min_digits: int, max_digits: int, height: int, width: int,
    spacing: tuple[int, int], vertical_offset: tuple[int, int], rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paste random pool images side by side into ``num`` lines.

    Args:
        pool: uint8 ``(P, h, w)`` source digit images.
        spacing: inclusive range of the gap before each digit after the first, px.
        vertical_offset: inclusive range of each digit's top row, px.

    Returns:
        lines: uint8 ``(N, H, W)``, background 0.
        sources: int64 ``(N, D)`` pool indices, ``-1`` past each line's length (``D = max_digits``).
        lengths: int64 ``(N,)`` digits per line.
    """
    _, h, w = pool.shape
    d = max_digits
    lengths = rng.integers(min_digits, max_digits + 1, size=num)  # (N,)
    sources = rng.integers(0, len(pool), size=(num, d))  # (N, D)
    gaps = rng.integers(spacing[0], spacing[1] + 1, size=(num, d))  # (N, D)
    gaps[:, 0] = 0  # left-aligned
    xs = np.cumsum(gaps, axis=1) + np.arange(d) * w  # (N, D) left column of each digit
    ys = rng.integers(vertical_offset[0], vertical_offset[1] + 1, size=(num, d))  # (N, D) top row
    valid = np.arange(d)[None, :] < lengths[:, None]  # (N, D)
    sources = np.where(valid, sources, -1)

    lines = np.zeros((num, height, width), dtype=np.uint8)
    # windows[n, y, x] is the (h, w) block of line n whose top-left corner is (y, x); the
    # blocks pasted are disjoint (gaps >= 0), so writing through the overlapping view is safe.
    windows = sliding_window_view(lines, (h, w), axis=(1, 2), writeable=True)
    rows = np.arange(num)
    for k in range(d):
        m = valid[:, k]
        windows[rows[m], ys[m, k], xs[m, k]] = pool[sources[m, k]]
    return lines, sources, lengths


class DigitLineDataset(TensorBatchDataset):
    """Digit-line images (uint8 in memory) served as float batches, see ``MNISTDigitsDataModule``.

    Args:
        images: uint8 ``(N, H, W)``.
        targets: long ``(N, L)`` ``chars..., EOS, PAD...``.
        target_lengths: long ``(N,)`` tokens including ``EOS``.
        texts: ``N`` digit strings.
    """

    def __init__(self, images: Tensor, targets: Tensor, target_lengths: Tensor, texts: list[str]):
        super().__init__({"images": images, "targets": targets, "target_lengths": target_lengths})
        if len(texts) != len(self):
            raise ValueError(f"got {len(texts)} texts for {len(self)} images")
        self.texts = texts
        self._arrays = {k: v.numpy() for k, v in self.tensors.items()}  # shared memory, for __getitems__

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One line: ``inputs (1, H, W)``, ``targets (L,)``, ``target_lengths ()``, ``texts`` str."""
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: Sequence[int] | Tensor) -> dict[str, Any]:
        """The batch for ``indices``, gathered with numpy.

        numpy's single-threaded gather of a few rows beats ``index_select`` here, whose
        OpenMP fan-out costs milliseconds per batch on a busy CPU.
        """
        idx = indices.numpy() if isinstance(indices, Tensor) else np.asarray(indices, dtype=np.int64)
        images = self._arrays["images"][idx].astype(np.float32)  # (B, H, W)
        images *= 1.0 / 127.5
        images -= 1.0
        return {
            "inputs": torch.from_numpy(images).unsqueeze(1),
            "targets": torch.from_numpy(self._arrays["targets"][idx]),
            "target_lengths": torch.from_numpy(self._arrays["target_lengths"][idx]),
            "texts": [self.texts[i] for i in idx.tolist()],
        }


class MNISTDigitsDataModule(ResumableDataModule):
    """OCR of MNIST digit strings.

    Batches are dicts (``L = max_digits + 1``)::

        inputs          float32 (B, 1, H, W)  background -1, full ink +1
        targets         long    (B, L)        chars..., EOS, PAD...
        target_lengths  long    (B,)          digits + 1 (EOS)
        texts           list of B str         the digit strings

    Args:
        data_dir: data root (``$S2S_DATA_DIR`` wins when set).
        min_digits, max_digits: digits per line, both inclusive.
        height, width: line size in px; ``max_digits`` digits with the widest gaps must fit.
        spacing: gap between neighbouring digits, ``(lo, hi)`` px or ``hi`` for ``(0, hi)``.
        vertical_offset: top row of each digit, ``(lo, hi)`` or ``hi``; ``hi <= height - 28``.
        num_train, num_val, num_test: lines per split.
        val_size: MNIST training images reserved as the val lines' digit pool.
        batch_size: training batch size; eval_batch_size: val/test (default ``batch_size``).
        seed: seeds the digit split, the line generation (per split) and the shuffle.
        num_workers: DataLoader workers.
        download: download missing MNIST files.
    """

    channels = 1

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        min_digits: int = 1,
        max_digits: int = 5,
        height: int = 32,
        width: int = 160,
        spacing: int | Sequence[int] = (0, 4),
        vertical_offset: int | Sequence[int] = (0, 4),
        num_train: int = 60000,
        num_val: int = 5000,
        num_test: int = 10000,
        val_size: int = 5000,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        seed: int = 42,
        num_workers: int = 0,
        download: bool = True,
    ):
        super().__init__()
        positive = dict(min_digits=min_digits, max_digits=max_digits, height=height, width=width,
                        num_train=num_train, num_val=num_val, num_test=num_test, val_size=val_size,
                        batch_size=batch_size, eval_batch_size=eval_batch_size or batch_size)
        for name, value in positive.items():
            _check_min(name, value, 1)
        _check_min("num_workers", num_workers, 0)
        if max_digits < min_digits:
            raise ValueError(f"max_digits must be >= min_digits={min_digits}, got {max_digits!r}")
        self.spacing = _as_range("spacing", spacing)
        self.vertical_offset = _as_range("vertical_offset", vertical_offset)
        self._check_fit(height, width, DIGIT_SIZE, DIGIT_SIZE, max_digits)
        self.save_hyperparameters()

        self.data_dir = resolve_data_dir(data_dir)
        self.min_digits, self.max_digits = min_digits, max_digits
        self.height, self.width = height, width
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.val_size = val_size
        self.loader_options(batch_size, eval_batch_size, num_workers, seed)
        self.download = download

        self.tokenizer = Tokenizer(CHARSET)
        self.vocab_size = self.tokenizer.vocab_size
        self.output_dim = self.vocab_size
        self.output_length = max_digits + 1
        self.contract = DataContract("lines", self.output_dim, self.output_length, channels=self.channels,
                                     height=height, width=width, tokenizer=self.tokenizer)
        self.datasets: dict[str, DigitLineDataset] = {}
        # split -> int64 (N, max_digits) indices into the MNIST file the split draws from, -1 = none
        self.sources: dict[str, np.ndarray] = {}
        self.train_indices: np.ndarray | None = None  # MNIST training images of the train pool
        self.val_indices: np.ndarray | None = None  # MNIST training images of the val pool

    def _check_fit(self, height: int, width: int, dh: int, dw: int, max_digits: int) -> None:
        need_w = max_digits * dw + (max_digits - 1) * self.spacing[1]
        if width < need_w:
            raise ValueError(f"width={width} is too small: max_digits={max_digits} digits of {dw} px with gaps "
                             f"up to spacing={self.spacing[1]} px need width >= {need_w}")
        if height < dh + self.vertical_offset[1]:
            raise ValueError(f"height={height} is too small: digits of {dh} px with vertical_offset up to "
                             f"{self.vertical_offset[1]} px need height >= {dh + self.vertical_offset[1]}")

    def _make_split(self, split: str, pool: np.ndarray, pool_ids: np.ndarray, labels: np.ndarray, num: int) -> None:
        """Generate ``num`` lines from ``pool`` (uint8 (P, h, w)); ``pool_ids`` (P,) index the MNIST file."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _SPLIT_IDS[split]]))
        lines, src, lengths = compose_lines(
            pool, num, self.min_digits, self.max_digits, self.height, self.width,
            self.spacing, self.vertical_offset, rng,
        )
        valid = src >= 0
        file_ids = np.where(valid, pool_ids[np.maximum(src, 0)], -1)  # (N, D)
        digits = np.where(valid, labels[np.maximum(file_ids, 0)], len(CHARSET))  # (N, D), 10 = none
        # Vectorised tokenizer.batch_encode(texts, max_digits): chars..., EOS, PAD...
        id_lut = np.array(self.tokenizer.encode(CHARSET)[:-1] + [self.tokenizer.PAD], dtype=np.int64)
        targets = np.full((num, self.max_digits + 1), self.tokenizer.PAD, dtype=np.int64)  # (N, L)
        targets[:, : self.max_digits] = id_lut[digits]
        targets[np.arange(num), lengths] = self.tokenizer.EOS
        lut = np.array(list(CHARSET) + [""], dtype=object)
        texts = ["".join(row) for row in lut[digits].tolist()]
        self.sources[split] = file_ids
        tensors = (torch.from_numpy(a) for a in (lines, targets, lengths + 1))
        self.datasets[split] = DigitLineDataset(*tensors, texts)

    def setup(self, stage: str | None = None) -> None:
        """Generate the splits ``stage`` needs (idempotent)."""
        if stage in (None, "fit", "validate") and "train" not in self.datasets:
            images, labels = load_mnist(self.data_dir, "train", self.download)
            n = len(images)
            if self.val_size >= n:
                raise ValueError(f"val_size={self.val_size} leaves no training digits ({n} training images)")
            self._check_fit(self.height, self.width, images.shape[1], images.shape[2], self.max_digits)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).numpy()
            self.val_indices, self.train_indices = perm[: self.val_size], perm[self.val_size :]
            self._make_split("train", images[self.train_indices], self.train_indices, labels, self.num_train)
            self._make_split("val", images[self.val_indices], self.val_indices, labels, self.num_val)
        if stage in (None, "test", "predict") and "test" not in self.datasets:
            images, labels = load_mnist(self.data_dir, "test", self.download)
            self._check_fit(self.height, self.width, images.shape[1], images.shape[2], self.max_digits)
            self._make_split("test", images, np.arange(len(images)), labels, self.num_test)

    def _loader(self, split: str, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup(stage)
        seed = self.seed if shuffle else None
        return make_loader(self.datasets[split], batch_size, shuffle, self.num_workers, seed=seed,
                           resume_at=self.resume_at if shuffle else None)




