"""Output heads that sit after the decoder."""

from __future__ import annotations

import torch
from torch import nn


class ClassifierHead(nn.Module):
    """Flattens the decoder's ``(B, L, D)`` outputs and maps them to ``(B, C)`` class logits
    (the Keras MNIST recipe: 10 steps x 10 outputs -> Dense(10))."""

    def __init__(self, output_length: int, output_dim: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(output_length * output_dim, num_classes)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.linear(outputs.flatten(1))


class CTCHead(nn.Module):
    """Per-column log-probabilities over the vocabulary (blank included) for CTC:
    ``features (B, T, K) -> log_probs (B, T, V)``.

    The blank is a token id of the vocabulary, chosen by the system (the OCR
    systems use id 0, the tokenizer's SOS, which a CTC model never emits).
    """

    def __init__(self, input_dim: int, vocab_size: int):
        super().__init__()
        self.linear = nn.Linear(input_dim, vocab_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).float().log_softmax(-1)
