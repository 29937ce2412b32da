"""A whole-run budget cuts trainer.max_time (and a clock-following schedule) by the set-up's time."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import Timer

from seq2seq_lab.callbacks import run_budget
from seq2seq_lab.callbacks.run_budget import RunBudget
from seq2seq_lab.systems.schedules import OneCycleWithinTime


def _trainer(timer: Timer | None, scheduler=None) -> SimpleNamespace:
    configs = [SimpleNamespace(scheduler=scheduler)] if scheduler is not None else []
    return SimpleNamespace(callbacks=[timer] if timer else [], lr_scheduler_configs=configs)


def _schedule(max_seconds: float) -> OneCycleWithinTime:
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    return OneCycleWithinTime(optimizer, max_lr=1e-3, total_steps=100, max_seconds=max_seconds)


def test_training_gets_what_the_corpus_left_of_the_budget(monkeypatch, caplog):
    clock = iter([100.0, 100.0 + 17 * 60])  # built at t=100 s; training starts after 17 minutes of corpus
    monkeypatch.setattr(run_budget, "monotonic", lambda: next(clock))
    callback = RunBudget(budget="00:01:26:00")
    timer = Timer(duration="00:01:18:00")
    scheduler = _schedule(78 * 60.0)
    with caplog.at_level(logging.INFO, logger=run_budget.__name__):
        callback.on_train_start(_trainer(timer, scheduler), None)
    assert timer._duration == pytest.approx(69 * 60)  # 86 - 17 minutes, not 78
    assert timer.time_remaining("train") == pytest.approx(69 * 60)
    assert scheduler.max_seconds == pytest.approx(69 * 60)  # the one-cycle still ends when training does
    assert "training stops after 1:09:00 instead of trainer.max_time 1:18:00" in caplog.text


def test_a_budget_with_room_to_spare_changes_nothing(monkeypatch):
    clock = iter([0.0, 60.0])  # the corpus was reused: a minute of set-up
    monkeypatch.setattr(run_budget, "monotonic", lambda: next(clock))
    callback = RunBudget(budget="00:01:26:00")
    timer = Timer(duration="00:01:18:00")
    scheduler = _schedule(78 * 60.0)
    callback.on_train_start(_trainer(timer, scheduler), None)
    assert timer._duration == 78 * 60 and scheduler.max_seconds == 78 * 60


def test_a_resumed_run_keeps_the_training_time_it_spent(monkeypatch):
    clock = iter([0.0, 120.0])
    monkeypatch.setattr(run_budget, "monotonic", lambda: next(clock))
    callback = RunBudget(budget={"minutes": 10})
    timer = Timer(duration={"minutes": 60})
    monkeypatch.setattr(timer, "time_elapsed", lambda stage="train": 30 * 60.0)  # 30 minutes trained before the kill
    callback.on_train_start(_trainer(timer), None)
    assert timer._duration == pytest.approx(30 * 60 + 8 * 60)  # this process's 2 minutes of set-up charged


def test_off_without_a_budget_and_ignored_without_max_time(monkeypatch, caplog):
    monkeypatch.setattr(run_budget, "monotonic", lambda: 1e6)
    RunBudget(budget=None).on_train_start(_trainer(None), None)  # nothing to do, nothing said
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger=run_budget.__name__):
        RunBudget(budget="00:00:10:00").on_train_start(_trainer(None), None)
    assert "needs trainer.max_time" in caplog.text
    with pytest.raises(ValueError, match="positive"):
        RunBudget(budget="00:00:00:00")
    with pytest.raises(ValueError, match="want \"DD:HH:MM:SS\""):
        RunBudget(budget="86 minutes")


def test_ocr_zh_cpu_sets_a_budget_under_90_minutes(tmp_path):
    from seq2seq_lab.systems.schedules import seconds

    from helpers import compose_config

    cfg = compose_config("train", ["experiment=ocr_zh_cpu"], tmp_path)
    budget = seconds(cfg.callbacks.run_budget.budget)
    assert seconds(cfg.trainer.max_time) < budget <= 87 * 60  # leaves the last validation and test inside 90


def test_a_run_stops_when_its_budget_is_spent(fake_data_dir, tmp_path, entry_points, monkeypatch):
    import json

    from test_reliability import QUIET, run_cli

    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))
    args = ["experiment=toy_reverse", "data.num_train=400", "data.num_val=50", "data.num_test=50", "data.batch_size=8",
            "model.hidden_dim=16", "model.embed_dim=8", "trainer.max_epochs=1000", "+trainer.max_time=00:00:10:00",
            "callbacks.run_budget.budget=00:00:00:01", "test=false", f"hydra.run.dir={tmp_path}/run", *QUIET]
    result = run_cli(entry_points, args, fake_data_dir, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "run budget 0:00:01" in result.stdout + result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs"] < 1000  # 1,000 epochs of 50 batches would have taken minutes: the budget stopped it


def test_ocr_zh_has_no_budget(tmp_path):
    from helpers import compose_config

    cfg = compose_config("train", ["experiment=ocr_zh"], tmp_path)
    assert cfg.trainer.max_time is None and cfg.callbacks.run_budget.budget is None
