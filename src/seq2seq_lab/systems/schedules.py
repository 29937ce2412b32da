"""Learning-rate schedules that know the run's time budget.

A one-cycle schedule laid out over ``max_epochs`` is cut short when ``trainer.max_time``
ends the run first, as it does on a slower machine: the run stops with the learning
rate still high. :class:`OneCycleWithinTime` runs the same cycle over whichever ends
first, the steps or the wall-clock budget, so that the anneal completes either way.
The clock takes over only once it leads the steps by more than a slack (1% of the
cycle), so a run that keeps pace (a ``max_steps`` run, a fast machine) follows its
steps alone, as ``OneCycleLR`` does, and a seed fixes it: start-up latencies and
step-to-step jitter do not move its learning rates.
"""

from __future__ import annotations

import datetime
import math
import time

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["OneCycleWithinTime", "seconds"]


def seconds(max_time) -> float | None:
    """A Lightning ``max_time`` (``"DD:HH:MM:SS"``, a dict of ``timedelta`` fields, or a ``timedelta``) in seconds."""
    if max_time is None:
        return None
    if isinstance(max_time, str):
        days, hours, minutes, secs = (int(x) for x in max_time.split(":"))
        return float(((days * 24 + hours) * 60 + minutes) * 60 + secs)
    if isinstance(max_time, dict):
        return datetime.timedelta(**max_time).total_seconds()
    return float(max_time.total_seconds())


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


class OneCycleWithinTime(LRScheduler):
    """``torch.optim.lr_scheduler.OneCycleLR`` (cosine, momentum cycled) over steps or wall time.

    The position in the cycle is the step, in steps ``0 .. total_steps - 1``, until the
    clock's position ``elapsed / max_seconds * (total_steps - 1)`` leads it by more than
    ``clock_slack * (total_steps - 1)``; from then on it is the larger of the two. Without
    ``max_seconds``, or while the steps keep pace with the budget, it is exactly
    ``OneCycleLR``, whatever the start-up took; on a machine too slow to take
    ``total_steps`` within ``max_seconds`` the cycle follows the clock (from the moment it
    falls behind by the slack) and ends at the final learning rate when the budget does.
    Elapsed time is counted between calls to :meth:`step`; it and whether the clock has
    taken over are kept in the state dict, so a resumed run continues where it stopped.

    Args:
        optimizer: its param groups get the learning rate (and ``betas[0]`` or ``momentum``).
        max_lr: peak learning rate.
        total_steps: optimizer steps of the whole run (Lightning's estimated stepping batches).
        max_seconds: wall-clock budget (``trainer.max_time``); None: steps only.
        clock_slack: how far, as a share of the cycle, the clock must lead the steps before
            it drives (0: from the first step, as before 2026-12-06).
        pct_start, div_factor, final_div_factor, base_momentum, max_momentum, cycle_momentum:
            as in ``OneCycleLR``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int,
                 max_seconds: float | None = None, pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, base_momentum: float = 0.85, max_momentum: float = 0.95,
                 cycle_momentum: bool = True, clock_slack: float = 0.01, last_epoch: int = -1):
        if (total_steps < 1 or not 0.0 < pct_start < 1.0 or (max_seconds is not None and max_seconds <= 0)
                or not 0.0 <= clock_slack < 1.0):
            raise ValueError(f"need total_steps >= 1, 0 < pct_start < 1, max_seconds > 0 or None and "
                             f"0 <= clock_slack < 1, got {total_steps}, {pct_start}, {max_seconds}, {clock_slack}")
        self.max_lr, self.total_steps, self.max_seconds = float(max_lr), int(total_steps), max_seconds
        self.initial_lr = self.max_lr / div_factor
        self.final_lr = self.initial_lr / final_div_factor
        self.warmup_end = float(pct_start * total_steps) - 1
        self.base_momentum, self.max_momentum, self.cycle_momentum = base_momentum, max_momentum, cycle_momentum
        self.clock_slack = float(clock_slack)
        self.elapsed = 0.0
        self.follows_clock = False  # latched: once the clock has led by the slack it drives for good
        self._clock: float | None = None
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", self.initial_lr)
        super().__init__(optimizer, last_epoch)

    def position(self) -> float:
        """Where the run is in the cycle, in steps (``0 .. total_steps - 1``); latches :attr:`follows_clock`."""
        step = float(self.last_epoch)
        if self.max_seconds:
            clock = self.elapsed / self.max_seconds * (self.total_steps - 1)
            self.follows_clock = self.follows_clock or clock - step > self.clock_slack * (self.total_steps - 1)
            if self.follows_clock:
                step = max(step, clock)
        return min(step, self.total_steps - 1.0)

    def progress(self) -> float:
        """How far the run is through the cycle, 0 to 1 (:meth:`position` over ``total_steps - 1``).

        What ``data.length_schedule`` reads (:func:`~seq2seq_lab.data.length_schedule.training_progress`),
        so that its stages start where the learning rates say the run is, slack included.
        """
        return self.position() / (self.total_steps - 1) if self.total_steps > 1 else 1.0

    def _phase(self) -> tuple[float, bool]:
        """The fraction of the current phase done, and whether it is the warm-up."""
        step = self.position()
        if step <= self.warmup_end:
            return (step / self.warmup_end if self.warmup_end > 0 else 1.0), True
        span = (self.total_steps - 1) - self.warmup_end
        return ((step - self.warmup_end) / span if span > 0 else 1.0), False

    def get_lr(self) -> list[float]:
        pct, warmup = self._phase()
        lr = _cos(self.initial_lr, self.max_lr, pct) if warmup else _cos(self.max_lr, self.final_lr, pct)
        if self.cycle_momentum:
            momentum = (_cos(self.max_momentum, self.base_momentum, pct) if warmup
                        else _cos(self.base_momentum, self.max_momentum, pct))
            for group in self.optimizer.param_groups:
                if "betas" in group:
                    group["betas"] = (momentum, *group["betas"][1:])
                elif "momentum" in group:
                    group["momentum"] = momentum
        return [lr for _ in self.optimizer.param_groups]

    def step(self, epoch: int | None = None) -> None:
        now = time.monotonic()
        if self._clock is not None:
            self.elapsed += now - self._clock
        self._clock = now
        super().step(epoch)

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["_clock"] = None  # this process's clock means nothing to the next one
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._clock = None
