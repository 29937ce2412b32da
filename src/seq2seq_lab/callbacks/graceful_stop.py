"""Stop a run on SIGTERM or Ctrl-C without losing it: save ``last.ckpt`` mid-epoch and say so in metrics.json.

Lightning already catches SIGTERM: it finishes the batch in flight and raises
``SIGTERMException`` (on every DDP rank). :class:`GracefulStop` saves the
checkpoint there, in ``on_exception``, and routes the first Ctrl-C the same
way (a second one aborts at once). The checkpoint records how far into the
epoch the run was; the data modules skip those batches when the run resumes
(:class:`seq2seq_lab.data.batching.ResumableEpochs`), so it continues with the
next batch of the same order.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

from seq2seq_lab.runs import STATUS_STOPPED, update_metrics

__all__ = ["GracefulStop"]

log = logging.getLogger(__name__)


class GracefulStop(L.Callback):
    """On SIGTERM (or a first Ctrl-C): save ``dirpath/filename.ckpt`` and mark metrics.json ``stopped``.

    Args:
        dirpath: the checkpoint directory (the one ``last.ckpt`` lives in).
        filename: checkpoint name without ``.ckpt``.
        metrics_dir: where metrics.json lives (the run dir); None: the parent of ``dirpath``.
    """

    def __init__(self, dirpath: str, filename: str = "last", metrics_dir: str | None = None):
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.metrics_dir = Path(metrics_dir) if metrics_dir else self.path.parent.parent
        self._previous_sigint = None
        self._interrupts = 0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()

    def _restore_sigint(self) -> None:
        if self._previous_sigint is not None:
            signal.signal(signal.SIGINT, self._previous_sigint)
            self._previous_sigint = None

    def _on_sigint(self, signum, frame) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            raise KeyboardInterrupt
        log.warning("Ctrl-C: stopping after this batch and saving %s (press again to abort at once)", self.path)
        os.kill(os.getpid(), signal.SIGTERM)  # Lightning's SIGTERM path: finish the batch, then stop

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore_sigint()
        if not isinstance(exception, SIGTERMException) or trainer.sanity_checking:
            return
        trainer.save_checkpoint(self.path)  # a collective call under DDP: every rank gets here
        if trainer.is_global_zero:
            update_metrics(self.metrics_dir, status=STATUS_STOPPED, epoch=trainer.current_epoch,
                           global_step=trainer.global_step, checkpoint=str(self.path))
            log.warning("stopped at epoch %d, step %d: saved %s; run the same command again to resume",
                        trainer.current_epoch, trainer.global_step, self.path)
