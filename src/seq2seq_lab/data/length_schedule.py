"""Short lines first: a schedule of the longest label a training batch may hold, by how far the run is.

A model that must read lines of 2-40 characters spends most of a step's time on the
long ones (wider images, more decoding steps). ``data.length_schedule`` lets it learn
to read on short lines first, at their speed, and take the long ones later in the
same run::

    length_schedule: [[0, 10], [0.6, 40]]   # lines of at most 10 characters, then all up to 40 from 60% of the run

:class:`LengthScheduleBatchSampler` picks the stage at every batch from
:func:`training_progress`: the learning-rate schedule's own position where it has one
(:class:`~seq2seq_lab.systems.schedules.OneCycleWithinTime`, which follows the steps while
they keep pace with the time budget), else the larger of the steps' and the time's share.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from lightning.pytorch.callbacks import Timer
from torch.utils.data import Sampler

from seq2seq_lab.data.batching import WidthBucketBatchSampler
from seq2seq_lab.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["LengthScheduleBatchSampler", "check_length_schedule", "training_progress"]

_PASS = 1_000_003  # a stage's p-th extra pass within epoch e reads the sampler's order of epoch e + p * _PASS


def check_length_schedule(schedule: Any, key: str = "data.length_schedule") -> tuple[tuple[float, int], ...]:
    """``[[start, max_chars], ...]`` -> a tuple of ``(start, max_chars)``.

    The starts are fractions of the run (0 <= start < 1), the first 0, strictly ascending;
    ``max_chars`` are integers >= 1.

    Raises:
        ConfigError: naming ``key`` and what is wrong.
    """
    try:
        stages = tuple((float(start), max_chars) for start, max_chars in schedule)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={schedule!r}: want a list of [start, max_chars] pairs, "
                          f"e.g. [[0, 10], [0.6, 40]]") from None
    if not stages or stages[0][0] != 0.0:
        raise ConfigError(f"{key}={schedule!r}: the first stage must start at 0")
    starts = [start for start, _ in stages]
    if any(b <= a for a, b in zip(starts, starts[1:])) or starts[-1] >= 1.0:
        raise ConfigError(f"{key}={schedule!r}: the starts must rise from 0 and stay below 1")
    for _, max_chars in stages:
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise ConfigError(f"{key}={schedule!r}: max_chars must be an integer >= 1, got {max_chars!r}")
    return stages


def training_progress(trainer: Any) -> float:
    """How far ``trainer``'s training is, from 0 to 1.

    Where a learning-rate scheduler of the run tells its progress (a ``progress()``
    method, as :class:`~seq2seq_lab.systems.schedules.OneCycleWithinTime` has), that:
    the steps' share while they keep pace with the time budget, so a seed fixes when a
    stage starts, and the clock's once it leads by the scheduler's slack. Otherwise the
    larger of its optimizer steps' share of ``trainer.estimated_stepping_batches``
    (``max_steps``, or ``max_epochs``' batches) and its training time's share of
    ``trainer.max_time`` (the ``Timer`` callback's limit, which ``callbacks.run_budget``
    may have shortened). 0 without a trainer.
    """
    if trainer is None:
        return 0.0
    for config in getattr(trainer, "lr_scheduler_configs", None) or ():
        progress = getattr(config.scheduler, "progress", None)
        if callable(progress):
            return min(max(float(progress()), 0.0), 1.0)
    shares = [0.0]
    total = trainer.estimated_stepping_batches
    if 0 < total < float("inf"):
        shares.append(trainer.global_step / total)
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    duration = getattr(timer, "_duration", None)  # the Timer keeps its limit here; it has no public getter
    if duration:
        shares.append(timer.time_elapsed("train") / duration)
    return min(max(shares), 1.0)


class LengthScheduleBatchSampler(WidthBucketBatchSampler):
    """:class:`~seq2seq_lab.data.batching.WidthBucketBatchSampler` over the lines the schedule allows now.

    At every batch, ``progress()`` (0 to 1) picks the last stage of ``schedule`` that
    has started, and the batch holds only lines of at most its ``max_chars``
    characters (``lengths[i]`` of dataset index ``i``). Each stage reads its lines in
    the sampler's order of the epoch, bucketed by width as the parent does; one whose
    lines run out within the epoch goes on with another pass in another order. An
    epoch keeps the parent's length (batches of all the lines), so Lightning's epochs
    and schedules count as without the schedule. With DataLoader workers a new stage
    starts a few batches late (those already requested).

    The batches depend on ``(seed, epoch)`` and the batch at which each stage started.

    Args:
        sampler, batch_size, drop_last, widths, pool_batches, shuffle, seed: as the parent's.
        lengths: ``lengths[i]``, the characters of dataset index ``i``'s label.
        schedule: ``[[start, max_chars], ...]`` (see :func:`check_length_schedule`).
        progress: returns how far the run is, 0 to 1 (e.g. :func:`training_progress`).

    Raises:
        ValueError: a stage allows no line.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool, widths: Sequence[int],
                 lengths: Sequence[int], schedule: Sequence[Sequence[float]], progress: Callable[[], float],
                 pool_batches: int | None = 50, shuffle: bool = True, seed: int | None = 0):
        super().__init__(sampler, batch_size, drop_last, widths, pool_batches, shuffle, seed)
        self.lengths = list(lengths)
        self.schedule = check_length_schedule(schedule)
        self.progress = progress
        self._logged: int | None = None  # the stage last logged
        shortest = min(self.lengths, default=0)
        for start, max_chars in self.schedule:
            if max_chars < shortest:
                raise ValueError(f"length schedule stage from {start:g}: no line has at most {max_chars} characters "
                                 f"(the shortest has {shortest})")

    def max_chars(self) -> int:
        """The longest label the current stage allows."""
        now = self.progress()
        return [max_chars for start, max_chars in self.schedule if start <= now][-1]

    def _order(self, epoch: int) -> list[int]:
        """The sampler's order in ``epoch``, the same at every call (its own epoch is restored)."""
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if set_epoch is None:
            return list(self.sampler)
        current = self.epoch  # set again after the order is read: a seeded shuffle's generator is used up by reading
        set_epoch(epoch)
        try:
            return list(self.sampler)
        finally:
            set_epoch(current)

    def _stage(self, max_chars: int) -> Iterator[list[int]]:
        """Batches of the lines of at most ``max_chars`` characters, pass after pass."""
        for extra in itertools.count():
            epoch = self.epoch + extra * _PASS
            order = [i for i in self._order(epoch) if self.lengths[i] <= max_chars]
            batches = self.batches(order, epoch)
            if not batches:
                raise ValueError(f"length schedule: no batch of lines of at most {max_chars} characters "
                                 f"({len(order)} lines, batch_size {self.batch_size}, drop_last {self.drop_last})")
            yield from batches

    def __iter__(self) -> Iterator[list[int]]:
        stages: dict[int, Iterator[list[int]]] = {}
        for _ in range(len(self)):
            max_chars = self.max_chars()
            if max_chars not in stages:
                stages[max_chars] = self._stage(max_chars)
                if max_chars != self._logged:
                    log.info("length schedule: lines of at most %d characters from %.0f%% of the run", max_chars,
                             100 * self.progress())
                    self._logged = max_chars
            yield next(stages[max_chars])
