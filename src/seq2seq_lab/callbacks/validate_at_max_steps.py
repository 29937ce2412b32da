"""Validation at the last step of a run that ``trainer.max_steps`` ends in mid-epoch."""

from __future__ import annotations

import lightning as L


class ValidateAtMaxSteps(L.Callback):
    """Asks the trainer to stop once ``global_step`` reaches ``trainer.max_steps``.

    Lightning validates in mid-epoch when a stop is requested (``trainer.should_stop``, as
    ``max_time`` and early stopping set it), but not when ``max_steps`` simply runs out: such a
    run would end without validating its last steps, and its best checkpoint and automatic test
    would be those of the last epoch end. Requesting the stop at that step makes it validate
    there, like a ``max_time`` stop. Runs without ``max_steps`` (``-1``) are untouched.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if trainer.max_steps > 0 and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True
