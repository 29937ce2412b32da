"""The one-cycle schedule that ends within the run's time budget."""

from __future__ import annotations

import pytest
import torch

from seq2seq_lab.systems import schedules
from seq2seq_lab.systems.schedules import OneCycleWithinTime, seconds


def _adam() -> torch.optim.Adam:
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)


def test_without_a_time_budget_it_is_torchs_one_cycle():
    ours_opt, torch_opt = _adam(), _adam()
    ours = OneCycleWithinTime(ours_opt, max_lr=0.01, total_steps=50, pct_start=0.2)
    reference = torch.optim.lr_scheduler.OneCycleLR(torch_opt, max_lr=0.01, total_steps=50, pct_start=0.2)
    for _ in range(49):
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(torch_opt.param_groups[0]["lr"], rel=1e-9)
        assert ours_opt.param_groups[0]["betas"][0] == pytest.approx(torch_opt.param_groups[0]["betas"][0], rel=1e-9)
        ours_opt.step(), torch_opt.step()
        ours.step(), reference.step()


def test_a_slow_run_follows_the_clock_and_ends_annealed(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(schedules.time, "monotonic", lambda: clock[0])
    optimizer = _adam()
    schedule = OneCycleWithinTime(optimizer, max_lr=0.01, total_steps=1001, max_seconds=60.0, pct_start=0.1)
    clock[0] += 30.0  # half the budget gone after one step: the cycle is half done
    optimizer.step(), schedule.step()
    assert schedule.position() == pytest.approx(500.0)
    state = schedule.state_dict()

    resumed = OneCycleWithinTime(_adam(), max_lr=0.01, total_steps=1001, max_seconds=60.0, pct_start=0.1)
    resumed.load_state_dict(state)  # a resumed run continues from the time it had used
    assert resumed.elapsed == pytest.approx(30.0) and resumed.position() == pytest.approx(500.0)
    clock[0] += 31.0
    optimizer.step(), schedule.step()
    assert schedule.position() == 1000.0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 / 25 / 1e4)


def test_a_run_that_keeps_pace_is_torchs_one_cycle_whatever_its_start_up_took(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(schedules.time, "monotonic", lambda: clock[0])
    ours_opt, torch_opt = _adam(), _adam()
    ours = OneCycleWithinTime(ours_opt, max_lr=0.01, total_steps=1001, max_seconds=100.0, pct_start=0.1)
    reference = torch.optim.lr_scheduler.OneCycleLR(torch_opt, max_lr=0.01, total_steps=1001, pct_start=0.1)
    clock[0] += 0.9  # sanity validation and loader start-up: the clock 9 steps ahead of the first step
    for step in range(1000):
        ours_opt.step(), torch_opt.step()
        ours.step(), reference.step()
        clock[0] += 0.1 if step % 2 else 0.05  # jitter, 0.075 s a step on average: the run keeps pace
        assert ours_opt.param_groups[0]["lr"] == torch_opt.param_groups[0]["lr"]
    assert not ours.follows_clock


def test_the_clock_takes_over_once_it_leads_by_the_slack_and_keeps_it_on_resume(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(schedules.time, "monotonic", lambda: clock[0])
    optimizer = _adam()
    schedule = OneCycleWithinTime(optimizer, max_lr=0.01, total_steps=1001, max_seconds=100.0, clock_slack=0.05)
    for _ in range(5):  # 1 s a step, 10 cycle steps of the clock: after 5 steps it leads by 45, within the slack of 50
        clock[0] += 1.0
        optimizer.step(), schedule.step()
    assert schedule.position() == 5.0 and not schedule.follows_clock
    clock[0] += 1.0
    optimizer.step(), schedule.step()  # 54 ahead: the clock drives
    assert schedule.follows_clock and schedule.position() == pytest.approx(60.0)

    resumed = OneCycleWithinTime(_adam(), max_lr=0.01, total_steps=1001, max_seconds=100.0, clock_slack=0.05)
    resumed.load_state_dict(schedule.state_dict())
    assert resumed.follows_clock and resumed.position() == pytest.approx(60.0)


@pytest.mark.parametrize("clock_slack", [-0.1, 1.0])
def test_a_slack_outside_0_to_1_is_refused(clock_slack):
    with pytest.raises(ValueError, match="clock_slack"):
        OneCycleWithinTime(_adam(), max_lr=0.01, total_steps=10, max_seconds=1.0, clock_slack=clock_slack)


@pytest.mark.parametrize("value, expected", [("00:01:20:00", 4800.0), ({"minutes": 2}, 120.0), (None, None)])
def test_max_time_in_seconds(value, expected):
    assert seconds(value) == expected
