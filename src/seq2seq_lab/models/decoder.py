"""The one recurrent decoder: MNIST, the toy tasks and OCR all use it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from seq2seq_lab.models.attention import Attention, build_attention
from seq2seq_lab.models.cells import LayerState, StackedCell
from seq2seq_lab.models.feedback import OutputFeedback, TokenFeedback
from seq2seq_lab.models.positions import add_positions


class DecoderState(NamedTuple):
    """The decoder's state between steps.

    cells: each layer's state, bottom first (:class:`StackedCell`).
    history: ``(B, 2, T)`` the last step's and the summed attention weights, for an attention that
        reads them (``reads_history``, e.g. ``location``); None before the first step and for others.
    """

    cells: list[LayerState]
    history: torch.Tensor | None = None

    @property
    def top(self) -> torch.Tensor:
        """Hidden output ``(B, H_last)`` of the top layer: the attention's query."""
        return StackedCell.top(self.cells)

    def reorder(self, index: torch.Tensor) -> DecoderState:
        """Select rows ``index (B')`` of every tensor (beam search)."""
        history = None if self.history is None else self.history.index_select(0, index)
        return DecoderState(StackedCell.reorder(self.cells, index), history)


class RecurrentDecoder(nn.Module):
    """A stacked recurrent decoder with attention that feeds back its own output.

    At step ``t``, with ``s`` the state after step ``t-1``::

        context, weights = attention(top(s), keys, mask, values=memory)
        h, s = cells([prev; context; summary if peek], s)
        output = W [h; context]            (W h without output_context; h itself without projection)

    ``prev`` is the fed-back previous output (see :mod:`feedback`): the target
    under teacher forcing, else the model's own prediction. ``keys`` is ``memory``,
    or with ``key_positions`` ``memory + P`` (sinusoidal encodings of the memory
    index, :func:`~seq2seq_lab.models.positions.sinusoid_positions`): the attention can
    then align by place from the start, while the context holds the memory alone.

    Args:
        feedback: :class:`TokenFeedback` (token targets) or :class:`OutputFeedback` (vectors).
        memory_dim: ``K``, features of the encoder memory.
        summary_dim: features of the encoder summary (for ``bridge`` and ``peek``).
        hidden_sizes: units per decoder layer, bottom first.
        output_dim: ``V``, size of each step's output.
        cell: ``rnn`` | ``lstm`` | ``gru``.
        attention: a registered name or a factory ``(query_dim, key_dim) -> Attention``.
        dropout: between layers.
        peek: feed the encoder summary into every step.
        bridge: start from ``tanh(W summary)``; otherwise from zeros.
        output_projection: map ``[h; context]`` to ``output_dim``; without it the top
            layer must have ``output_dim`` units and its output is the step's output.
        output_context: with ``output_projection``, whether the context joins ``h`` in
            the projection (Luong); False projects ``h`` alone, as the OCR reference does.
        key_positions: add column encodings to the keys the attention scores (not to
            the values it sums); no parameters.
    """

    def __init__(
        self,
        feedback: TokenFeedback | OutputFeedback,
        memory_dim: int,
        summary_dim: int,
        hidden_sizes: Sequence[int],
        output_dim: int,
        cell: str = "lstm",
        attention: str | Callable[..., Attention] = "mlp",
        dropout: float = 0.0,
        peek: bool = False,
        bridge: bool = True,
        output_projection: bool = True,
        output_context: bool = True,
        key_positions: bool = False,
    ):
        super().__init__()
        self.key_positions = key_positions
        self.hidden_sizes = list(hidden_sizes)
        top = self.hidden_sizes[-1]
        self.feedback = feedback
        self.attention = build_attention(attention, query_dim=top, key_dim=memory_dim)
        context_dim = self.attention.context_dim
        self.peek = peek
        step_input = feedback.dim + context_dim + (summary_dim if peek else 0)
        self.cells = StackedCell(cell, step_input, self.hidden_sizes, dropout)
        self.bridge = nn.Linear(summary_dim, sum(self.hidden_sizes)) if bridge else None
        self.output_context = output_context and output_projection
        if output_projection:
            self.output = nn.Linear(top + (context_dim if self.output_context else 0), output_dim)
        elif top != output_dim:
            raise ValueError(f"without output_projection the top decoder layer needs output_dim={output_dim} units, has {top}")
        else:
            self.output = None
        self.output_dim = output_dim

    def initial_state(self, summary: torch.Tensor) -> DecoderState:
        """Decoder state from the encoder ``summary (B, S)``."""
        if self.bridge is None:
            hidden = [summary.new_zeros(summary.size(0), h) for h in self.hidden_sizes]
        else:
            hidden = list(torch.tanh(self.bridge(summary)).split(self.hidden_sizes, dim=-1))
        return DecoderState(self.cells.initial_state(hidden))

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """What the attention scores: ``memory (B, T, K)``, plus column encodings with ``key_positions``."""
        return add_positions(memory) if self.key_positions else memory

    def step(
        self,
        prev: torch.Tensor,
        state: DecoderState,
        memory: torch.Tensor,
        mask: torch.Tensor,
        summary: torch.Tensor,
        cache: torch.Tensor | None,
        keys: torch.Tensor | None = None,
        project: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, DecoderState]:
        """One step: ``prev (B, E)`` -> ``output (B, V)``, ``weights (B, T)``, new state.

        ``keys (B, T, K)``: :meth:`keys` of the memory (default: the memory itself);
        ``cache``: the attention's ``precompute`` of them. An attention that ``reads_history``
        gets ``state.history``, and the new state holds this step's weights and their running sum.
        ``project=False`` stops before the output layer: ``output`` is then its input ``(B, F)``,
        ``[h; context]`` (or ``h``)."""
        keys = memory if keys is None else keys
        history = None
        if self.attention.reads_history:
            context, weights = self.attention(state.top, keys, mask, cache, values=memory, history=state.history)
            summed = weights if state.history is None else state.history[:, 1] + weights
            history = torch.stack([weights, summed], dim=1)  # (B, 2, T)
        else:
            context, weights = self.attention(state.top, keys, mask, cache, values=memory)
        parts = [prev, context, summary] if self.peek else [prev, context]
        hidden, cells = self.cells(torch.cat(parts, dim=-1), state.cells)
        features = torch.cat([hidden, context], dim=-1) if self.output_context else hidden
        return (self.project(features) if project else features), weights, DecoderState(cells, history)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The output layer: ``features (..., F)`` -> ``(..., V)`` (the identity without ``output_projection``)."""
        return features if self.output is None else self.output(features)

    def forward(
        self,
        memory: torch.Tensor,
        mask: torch.Tensor,
        summary: torch.Tensor,
        targets: torch.Tensor | None = None,
        teacher_forcing: float = 1.0,
        max_length: int | None = None,
        eos_id: int | None = None,
        draw: str = "batch",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode ``L`` steps.

        Args:
            memory: ``(B, T, K)`` encoder outputs.
            mask: ``(B, T)`` True on valid steps.
            summary: ``(B, S)`` encoder summary.
            targets: ``(B, L)`` token ids (or ``(B, L, V)`` vectors); sets ``L`` when given.
            teacher_forcing: probability that the next input is the target rather
                than the model's own output. 1 = always, 0 = never.
            draw: ``"batch"``: one draw per step for the whole batch; ``"token"``: one
                per step and sample (the scheduled-sampling paper's).
            max_length: ``L`` when there are no targets.
            eos_id: without targets, stop once every row has produced this token.

        Returns:
            outputs ``(B, L', V)`` and attention ``(B, L', T)``; ``L' = L``
            unless decoding stopped early at ``eos_id``.
        """
        if targets is None and max_length is None:
            raise ValueError("decoder needs targets or max_length")
        steps = targets.size(1) if targets is not None else max_length
        batch = memory.size(0)
        state = self.initial_state(summary)
        keys = self.keys(memory)
        cache = self.attention.precompute(keys)
        prev = self.feedback.start(batch, memory.device)
        if targets is not None and teacher_forcing >= 1:
            # no step needs the one before's output: the output layer maps all L steps' features
            # (B, L, F) in one matrix product rather than L small ones
            features, weights = [], []
            for t in range(steps):
                if t:
                    prev = self.feedback.from_targets(targets[:, t - 1])
                f, w, state = self.step(prev, state, memory, mask, summary, cache, keys, project=False)
                features.append(f)
                weights.append(w)
            return self.project(torch.stack(features, dim=1)), torch.stack(weights, dim=1)
        finished = torch.zeros(batch, dtype=torch.bool, device=memory.device)
        outputs, weights = [], []
        for t in range(steps):
            output, w, state = self.step(prev, state, memory, mask, summary, cache, keys)
            outputs.append(output)
            weights.append(w)
            if t + 1 == steps:
                break
            if targets is not None and 0 < teacher_forcing < 1 and draw == "token":
                forced = torch.rand(batch, device=memory.device) < teacher_forcing  # (B,)
                own = self.feedback.from_logits(output)
                prev = torch.where(forced.unsqueeze(1), self.feedback.from_targets(targets[:, t]).to(own.dtype), own)
            elif targets is not None and teacher_forcing > 0 and float(torch.rand(())) < teacher_forcing:
                prev = self.feedback.from_targets(targets[:, t])
            else:
                prev = self.feedback.from_logits(output)
                if targets is None and eos_id is not None:
                    finished |= output.argmax(-1) == eos_id
                    if bool(finished.all()):
                        break
        return torch.stack(outputs, dim=1), torch.stack(weights, dim=1)
