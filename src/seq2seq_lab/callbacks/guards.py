"""Callbacks that keep a run healthy: a per-epoch reseed and a non-finite-loss stop."""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch

from seq2seq_lab.errors import NonFiniteLossError


def _last_checkpoint(trainer: L.Trainer) -> str | None:
    """Path of the newest ``last.ckpt`` any checkpoint callback wrote."""
    for callback in trainer.checkpoint_callbacks:
        for path in (callback.last_model_path, callback.best_model_path):
            if path and Path(path).name == "last.ckpt" and Path(path).is_file():
                return path
    return None


class ReseedEachEpoch(L.Callback):
    """Seeds python, numpy and torch from ``(seed, epoch)`` at the start of every
    training epoch, so that dropout and teacher-forcing draws after a resume
    equal those of an uninterrupted run."""

    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = (self.seed * 1_000_003 + trainer.current_epoch + trainer.global_rank * 7919) % 2**32
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)


class StopOnNonFiniteLoss(L.Callback):
    """Stops the run, before the bad gradients reach the weights, when the loss is NaN or inf.

    Raises :class:`NonFiniteLossError` from ``on_before_backward``; Lightning
    then ends without saving, so ``last.ckpt`` stays the last good checkpoint.
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss).all()):
            ckpt = _last_checkpoint(trainer) or "none yet"
            raise NonFiniteLossError(
                f"train/loss is {loss.item()} at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                f"stopped before the update. Last good checkpoint: {ckpt}. "
                "Try a lower system.optimizer.lr or trainer.gradient_clip_val=1.0."
            )
