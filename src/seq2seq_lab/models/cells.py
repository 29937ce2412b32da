"""Recurrent cells (rnn, lstm, gru): whole-sequence stacks for encoders and
step-by-step stacks for decoders."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

CELLS = ("rnn", "lstm", "gru")

_SEQUENCE = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
_STEP = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}

# One layer's state: ``h (B, H)`` for rnn/gru, ``(h, c)`` for lstm.
LayerState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def check_cell(cell: str) -> str:
    """Return ``cell`` if it names a known cell type, else raise a ValueError that lists them."""
    if cell not in _SEQUENCE:
        raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
    return cell


def sequence_rnn(
    cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float, bidirectional: bool
) -> nn.RNNBase:
    """A batch-first multi-layer RNN (the fused cuDNN/oneDNN kernel) with dropout between layers."""
    return _SEQUENCE[check_cell(cell)](
        input_size,
        hidden_size,
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        batch_first=True,
    )


class StackedCell(nn.Module):
    """A stack of single-step cells with dropout between layers.

    Layers may differ in size (``hidden_sizes``), as in the Keras seq2seq models
    whose last decoder layer has ``output_dim`` units.

    Args:
        cell: ``rnn`` | ``lstm`` | ``gru``.
        input_size: features of the step input ``x (B, I)``.
        hidden_sizes: units of each layer, bottom first.
        dropout: dropout on the input of every layer above the first.
    """

    def __init__(self, cell: str, input_size: int, hidden_sizes: Sequence[int], dropout: float = 0.0):
        super().__init__()
        self.cell = check_cell(cell)
        self.hidden_sizes = list(hidden_sizes)
        sizes = [input_size, *self.hidden_sizes]
        self.layers = nn.ModuleList(_STEP[cell](i, h) for i, h in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(dropout)

    def initial_state(self, hidden: Sequence[torch.Tensor]) -> list[LayerState]:
        """State from one ``h (B, H_l)`` per layer; LSTM memory cells start at zero."""
        if self.cell == "lstm":
            return [(h, torch.zeros_like(h)) for h in hidden]
        return list(hidden)

    @staticmethod
    def top(state: list[LayerState]) -> torch.Tensor:
        """Hidden output ``(B, H_last)`` of the top layer."""
        last = state[-1]
        return last[0] if isinstance(last, tuple) else last

    def forward(self, x: torch.Tensor, state: list[LayerState]) -> tuple[torch.Tensor, list[LayerState]]:
        """One step: ``x (B, I)`` -> top output ``(B, H_last)`` and the new state."""
        new_state = []
        for i, (layer, s) in enumerate(zip(self.layers, state)):
            if i > 0:
                x = self.dropout(x)
            s = layer(x, s)
            new_state.append(s)
            x = s[0] if isinstance(s, tuple) else s
        return x, new_state

    @staticmethod
    def reorder(state: list[LayerState], index: torch.Tensor) -> list[LayerState]:
        """Select rows of every state tensor (beam search): ``index (B')``."""
        return [
            tuple(t.index_select(0, index) for t in s) if isinstance(s, tuple) else s.index_select(0, index)
            for s in state
        ]
