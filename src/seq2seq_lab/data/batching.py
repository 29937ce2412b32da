"""In-memory tensor dataset that serves whole batches with one indexing op; loaders and samplers.

``DataLoader`` calls ``dataset.__getitems__(indices)`` when the dataset has it
and passes the result to ``collate_fn``. :class:`TensorBatchDataset` returns
the already stacked batch there, and :func:`collate_batch` passes it through,
so a batch of 500 costs one ``index_select`` per tensor instead of 500 dicts.

:class:`WidthBucketBatchSampler` groups samples of similar width (text lines
padded per batch), so that little of a batch is padding.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    default_collate,
)

__all__ = ["EpochRandomSampler", "ResumableDataModule", "ResumableLoader", "TensorBatchDataset",
           "WidthBucketBatchSampler", "collate_batch", "collate_tokens", "make_loader"]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A generator seeded by ``(seed, epoch)``."""
    return torch.Generator().manual_seed(int(seed) + 1_000_003 * int(epoch))


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
        self.epoch = int(epoch)
        self.generator = epoch_generator(self.seed, epoch)


class WidthBucketBatchSampler(BatchSampler):
    """Batches of samples of similar width, so that a batch padded to its widest sample is mostly content.

    Takes the indices ``sampler`` yields (a shuffle for training, the dataset order
    for evaluation) ``pool_batches * batch_size`` at a time (``None``: all at
    once), sorts each pool by ``widths`` (stably) and cuts it into batches; with
    ``shuffle`` the order of all the batches is then shuffled, so that no epoch
    runs from narrow to wide. With ``drop_last`` the one short batch (the widest
    of the last pool) is dropped.

    The batches depend only on the sampler's order and ``(seed, epoch)``; the
    epoch is the sampler's ``epoch`` attribute (0 without one), which
    :class:`EpochRandomSampler` and ``DistributedSampler`` keep and Lightning sets
    through ``set_epoch`` on ``batch_sampler.sampler`` before every epoch.

    Under DDP Lightning (``use_distributed_sampler=True``, the default) re-creates
    this sampler from its arguments with a ``DistributedSampler`` as ``sampler``
    (a shuffle seeded by the run's seed and the epoch, for a shuffled loader):
    each rank buckets its own shard, and as the shards are the same size, the
    ranks run the same number of batches. Lightning can do so only for a loader
    built inside a ``*_dataloader`` hook (where it records the arguments); a
    loader built outside one and passed to ``fit`` under DDP makes Lightning raise
    (a ``TypeError`` that says to set ``use_distributed_sampler=False``).

    Args:
        sampler: the indices to batch.
        batch_size: samples per batch.
        drop_last: drop the short batch.
        widths: ``widths[i]`` of dataset index ``i`` (any sortable number).
        pool_batches: batches per sorted pool; None sorts everything at once.
        shuffle: shuffle the order of the batches.
        seed: seeds that shuffle; None: torch's global generator.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool, widths: Sequence[int],
                 pool_batches: int | None = 50, shuffle: bool = True, seed: int | None = 0):
        super().__init__(sampler, batch_size, drop_last)
        if pool_batches is not None and pool_batches < 1:
            raise ValueError(f"pool_batches must be >= 1 or None, got {pool_batches}")
        self.widths = list(widths)
        self.pool_batches, self.shuffle, self.seed = pool_batches, shuffle, seed

    @property
    def epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", 0))

    def batches(self, order: Sequence[int] | None = None, epoch: int | None = None) -> list[list[int]]:
        """This epoch's batches of dataset indices: of the sampler's order, or of ``order``
        shuffled as in ``epoch`` (default: the sampler's)."""
        order = list(self.sampler) if order is None else list(order)
        epoch = self.epoch if epoch is None else epoch
        pool = len(order) if self.pool_batches is None else self.pool_batches * self.batch_size
        batches = []
        for start in range(0, len(order), max(pool, 1)):
            chunk = sorted(order[start : start + pool], key=self.widths.__getitem__)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            generator = None if self.seed is None else epoch_generator(self.seed, epoch)
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self):
        yield from self.batches()


def _sampler_epoch(batches: Any) -> int | None:
    """The epoch a batch sampler's order belongs to (its own or its sampler's ``epoch``); None if unknown."""
    for source in (batches, getattr(batches, "sampler", None)):
        epoch = getattr(source, "epoch", None)
        if epoch is not None:
            return int(epoch)
    return None


class _SkipDoneBatches:
    """A batch sampler that leaves out the first ``done`` batches of epoch ``epoch`` (see :class:`ResumableLoader`).

    Its length stays the full epoch's: Lightning counts the batches done from the checkpoint.
    """

    def __init__(self, batches: Any, epoch: int, done: int):
        self.batches, self.epoch, self.done = batches, epoch, done

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        skip = self.done if _sampler_epoch(self.batches) == self.epoch else 0  # checked when iteration starts
        yield from itertools.islice(self.batches, skip, None)


class ResumableLoader(DataLoader):
    """A ``DataLoader`` that resumes mid-epoch: in epoch ``resume_at[0]`` it skips the first ``resume_at[1]`` batches.

    The skip happens on the batch indices, so no skipped sample is loaded. The
    order must be a function of the epoch (a seeded shuffle): the resumed run
    then draws the same batches as an uninterrupted one, from the next one on.
    """

    def __init__(self, *args, resume_at: tuple[int, int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume_at = resume_at

    @property
    def _index_sampler(self):
        batches = super()._index_sampler
        if not self.resume_at or not self.resume_at[1]:
            return batches
        return _SkipDoneBatches(batches, *self.resume_at)


class ResumableDataModule(L.LightningDataModule):
    """A data module whose checkpoints record how far into its epoch training was.

    ``state_dict`` (saved in every checkpoint) holds the epoch and the training
    batches done in it; after a checkpoint is loaded, :attr:`resume_at` says so
    and the module passes it to its training loader (``make_loader(resume_at=...)``).
    A checkpoint from an epoch's end resumes at the next epoch, which skips nothing.
    """

    resume_at: tuple[int, int] | None = None

    def state_dict(self) -> dict[str, int]:
        trainer = self.trainer
        if trainer is None:
            return {}
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return {"epoch": int(trainer.current_epoch), "batches_done": int(done)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "batches_done" in state_dict:
            self.resume_at = (int(state_dict["epoch"]), int(state_dict["batches_done"]))

    # -- the loaders: a subclass sets their options once and implements _loader
    def loader_options(self, batch_size: int, eval_batch_size: int | None, num_workers: int, seed: int) -> None:
        """What the loaders read: training ``batch_size``, ``eval_batch_size`` (None: ``batch_size``),
        ``num_workers`` and the shuffling ``seed``."""
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size if eval_batch_size is not None else batch_size
        self.num_workers = num_workers
        self.seed = seed

    def _loader(self, split: str, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        """The loader of ``split`` (``train``, ``val``, ``test``), set up for ``stage`` first if need be."""
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", "fit", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", "fit", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", "test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


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


def collate_tokens(items: Sequence[dict[str, Any]], inputs: torch.Tensor | None = None,
                   input_lengths: torch.Tensor | None = None) -> dict[str, Any]:
    """The one collate of token-target items (toy tasks, OCR lines): ``inputs`` stacked (``(B, T, F)``,
    or as given: padded images), ``input_lengths (B,)`` (stacked, or as given), ``targets (B, L)``
    and ``target_lengths (B,)`` long, ``texts`` list of B str. Module-level so it pickles for workers."""
    return {
        "inputs": torch.stack([it["inputs"] for it in items]) if inputs is None else inputs,
        "input_lengths": torch.stack([it["input_lengths"] for it in items]) if input_lengths is None else input_lengths,
        "targets": torch.stack([it["targets"] for it in items]),
        "target_lengths": torch.stack([it["target_lengths"] for it in items]),
        "texts": [it["texts"] for it in items],
    }


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
    widths: Sequence[int] | None = None,
    pool_batches: int = 50,
    resume_at: tuple[int, int] | None = None,
    sampler: Sampler[int] | None = None,
    bucketing: Callable[..., WidthBucketBatchSampler] = WidthBucketBatchSampler,
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
        widths: per-sample widths: batch samples of similar width
            (:class:`WidthBucketBatchSampler`), in shuffled pools of ``pool_batches``
            batches when shuffling, all sorted by width otherwise.
        pool_batches: see ``widths``.
        resume_at: ``(epoch, batches done)`` of a mid-epoch checkpoint: skip those
            batches in that epoch (see :class:`ResumableLoader`).
        sampler: the indices to load, in order (it must have ``set_epoch``); overrides
            ``shuffle``, ``seed`` and ``widths``.
        bucketing: makes the batch sampler of ``widths``: :class:`WidthBucketBatchSampler` or a
            subclass (bound to its own arguments with ``functools.partial``).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    given = sampler is not None
    if not given:
        sampler = EpochRandomSampler(dataset, seed) if shuffle and seed is not None else None
    if sampler is not None and resume_at:
        # a resumed run's first iterator is made before Lightning sets the epoch (and workers prefetch at once)
        sampler.set_epoch(resume_at[0])
    common = dict(num_workers=num_workers, collate_fn=collate_fn, pin_memory=pin_memory,
                  persistent_workers=num_workers > 0, resume_at=resume_at)
    if widths is not None and not given:
        order = sampler or (RandomSampler(dataset) if shuffle else SequentialSampler(dataset))
        batches = bucketing(order, batch_size, drop_last, widths,
                            pool_batches=pool_batches if shuffle else None, shuffle=shuffle, seed=seed)
        return ResumableLoader(dataset, batch_sampler=batches, **common)
    return ResumableLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        drop_last=drop_last,
        **common,
    )
