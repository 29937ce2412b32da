"""A budget for the whole run: training gets what set-up and corpus generation leave of it."""

from __future__ import annotations

import datetime
import logging
from time import monotonic

import lightning as L
from lightning.pytorch.callbacks import Timer

from seq2seq_lab.systems.schedules import seconds

log = logging.getLogger(__name__)


def _clock(secs: float) -> str:
    return str(datetime.timedelta(seconds=round(secs)))


class RunBudget(L.Callback):
    """Shortens ``trainer.max_time`` so that training ends within ``budget`` of the run's start.

    ``trainer.max_time`` counts training alone. A run that first draws its corpus
    (``prepare_data``) takes that time on top, and on a slow CPU the two can overrun the
    time a run is given. The clock here starts when the callback is built, with the run.
    When training starts, the training time is cut to what the budget has left, if that is
    less than ``max_time``. A schedule that follows the clock (``max_seconds``, as
    :class:`~seq2seq_lab.systems.schedules.OneCycleWithinTime` has) is cut to match, so it
    still ends where training does. The change is logged.

    A resumed run keeps the training time it already spent, so only this process's
    set-up is charged to it. The last validation and the test come after the budget.

    Args:
        budget: ``"DD:HH:MM:SS"``, a dict of ``timedelta`` fields, or None (off).
    """

    def __init__(self, budget: str | dict | None = None):
        try:
            self.budget = seconds(budget)
        except (TypeError, ValueError):
            raise ValueError(f"budget={budget!r}: want \"DD:HH:MM:SS\", e.g. \"00:01:26:00\", or null") from None
        if self.budget is not None and self.budget <= 0:
            raise ValueError(f"budget={budget!r}: must be positive")
        self.start = monotonic()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.budget is None:
            return
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        if timer is None or getattr(timer, "_duration", None) is None:
            log.warning("callbacks.run_budget needs trainer.max_time to shorten; the budget is ignored")
            return
        spent = monotonic() - self.start
        trained = timer.time_elapsed("train")
        duration = min(timer._duration, trained + max(self.budget - spent, 0.0))
        if duration >= timer._duration:
            return
        log.info("run budget %s: set-up and corpus took %s, so training stops after %s instead of trainer.max_time %s",
                 _clock(self.budget), _clock(spent), _clock(duration), _clock(timer._duration))
        timer._duration = duration  # the Timer keeps its limit here; it has no public setter
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if getattr(scheduler, "max_seconds", None):
                scheduler.max_seconds = min(scheduler.max_seconds, duration)
