"""CTC models: an encoder with a per-column :class:`CTCHead`, and greedy CTC decoding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seq2seq_lab.models.heads import CTCHead

__all__ = ["CTCModel", "ctc_greedy", "ctc_loss"]


def ctc_loss(
    log_probs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor, blank: int
) -> torch.Tensor:
    """Mean CTC loss (per target character) of ``log_probs (B, T, V)`` with ``lengths (B,)`` valid
    columns against the first ``target_lengths (B,)`` ids of each row of ``targets (B, L)``.
    Impossible alignments (more characters than columns allow) count zero."""
    return F.ctc_loss(
        log_probs.transpose(0, 1).float(),  # (T, B, V)
        targets,
        lengths,
        target_lengths,
        blank=blank,
        zero_infinity=True,
    )


def ctc_greedy(
    log_probs: torch.Tensor, lengths: torch.Tensor | None, blank: int
) -> tuple[list[list[int]], torch.Tensor]:
    """Best-path CTC decoding: the argmax of every column, repeats collapsed, blanks dropped.

    Args:
        log_probs: ``(B, T, V)`` per-column log-probabilities.
        lengths: ``(B,)`` valid columns per row, or None for all ``T``.
        blank: the blank id.

    Returns:
        token ids per row (list of B lists) and ``(B,)`` scores: the best path's
        log-probability, summed over the valid columns.
    """
    best, tokens = log_probs.max(-1)  # (B, T)
    batch, steps = tokens.shape
    if lengths is None:
        valid = torch.ones_like(tokens, dtype=torch.bool)
    else:
        valid = torch.arange(steps, device=tokens.device).unsqueeze(0) < lengths.to(tokens.device).unsqueeze(1)
    changed = torch.ones_like(valid)
    changed[:, 1:] = tokens[:, 1:] != tokens[:, :-1]
    keep = (valid & changed & (tokens != blank)).tolist()
    rows = [[t for t, k in zip(row, ks) if k] for row, ks in zip(tokens.tolist(), keep)]
    return rows, (best.float() * valid).sum(1)


class CTCModel(nn.Module):
    """An encoder ``(inputs, lengths) -> (memory (B, T', K), mask (B, T'), summary)`` and a
    :class:`CTCHead`: ``forward -> log_probs (B, T', V), mask (B, T')``.

    Args:
        encoder: e.g. a :class:`~seq2seq_lab.models.crnn.CRNNEncoder`; needs ``output_dim``.
        output_dim: ``V``, the vocabulary size, blank included.
        dropout: on the encoder output, before the head.
    """

    def __init__(self, encoder: nn.Module, output_dim: int, dropout: float = 0.0):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = CTCHead(encoder.output_dim, output_dim)
        self.output_dim = output_dim

    def forward(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        memory, mask, _ = self.encoder(inputs, input_lengths)
        return self.head(self.dropout(memory)), mask

    def generate(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor | None, blank: int
    ) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
        """Greedy decoding: token ids per row, ``(B,)`` best-path scores and ``(B,)`` columns used."""
        log_probs, mask = self(inputs, input_lengths)
        lengths = mask.sum(1)
        rows, scores = ctc_greedy(log_probs, lengths, blank)
        return rows, scores, lengths
