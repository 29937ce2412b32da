"""Metrics on decoded text lines: line accuracy, CER and 1-NED (torchmetrics objects).

* ``line_acc``: the fraction of lines decoded exactly.
* ``cer``: character error rate, total edits over total reference characters
  (:class:`torchmetrics.text.CharErrorRate`).
* ``ned``: 1 - NED, the mean over lines of ``1 - ED / max(len(pred), len(target))``
  (1 for two empty lines), as in the ICDAR 2019 ReCTS/LSVT evaluations.

References come from :func:`decode_references`: a reference character that the
tokenizer mapped to UNK becomes a sentinel that no prediction can hold, so it
is an error whatever the model answers (a predicted UNK included).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.text import CharErrorRate

__all__ = ["LineAccuracy", "NormalizedEditSimilarity", "decode_references", "edit_distance", "reference_unk",
           "text_metrics"]

# candidates for the reference-UNK sentinel: noncharacters, never in real text
_SENTINELS = ("\uffff", "\ufffe", "\U0010ffff", "\U0010fffe", "\U000fffff")


def reference_unk(tokenizer) -> str:
    """A character that ``tokenizer`` never decodes to: not in its charset and not its UNK (U+FFFD)."""
    chars = set(tokenizer.chars)
    for c in _SENTINELS:
        if c not in chars:
            return c
    raise ValueError("the charset holds every reference-UNK sentinel; cannot score UNK references")


def decode_references(tokenizer, targets: torch.Tensor) -> list[str]:
    """Reference texts of ``targets (B, L)`` for the metrics, UNK decoded to :func:`reference_unk`."""
    return tokenizer.batch_decode(targets, unk=reference_unk(tokenizer))


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (insertions, deletions and substitutions cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _check(preds: Sequence[str], target: Sequence[str]) -> None:
    if len(preds) != len(target):
        raise ValueError(f"{len(preds)} predictions for {len(target)} targets")


class _MeanOverLines(Metric):
    """The mean over lines of a per-line score of ``(pred, target)`` strings (:meth:`score`)."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("score_sum", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    @staticmethod
    def score(pred: str, target: str) -> float:
        raise NotImplementedError

    def update(self, preds: Sequence[str], target: Sequence[str]) -> None:
        _check(preds, target)
        self.score_sum += sum(self.score(p, t) for p, t in zip(preds, target))
        self.total += len(target)

    def compute(self) -> torch.Tensor:
        return self.score_sum / self.total.clamp(min=1)


class LineAccuracy(_MeanOverLines):
    """Fraction of predicted strings equal to their targets."""

    @staticmethod
    def score(pred: str, target: str) -> float:
        return float(pred == target)


class NormalizedEditSimilarity(_MeanOverLines):
    """1 - NED: the mean over lines of ``1 - ED(pred, target) / max(len(pred), len(target))``."""

    @staticmethod
    def score(pred: str, target: str) -> float:
        longest = max(len(pred), len(target))
        return 1.0 - (edit_distance(pred, target) / longest if longest else 0.0)


def text_metrics(stages: Sequence[str] = ("val", "test")) -> nn.ModuleDict:
    """``{stage: {"line_acc", "cer", "ned"}}`` metric objects; update each with ``(preds, targets)`` strings."""
    return nn.ModuleDict(
        {
            s: nn.ModuleDict(
                {"line_acc": LineAccuracy(), "cer": CharErrorRate(), "ned": NormalizedEditSimilarity()}
            )
            for s in stages
        }
    )
