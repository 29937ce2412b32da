"""Sequence encoder: a stacked (optionally bidirectional) RNN over the time axis."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seq2seq_lab.models.cells import sequence_rnn


def lengths_to_mask(lengths: torch.Tensor | None, batch: int, steps: int, device: torch.device) -> torch.Tensor:
    """``(B, T)`` bool mask, True on the first ``lengths[b]`` steps (all True if ``lengths`` is None)."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    return torch.arange(steps, device=device).unsqueeze(0) < lengths.to(device).unsqueeze(1)


class SequenceEncoder(nn.Module):
    """Encodes ``inputs (B, T, F)`` into ``memory (B, T, D)``, ``mask (B, T)`` and ``summary (B, D)``.

    ``D = hidden_dim`` (x2 when bidirectional: each direction has ``hidden_dim``
    units). ``summary`` joins the final hidden state of each direction of the
    top layer. Padded steps (beyond ``input_lengths``) are skipped by packing.

    Args:
        input_dim: features per step ``F``.
        hidden_dim: units per direction.
        cell: ``rnn`` | ``lstm`` | ``gru``.
        depth: stacked layers.
        dropout: dropout between layers and on the outputs (memory and summary).
        bidirectional: read the sequence both ways.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        cell: str = "lstm",
        depth: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ):
        super().__init__()
        self.rnn = sequence_rnn(cell, input_dim, hidden_dim, depth, dropout, bidirectional)
        self.dropout = nn.Dropout(dropout)
        self.directions = 2 if bidirectional else 1
        self.output_dim = hidden_dim * self.directions

    def forward(
        self, inputs: torch.Tensor, input_lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, steps, _ = inputs.shape
        packed = input_lengths is not None and bool((input_lengths < steps).any())
        if packed:
            memory, final = run_packed(self.rnn, inputs, input_lengths)
        else:
            memory, final = self.rnn(inputs)
        hidden = final[0] if isinstance(final, tuple) else final  # (layers * dirs, B, H)
        summary = torch.cat(list(hidden[-self.directions :]), dim=-1)  # (B, D)
        mask = lengths_to_mask(input_lengths, batch, steps, inputs.device)
        return self.dropout(memory), mask, self.dropout(summary)


def run_packed(rnn: nn.RNNBase, inputs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, object]:
    """``rnn`` over each row of ``inputs (B, T, I)`` packed to its ``lengths (B,)`` steps: outputs
    ``(B, T, D)`` (zeros past each row's length) and the final state, as ``rnn`` returns it."""
    seq = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
    memory, final = rnn(seq)
    return pad_packed_sequence(memory, batch_first=True, total_length=inputs.size(1))[0], final
