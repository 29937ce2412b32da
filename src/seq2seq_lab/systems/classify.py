"""Sequence-to-label classification: the Keras MNIST recipe."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from seq2seq_lab.models.seq2seq import SequenceClassifier
from seq2seq_lab.systems.base import BaseSystem


class ClassifySystem(BaseSystem):
    """Reads ``inputs (B, T, F)``, decodes ``output_length`` steps and classifies the
    flattened outputs into ``num_classes``. Logs ``loss`` and ``acc``.

    Args:
        model: a :class:`~seq2seq_lab.models.Seq2Seq` in vector mode.
        num_classes: classes of ``targets (B,)``.
    """

    capabilities = frozenset({"classify"})  # one label per input

    def __init__(self, model: nn.Module, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.net = SequenceClassifier(model, num_classes)
        self.num_classes = num_classes
        self.accuracy = nn.ModuleDict(
            {s: MulticlassAccuracy(num_classes, average="micro") for s in ("val", "test")}
        )

    def forward(self, inputs: torch.Tensor, input_lengths: torch.Tensor | None = None):
        """Class logits ``(B, C)`` and attention ``(B, L, T)``."""
        return self.net(inputs, input_lengths)

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        logits, _ = self.net(batch["inputs"], batch.get("input_lengths"))
        return F.cross_entropy(logits, batch["targets"]), logits

    def update_metrics(self, batch: dict, outputs: torch.Tensor, stage: str) -> None:
        self.accuracy[stage].update(outputs, batch["targets"])

    def stage_metrics(self, stage: str) -> dict:
        return {"acc": self.accuracy[stage]}
