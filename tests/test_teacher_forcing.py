"""Teacher-forcing schedules and draws: the ratio over steps, per-token draws, logging, resuming."""

from __future__ import annotations

import math

import pytest
import torch

from seq2seq_lab.errors import ConfigError
from seq2seq_lab.systems.teacher_forcing import TeacherForcingSchedule, as_schedule


@pytest.mark.parametrize("kind, kwargs, at", [
    ("constant", {"ceiling": 0.7}, {0: 0.7, 10_000: 0.7}),
    ("linear", {"ceiling": 1.0, "floor": 0.2, "steps": 100}, {0: 1.0, 50: 0.6, 100: 0.2, 500: 0.2}),
    ("exponential", {"ceiling": 1.0, "floor": 0.1, "k": 0.99}, {0: 1.0, 10: 0.99 ** 10, 1000: 0.1}),
    ("inverse_sigmoid", {"ceiling": 0.9, "floor": 0.1, "k": 10.0}, {0: 0.1 + 0.8 * 10 / 11, 10: 0.1 + 0.8 * 10 / (10 + math.e)}),
])
def test_schedules_follow_their_formula(kind, kwargs, at):
    schedule = TeacherForcingSchedule(kind, **kwargs)
    for step, expected in at.items():
        assert schedule(step) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [{"kind": "cosine"}, {"kind": "linear", "floor": 0.8, "ceiling": 0.5},
                                 {"kind": "exponential", "k": 1.5}, {"kind": "inverse_sigmoid", "k": 0.5}])
def test_bad_schedules_name_the_key(bad):
    with pytest.raises(ConfigError, match="system.teacher_forcing"):
        as_schedule(bad)


def test_numbers_are_constant_schedules_and_null_keeps_the_model_ratio():
    assert as_schedule(0.25)(123) == 0.25 and as_schedule(None) is None


def test_token_draws_mix_targets_and_own_outputs_within_a_step():
    from seq2seq_lab.models import AttentionSeq2Seq

    torch.manual_seed(0)
    model = AttentionSeq2Seq(input_length=5, input_dim=3, hidden_dim=8, output_length=4, output_dim=7,
                             embed_dim=4, teacher_force=0.5)
    inputs, targets = torch.randn(64, 5, 3), torch.randint(0, 7, (64, 4))
    memory, mask, summary = model.encode(inputs)
    forced, _ = model.decode(memory, mask, summary, targets, 1.0)
    free, _ = model.decode(memory, mask, summary, targets, 0.0)
    torch.manual_seed(1)
    mixed, _ = model.decode(memory, mask, summary, targets, 0.5, draw="token")
    step1 = mixed[:, 1]  # the second step's outputs: each sample followed its own draw
    like_forced = torch.isclose(step1, forced[:, 1]).all(-1)
    like_free = torch.isclose(step1, free[:, 1]).all(-1)
    assert bool((like_forced | like_free).all()) and 10 < int(like_forced.sum()) < 54
