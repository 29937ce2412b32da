"""An exponential moving average of the weights, kept beside training and read at validation and test."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class WeightEMA(WeightAveraging):
    """An exponential moving average of the model's weights and BatchNorm statistics (Lightning's
    :class:`WeightAveraging`).

    After each optimiser step the average moves ``1 - decay`` of the way to the trained weights;
    until step ``start_step`` it simply follows them, so a run shorter than that reads its trained
    weights. Validation reads the average (so the best checkpoint is picked by it), a checkpoint's
    ``state_dict`` holds it (``eval``, ``predict``, ``export`` and ``init_from`` read it), and the
    trained weights travel under ``current_model_state``, from which a resumed run goes on.

    Two departures from Lightning's ``EMAWeightAveraging``: it would average from the first step,
    the untrained weights included, and where fewer steps than ``update_starting_at_step`` ran it
    would validate and save the untrained weights; and it puts the trained weights back into the
    model whenever a checkpoint is loaded while it is attached, so ``trainer.test(ckpt_path="best")``
    after ``fit`` would read them, not the average that checkpoint was picked by. Here they are put
    back only when fitting resumes.
    """

    def __init__(self, decay: float = 0.999, start_step: int = 0, device: Any = None, use_buffers: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"callbacks.ema.decay={decay}: must be in [0, 1)")
        super().__init__(device=device, use_buffers=use_buffers, avg_fn=self._average)
        self.decay = float(decay)
        self.start_step = int(start_step)
        self._follow = True

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if step_idx is None:
            return False
        self._follow = step_idx < self.start_step
        return True

    def _average(self, averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        """The new average of one tensor; counters (BatchNorm's ``num_batches_tracked``) are copied."""
        if self._follow or not averaged.is_floating_point():
            return current
        return torch.lerp(averaged, current, 1.0 - self.decay)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)
