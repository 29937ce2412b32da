"""Attention diagnostics: entropy, monotonicity, coverage and CTC agreement on weights with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from seq2seq_lab.systems.attention_stats import STATS, AttentionStats, attention_stats, ctc_agreement


def _one_hot(positions: list[list[int]], length: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(positions), length).float()  # (B, S, T)


def test_sharp_forward_attention():
    weights = _one_hot([[0, 1, 2, 2]], 6)
    steps = torch.tensor([[True, True, True, False]])  # the last step does not count
    stats = attention_stats(weights, steps)
    assert stats["attn_entropy"][0] == pytest.approx(0.0, abs=1e-6)
    assert stats["attn_monotonic"][0] == pytest.approx(1.0)
    assert stats["attn_coverage"][0] == pytest.approx(3 / 6)


def test_uniform_backward_and_masked_attention():
    backward = attention_stats(_one_hot([[3, 2, 1, 0]], 4), torch.ones(1, 4, dtype=torch.bool))
    assert backward["attn_monotonic"][0] == pytest.approx(0.0)
    uniform = torch.full((1, 2, 4), 0.25)
    memory = torch.tensor([[True, True, True, False]])
    stats = attention_stats(uniform, torch.ones(1, 2, dtype=torch.bool), memory, threshold=0.4)
    assert stats["attn_entropy"][0] == pytest.approx(math.log(4))
    assert stats["attn_coverage"][0] == pytest.approx(1.0)  # 0.5 each over 2 steps, the masked column not counted


def test_no_attention_gives_nothing():
    assert attention_stats(torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.bool)) == {}


def test_ctc_agreement_reads_the_best_path_where_the_attention_looks():
    weights = _one_hot([[1, 3]], 5)  # (1, 2, 5)
    ctc = torch.full((1, 5, 9), -5.0)
    for t, label in enumerate([0, 7, 0, 8, 0]):  # blank, 7, blank, 8, blank
        ctc[0, t, label] = 5.0
    share, n = ctc_agreement(weights, torch.tensor([[7, 4]]), torch.ones(1, 2, dtype=torch.bool), ctc)
    assert share == pytest.approx(0.5) and n == 2


def test_statistics_without_values_are_not_logged():
    """Beam search keeps no attention: its stage logs no statistics rather than NaN."""
    stats = AttentionStats()
    assert stats.metrics("test") == {}
    weights = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (B, S, T)
    stats.update("test", attention_stats(weights, torch.ones(1, 2, dtype=torch.bool)))
    assert set(stats.metrics("test")) == set(STATS) and stats.metrics("val") == {}
