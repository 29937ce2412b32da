"""Shared plumbing of the TensorBoard image callbacks: when to log, where, and which batch."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from seq2seq_lab.callbacks.inspection import Inspection, inspect_batch


def tensorboard_writer(trainer: L.Trainer):
    """The ``SummaryWriter`` of the run's TensorBoard logger on global rank 0, else None."""
    if not trainer.is_global_zero:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None


def has_tensorboard(trainer: L.Trainer) -> bool:
    return any(isinstance(lg, TensorBoardLogger) for lg in trainer.loggers)


def head(batch: dict[str, Any], n: int) -> dict[str, Any]:
    """The first ``n`` items of every tensor ``(B, ...)`` or list of a batch, tensors detached on the CPU."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            out[key] = value[:n].detach().cpu()
        elif isinstance(value, (list, tuple)):
            out[key] = list(value[:n])
    return out


class EveryNEpochs(L.Callback):
    """A callback that logs to TensorBoard after the validation of every ``every_n_epochs``-th
    epoch and of the last one; it does nothing without a TensorBoard logger.

    Subclasses get ``self.samples``: the first ``num_samples`` items of the first
    validation batch of a due epoch (the same items every time: validation is not shuffled).
    """

    def __init__(self, every_n_epochs: int = 5, num_samples: int = 4):
        if every_n_epochs < 1 or num_samples < 1:
            raise ValueError(f"every_n_epochs and num_samples must be >= 1, got {every_n_epochs}, {num_samples}")
        self.every_n_epochs = every_n_epochs
        self.num_samples = num_samples
        self.samples: dict[str, Any] | None = None

    def due(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking or not has_tensorboard(trainer):
            return False
        epoch = trainer.current_epoch + 1
        last = trainer.max_epochs is not None and epoch >= trainer.max_epochs
        return epoch % self.every_n_epochs == 0 or last

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx == 0 and dataloader_idx == 0 and isinstance(batch, dict) and self.due(trainer):
            self.samples = head(batch, self.num_samples)

    def inspected(self, trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[Any, Inspection] | None:
        """``(writer, inspection)`` of the kept samples at a due epoch's end, else None; forgets the samples."""
        writer = tensorboard_writer(trainer)
        if self.samples is None or writer is None or not self.due(trainer):
            return None
        result = inspect_batch(pl_module, self.samples)
        self.samples = None
        return None if result is None else (writer, result)
