"""Plain progress lines for runs whose output is not a terminal (``nohup``, cluster jobs).

Rich's progress bar draws nothing into a file, so a long run would be silent until
its first epoch ends. :class:`ProgressLines` logs one line every ``every_seconds``
instead: epoch, step, images per second since the last line, the last training
loss and the estimated time left: at this pace, or what ``trainer.max_time`` leaves when that is
sooner.
"""

from __future__ import annotations

import datetime
import logging
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import Timer

__all__ = ["ProgressLines"]

log = logging.getLogger(__name__)


def _batch_size(batch) -> int:
    inputs = batch.get("inputs") if isinstance(batch, dict) else None
    return int(inputs.shape[0]) if inputs is not None else 0


def _time_left(trainer: L.Trainer) -> float | None:
    """Seconds of training ``trainer.max_time`` leaves (its :class:`Timer` callback), or None without one."""
    for callback in getattr(trainer, "callbacks", []):
        if isinstance(callback, Timer):
            return callback.time_remaining("train")
    return None


class ProgressLines(L.Callback):
    """Log ``epoch E step S/T, N img/s, loss L, ETA`` every ``every_seconds`` of training.

    Args:
        every_seconds: seconds between lines.
        only_without_tty: stay quiet when stdout is a terminal (the progress bar shows it there).
    """

    def __init__(self, every_seconds: float = 60.0, only_without_tty: bool = True):
        self.every_seconds = float(every_seconds)
        self.only_without_tty = only_without_tty
        self._last = self._start = 0.0
        self._images = 0

    def _active(self) -> bool:
        return not (self.only_without_tty and sys.stdout.isatty())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._last = self._start = time.monotonic()
        self._images = 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self._images += _batch_size(batch)
        now = time.monotonic()
        if now - self._last < self.every_seconds or not self._active() or not trainer.is_global_zero:
            return
        rate = self._images / (now - self._last)
        step, total = trainer.global_step, trainer.estimated_stepping_batches
        eta = (now - self._start) / max(step, 1) * max(total - step, 0) if total and total != float("inf") else None
        left = _time_left(trainer)
        if left is not None:
            left = max(left, 0.0)
            eta = left if eta is None else min(eta, left)
        loss = trainer.callback_metrics.get("train/loss_step")
        parts = [f"epoch {trainer.current_epoch}", f"step {step}/{total if eta is not None else '?'}",
                 f"{rate:.1f} img/s"]
        if loss is not None:
            parts.append(f"loss {float(loss):.4f}")
        if eta is not None:
            parts.append(f"ETA {datetime.timedelta(seconds=round(eta))}")
        log.info("%s", ", ".join(parts))
        self._last, self._images = now, 0
