"""In-memory tensor dataset that serves whole batches with one indexing op.

``DataLoader`` calls ``dataset.__getitems__(indices)`` when the dataset has it
and passes the result to ``collate_fn``. :class:`TensorBatchDataset` returns
the already stacked batch there, and :func:`collate_batch` passes it through,
so a batch of 500 costs one ``index_select`` per tensor instead of 500 dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, default_collate

__all__ = ["EpochRandomSampler", "TensorBatchDataset", "collate_batch", "make_loader"]


class EpochRandomSampler(RandomSampler):
    """A shuffle whose order depends only on ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` before every epoch, so a run resumed from
    a checkpoint sees the same order as an uninterrupted one. Under DDP,
    Lightning swaps it (as any ``RandomSampler``) for a ``DistributedSampler``,
    which is epoch-seeded too.
    """

    def __init__(self, data_source: Dataset, seed: int):
        super().__init__(data_source, generator=torch.Generator())
        self.seed = int(seed)
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.generator.manual_seed(self.seed + 1_000_003 * int(epoch))


class TensorBatchDataset(Dataset):
    """A dict of tensors that share their first dimension ``N``.

    Args:
        tensors: name -> tensor of shape ``(N, ...)``; all must have the same ``N``.

    ``ds[i]`` is ``{name: tensor[i]}``; ``ds.__getitems__(idx)`` is
    ``{name: tensor[idx]}`` with shapes ``(len(idx), ...)``.
    """

    def __init__(self, tensors: Mapping[str, Tensor]):
        if not tensors:
            raise ValueError("TensorBatchDataset needs at least one tensor")
        sizes = {name: (t.shape[0] if t.dim() > 0 else None) for name, t in tensors.items()}
        if None in sizes.values() or len(set(sizes.values())) != 1:
            raise ValueError(f"TensorBatchDataset tensors need one shared first dimension, got sizes {sizes}")
        self.tensors: dict[str, Tensor] = dict(tensors)
        self._len = next(iter(sizes.values()))

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {name: t[index] for name, t in self.tensors.items()}

    def __getitems__(self, indices: Sequence[int] | Tensor) -> dict[str, Tensor]:
        """Return the stacked batch for ``indices``: each tensor ``(len(indices), ...)``."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {name: t.index_select(0, idx) for name, t in self.tensors.items()}

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}: {tuple(v.shape)} {v.dtype}" for k, v in self.tensors.items())
        return f"TensorBatchDataset(n={self._len}, {parts})"


def collate_batch(batch: Any) -> Any:
    """Collate for :class:`TensorBatchDataset`: a ready batch dict passes through.

    Anything else (a list of samples, from a dataset without ``__getitems__``)
    goes to torch's ``default_collate``. Module-level so it pickles for workers.
    """
    if isinstance(batch, Mapping):
        return batch
    return default_collate(batch)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int | None = None,
    drop_last: bool = False,
    collate_fn: Callable[[Any], Any] = collate_batch,
    pin_memory: bool = False,
) -> DataLoader:
    """Build a ``DataLoader`` wired for :class:`TensorBatchDataset`.

    Args:
        dataset: usually a :class:`TensorBatchDataset` (or a ``Subset`` of one).
        batch_size: items per batch.
        shuffle: reshuffle every epoch.
        num_workers: worker processes (0 = load in the main process).
        seed: makes the shuffle a function of ``(seed, epoch)`` (see
            :class:`EpochRandomSampler`); ``None`` leaves it to torch's global RNG.
        drop_last: drop the last incomplete batch.
        collate_fn: for datasets of single samples (default: :func:`collate_batch`).
        pin_memory: page-locked batches, for faster copies to a GPU.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    sampler = EpochRandomSampler(dataset, seed) if shuffle and seed is not None else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )
