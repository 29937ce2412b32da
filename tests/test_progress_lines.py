"""Plain progress lines for runs without a terminal."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch
from lightning.pytorch.callbacks import Timer

from seq2seq_lab.callbacks import progress_lines
from seq2seq_lab.callbacks.progress_lines import ProgressLines


def test_a_line_every_n_seconds_with_rate_loss_and_eta(monkeypatch, caplog):
    clock = iter([0.0, 10.0, 61.0, 70.0])
    monkeypatch.setattr(progress_lines.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(progress_lines.sys.stdout, "isatty", lambda: False, raising=False)
    trainer = SimpleNamespace(current_epoch=0, global_step=50, estimated_stepping_batches=200, is_global_zero=True,
                              callback_metrics={"train/loss_step": torch.tensor(1.25)})
    cb = ProgressLines(every_seconds=60)
    batch = {"inputs": torch.zeros(8, 1, 32, 100)}
    with caplog.at_level(logging.INFO, logger=progress_lines.__name__):
        cb.on_train_start(trainer, None)
        cb.on_train_batch_end(trainer, None, None, batch, 0)  # t=10: too early
        assert not caplog.records
        cb.on_train_batch_end(trainer, None, None, batch, 1)  # t=61: 16 images in 61 s
        cb.on_train_batch_end(trainer, None, None, batch, 2)  # t=70: quiet again
    assert len(caplog.records) == 1
    line = caplog.records[0].getMessage()
    assert "epoch 0" in line and "step 50/200" in line and "0.3 img/s" in line and "loss 1.2500" in line
    assert "ETA 0:03:03" in line  # 61 s for 50 steps, 150 to go


def test_the_eta_is_what_max_time_leaves_when_that_is_sooner(monkeypatch, caplog):
    clock = iter([0.0, 61.0])
    monkeypatch.setattr(progress_lines.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(progress_lines.sys.stdout, "isatty", lambda: False, raising=False)
    timer = Timer(duration={"minutes": 5})
    monkeypatch.setattr(timer, "time_remaining", lambda stage="train": 240.0)
    trainer = SimpleNamespace(current_epoch=0, global_step=50, estimated_stepping_batches=20_000, is_global_zero=True,
                              callback_metrics={}, callbacks=[timer])
    cb = ProgressLines(every_seconds=60)
    with caplog.at_level(logging.INFO, logger=progress_lines.__name__):
        cb.on_train_start(trainer, None)
        cb.on_train_batch_end(trainer, None, None, {"inputs": torch.zeros(8, 1, 32, 100)}, 0)
    line = caplog.records[0].getMessage()
    assert "ETA 0:04:00" in line  # at this pace 19,950 steps would take 6.7 hours; max_time leaves 4 minutes
