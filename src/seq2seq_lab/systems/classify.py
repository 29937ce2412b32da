"""Sequence-to-label classification: the Keras MNIST recipe."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from seq2seq_lab.models.seq2seq import SequenceClassifier
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.systems.attention_stats import AttentionStats, attention_stats
from seq2seq_lab.systems.base import BaseSystem


class ClassifySystem(BaseSystem):
    """Reads ``inputs (B, T, F)``, decodes ``output_length`` steps and classifies the
    flattened outputs into ``num_classes``. Logs ``loss`` and ``acc``, and with attention
    its entropy, monotonicity and coverage (:mod:`~seq2seq_lab.systems.attention_stats`).

    Args:
        model: a :class:`~seq2seq_lab.models.Seq2Seq` in vector mode.
        num_classes: classes of ``targets (B,)``.
    """

    capabilities = frozenset({"classify"})  # one label per input

    def __init__(self, model: nn.Module, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        if model.teacher_force > 0:
            raise ConfigError(f"model.teacher_force={model.teacher_force} does nothing for a classifier: its decoder "
                              "has no target sequence to be fed, only its own outputs; leave it at 0")
        self.net = SequenceClassifier(model, num_classes)
        self.num_classes = num_classes
        self.accuracy = nn.ModuleDict(
            {s: MulticlassAccuracy(num_classes, average="micro") for s in ("val", "test")}
        )
        self.attention_stats = AttentionStats() if model.decoder.attention.name != "none" else None

    def forward(self, inputs: torch.Tensor, input_lengths: torch.Tensor | None = None):
        """Class logits ``(B, C)`` and attention ``(B, L, T)``."""
        return self.net(inputs, input_lengths)

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """The loss and ``{"logits": (B, C), "attention": (B, L, T)}``."""
        logits, attention = self.net(batch["inputs"], batch.get("input_lengths"))
        return F.cross_entropy(logits, batch["targets"]), {"logits": logits, "attention": attention}

    def update_metrics(self, batch: dict, outputs: dict, stage: str) -> None:
        self.accuracy[stage].update(outputs["logits"], batch["targets"])
        if self.attention_stats is not None:
            attention = outputs["attention"]  # (B, L, T): every decoder step counts
            steps = torch.ones(attention.shape[:2], dtype=torch.bool, device=attention.device)
            self.attention_stats.update(stage, attention_stats(attention, steps))

    def stage_metrics(self, stage: str) -> dict:
        attention = self.attention_stats.metrics(stage) if self.attention_stats is not None else {}
        return {"acc": self.accuracy[stage], **attention}
