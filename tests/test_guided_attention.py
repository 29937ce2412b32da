"""The diagonal prior on a line's attention (system.guide): its cost, its schedule, and the system's loss."""

from __future__ import annotations

import functools

import pytest
import torch

from seq2seq_lab.data.tokenizer import Tokenizer
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.models import CRNNAttention
from seq2seq_lab.systems import OCRSystem
from seq2seq_lab.systems.guided_attention import GuideSchedule, diagonal_guide_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _one_hot(columns_of_steps: list[list[int]], columns: int) -> torch.Tensor:
    """``(B, L, T)`` attention that puts all of step i's weight on one column."""
    return torch.nn.functional.one_hot(torch.tensor(columns_of_steps), columns).float()


def test_attention_on_the_diagonal_costs_almost_nothing_and_reversed_costs_much():
    # 2 characters + EOS over 20 valid columns: the diagonal puts character i at column (i + 0.5) * 10
    mask = torch.ones(1, 20, dtype=torch.bool)
    counts = torch.tensor([2])
    diagonal = diagonal_guide_loss(_one_hot([[5, 15, 0]], 20), mask, counts, sigma=0.2)
    reversed_ = diagonal_guide_loss(_one_hot([[15, 5, 0]], 20), mask, counts, sigma=0.2)
    assert diagonal < 0.01 and reversed_ > 0.7
    # EOS (step 2) is not charged wherever it looks
    assert diagonal_guide_loss(_one_hot([[5, 15, 19]], 20), mask, counts, 0.2) == pytest.approx(float(diagonal))


def test_the_diagonal_spans_the_valid_columns_and_padding_changes_nothing():
    # the same line once alone (10 columns) and once in a batch padded to 30 columns
    attention = _one_hot([[3, 7, 9]], 10)  # character 0 a column right of its place
    alone = diagonal_guide_loss(attention, torch.ones(1, 10, dtype=torch.bool), torch.tensor([2]), 0.2)
    padded = torch.cat([attention, torch.zeros(1, 3, 20)], dim=2)  # (1, 3, 30): no weight on padding
    mask = torch.arange(30)[None] < 10
    assert diagonal_guide_loss(padded, mask, torch.tensor([2]), 0.2) == pytest.approx(float(alone), abs=1e-6)
    # a batch mean over character steps: a line of 1 character next to one of 2
    both = diagonal_guide_loss(torch.cat([padded, _one_hot([[15, 0, 0]], 30)]), torch.cat([mask, torch.ones(1, 30, dtype=torch.bool)]),
                               torch.tensor([2, 1]), 0.2)
    middle = 1 - torch.exp(-torch.tensor(15.5 / 30 - 0.5) ** 2 / 0.08)  # the 1-character line: near its middle
    assert alone > 0.05 and both == pytest.approx((2 * float(alone) + float(middle)) / 3, abs=1e-6)


def test_the_schedule_fades_out_and_bad_keys_are_named():
    schedule = GuideSchedule.from_config({"weight": 2.0, "steps": 100})
    assert [schedule.weight_at(s) for s in (0, 50, 100, 500)] == [2.0, 1.0, 0.0, 0.0]
    assert GuideSchedule.from_config({"steps": 0}).weight_at(10**6) == 1.0  # steps 0: constant
    assert GuideSchedule.from_config(None) is None and GuideSchedule.from_config({"weight": 0}) is None
    for bad, match in [({"wieght": 1}, "system.guide.wieght: unknown key"), ({"sigma": 0}, "sigma must be > 0"),
                       ({"weight": -1}, "weight must be a number >= 0"), ({"steps": 1.5}, "steps must be an integer"),
                       (True, "system.guide must be null or a mapping")]:
        with pytest.raises(ConfigError, match=match):
            GuideSchedule.from_config(bad)


def test_the_system_adds_the_guide_in_training_only_and_logs_its_cross_entropy():
    tokenizer = Tokenizer("abcdef")
    torch.manual_seed(0)
    model = CRNNAttention(4, tokenizer.vocab_size, channels=1, width=64, hidden_dim=16, embed_dim=8,
                          attention="mlp", width_mult=0.25, rnn_hidden=32)
    system = OCRSystem(model, tokenizer, guide={"weight": 0.5, "sigma": 0.2, "steps": 0},
                       optimizer=functools.partial(torch.optim.Adam))
    targets = torch.tensor([[2, 3, 1, tokenizer.PAD], [4, 5, 6, 1]])
    batch = {"inputs": torch.rand(2, 1, 32, 64), "targets": targets, "target_lengths": torch.tensor([3, 4])}
    loss, outputs = system.train().compute_loss(batch)
    ce, guide = system.loss_parts["ce_loss"], system.loss_parts["guide_loss"]
    assert 0 < guide < 1 and torch.allclose(loss, ce + 0.5 * guide)
    assert torch.allclose(guide, diagonal_guide_loss(outputs["attention"], outputs["encoded"][1], torch.tensor([2, 3]), 0.2))
    loss.backward()
    assert model.decoder.attention.parameters().__next__().grad.abs().sum() > 0
    with torch.no_grad():
        eval_loss, eval_outputs = system.eval().compute_loss(batch)
    assert system.loss_parts == {} and torch.equal(eval_loss, system.token_loss(eval_outputs["logits"], targets))
    with pytest.raises(ConfigError, match="system.guide needs a model with attention"):
        OCRSystem(CRNNAttention(4, tokenizer.vocab_size, channels=1, width=64, attention="none", width_mult=0.25, rnn_hidden=32),
                  tokenizer, guide={"weight": 1.0}, optimizer=functools.partial(torch.optim.Adam))
