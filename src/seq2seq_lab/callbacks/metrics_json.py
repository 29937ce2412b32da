"""Writes a run's final figures to ``metrics.json``."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L
import torch


def _plain(value):
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


class MetricsJSON(L.Callback):
    """Times training and writes ``metrics.json``.

    The file holds every logged ``val/*_best`` and ``test/*`` value (and the
    last ``val/*``), ``num_params``, ``epochs``, ``train_seconds`` (fit wall
    time, validation included), ``seconds_per_epoch``, ``samples_per_second``
    (training samples over time spent in training batches' epochs, validation
    excluded) and ``seed``. It is rewritten after fit and after test, atomically,
    by rank 0 only.
    """

    def __init__(self, path: str, seed: int | None = None, extra: dict | None = None):
        self.path = Path(path)
        self.seed = seed
        self.extra = dict(extra or {})
        self.metrics: dict = {}
        self._fit_start = 0.0
        self._epoch_start = 0.0
        self._train_end: float | None = None
        self._train_seconds_in_epochs = 0.0
        self._epoch_seconds: list[float] = []
        self._samples = 0

    # -- timing -------------------------------------------------------------
    def on_fit_start(self, trainer, pl_module):
        self._fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()
        self._train_end: float | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._samples += _batch_size(batch) * trainer.world_size

    def on_validation_start(self, trainer, pl_module):
        # validation inside a training epoch ends that epoch's training part
        if not trainer.sanity_checking and self._epoch_start and self._train_end is None:
            self._train_end = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        now = time.perf_counter()
        self._train_seconds_in_epochs += (self._train_end or now) - self._epoch_start
        self._epoch_seconds.append(now - self._epoch_start)

    def on_fit_end(self, trainer, pl_module):
        epochs = len(self._epoch_seconds)
        self.metrics.update(
            epochs=epochs,
            train_seconds=round(time.perf_counter() - self._fit_start, 3),
            seconds_per_epoch=round(sum(self._epoch_seconds) / epochs, 3) if epochs else None,
            samples_per_second=round(self._samples / self._train_seconds_in_epochs, 1)
            if self._train_seconds_in_epochs
            else None,
        )
        self._collect(trainer, pl_module, prefixes=("val/", "train/"))
        self.write(trainer)

    def on_test_end(self, trainer, pl_module):
        self._collect(trainer, pl_module, prefixes=("test/",))
        self.write(trainer)

    # -- output -------------------------------------------------------------
    def _collect(self, trainer, pl_module, prefixes):
        for key, value in trainer.callback_metrics.items():
            if key.startswith(prefixes):
                self.metrics[key] = _plain(value)
        self.metrics["num_params"] = sum(p.numel() for p in pl_module.parameters())
        self.metrics["seed"] = self.seed

    def write(self, trainer) -> None:
        if trainer.global_rank != 0:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({**self.extra, **self.metrics}, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


def _batch_size(batch) -> int:
    if isinstance(batch, dict):
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                return value.size(0)
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0].size(0)
    return 0
