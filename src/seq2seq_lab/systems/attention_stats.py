"""Attention diagnostics as numbers: entropy, monotonicity, coverage, and agreement with a CTC head.

All take the attention weights of a decoded batch, ``weights (B, S, T)`` (decoder step
``s`` over memory position ``t``), with ``steps (B, S)`` True on the steps that count
(the target's characters and EOS) and ``memory (B, T)`` True on valid positions.

* **entropy**: ``-sum_t w log w`` per step, in nats, averaged over the steps (0: each
  step looks at one position; ``log T``: uniform).
* **monotonicity**: the share of consecutive counted steps whose argmax position does
  not move backwards (reading order).
* **coverage**: the share of valid memory positions whose attention summed over the
  counted steps exceeds ``threshold``.
* **CTC agreement** (:func:`ctc_agreement`): the share of decoded characters that the
  CTC head's best path also reads at the position the attention looks at most.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MeanMetric

__all__ = ["STATS", "AttentionStats", "attention_stats", "ctc_agreement"]

STATS = ("attn_entropy", "attn_monotonic", "attn_coverage")


def attention_stats(weights: torch.Tensor, steps: torch.Tensor, memory: torch.Tensor | None = None,
                    threshold: float = 0.1) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{name: (value, weight)}`` for the batch, each a scalar tensor; weight: how many items it averages.

    Batches whose attention is all zero (no attention) give an empty dict.
    """
    weights = weights.float()
    steps = steps[:, : weights.size(1)]
    if memory is None:
        memory = torch.ones(weights.shape[0], weights.shape[2], dtype=torch.bool, device=weights.device)
    if not bool((weights.sum(-1) > 0).any()):
        return {}
    out = {}
    entropy = -(weights * weights.clamp_min(1e-12).log()).sum(-1)  # (B, S)
    n_steps = steps.sum()
    if n_steps:
        out["attn_entropy"] = ((entropy * steps).sum() / n_steps, n_steps)
    position = weights.argmax(-1)  # (B, S)
    pairs = steps[:, 1:] & steps[:, :-1]  # (B, S - 1)
    if bool(pairs.any()):
        forward = (position[:, 1:] >= position[:, :-1]) & pairs
        out["attn_monotonic"] = (forward.sum() / pairs.sum(), pairs.sum())
    received = (weights * steps.unsqueeze(-1)).sum(1)  # (B, T)
    n_memory = memory.sum()
    if n_memory:
        out["attn_coverage"] = (((received > threshold) & memory).sum() / n_memory, n_memory)
    return out


def ctc_agreement(weights: torch.Tensor, tokens: torch.Tensor, steps: torch.Tensor,
                  ctc_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The share of decoded characters the CTC best path reads at the attended position.

    Args:
        weights: ``(B, S, T)`` attention of the decoded steps.
        tokens: ``(B, S)`` decoded token ids.
        steps: ``(B, S)`` True on the decoded characters to count (EOS and padding excluded).
        ctc_logits: ``(B, T, V)`` the CTC head's scores over the same memory.

    Returns:
        ``(share, count)`` as scalar tensors.
    """
    best = ctc_logits.argmax(-1)  # (B, T): the best path, blank included
    at = best.gather(1, weights.argmax(-1))  # (B, S): the CTC label where each step looks
    n = steps.sum()
    return ((at == tokens) & steps).sum() / n.clamp_min(1), n


class AttentionStats(nn.Module):
    """Running means of :data:`STATS` (and ``attn_ctc_agreement`` with ``ctc``) per stage (val, test)."""

    def __init__(self, ctc: bool = False):
        super().__init__()
        self.names = STATS + (("attn_ctc_agreement",) if ctc else ())
        self.stages = nn.ModuleDict({s: nn.ModuleDict({n: MeanMetric() for n in self.names}) for s in ("val", "test")})

    def update(self, stage: str, values: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        for name, (value, weight) in values.items():
            self.stages[stage][name].update(value, weight)

    def metrics(self, stage: str) -> dict[str, MeanMetric]:
        """The stage's statistics that have values: none under beam search, which keeps no attention."""
        return {name: metric for name, metric in self.stages[stage].items() if metric.update_count}
