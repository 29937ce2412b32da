"""Encoder + decoder assemblies."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from seq2seq_lab.models.char_lm import LMFusion
from seq2seq_lab.models.ctc_prefix import CTCPrefixScorer
from seq2seq_lab.models.decoder import RecurrentDecoder
from seq2seq_lab.models.heads import ClassifierHead, CTCHead
from seq2seq_lab.models.search import beam, greedy


class Seq2Seq(nn.Module):
    """An encoder ``(inputs, lengths) -> (memory, mask, summary)`` and a :class:`RecurrentDecoder`.

    Args:
        encoder: any module with that signature and an ``output_dim``.
        decoder: the decoder.
        output_length: default number of decoding steps.
        teacher_force: default teacher forcing ratio in training (bool or [0, 1]).
        ctc_head: an optional :class:`CTCHead` over the encoder memory, for an
            auxiliary CTC loss in training (joint CTC-attention); decoding ignores it.
    """

    def __init__(self, encoder: nn.Module, decoder: RecurrentDecoder, output_length: int, teacher_force: float = 1.0,
                 ctc_head: CTCHead | None = None):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.ctc_head = ctc_head
        self.output_length = output_length
        self.output_dim = decoder.output_dim
        self.teacher_force = float(teacher_force)

    def encode(self, inputs: torch.Tensor, input_lengths: torch.Tensor | None = None):
        """``inputs (B, T, F)`` or images -> ``memory (B, T', K)``, ``mask (B, T')``, ``summary (B, S)``."""
        return self.encoder(inputs, input_lengths)

    def forward(
        self,
        inputs: torch.Tensor,
        input_lengths: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        teacher_forcing: float | None = None,
        max_length: int | None = None,
        eos_id: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs ``(B, L, V)`` and attention ``(B, L, T')``; see :meth:`RecurrentDecoder.forward`."""
        memory, mask, summary = self.encode(inputs, input_lengths)
        return self.decode(memory, mask, summary, targets, teacher_forcing, max_length, eos_id)

    def decode(
        self,
        memory: torch.Tensor,
        mask: torch.Tensor,
        summary: torch.Tensor,
        targets: torch.Tensor | None = None,
        teacher_forcing: float | None = None,
        max_length: int | None = None,
        eos_id: int | None = None,
        draw: str = "batch",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder over an encoding (:meth:`encode`): outputs ``(B, L, V)``, attention ``(B, L, T')``;
        ``draw``: teacher forcing drawn per step for the batch or per token (see the decoder)."""
        ratio = self.teacher_force if teacher_forcing is None else teacher_forcing
        return self.decoder(memory, mask, summary, targets, ratio, max_length or self.output_length, eos_id, draw)

    def generate(
        self,
        inputs: torch.Tensor,
        input_lengths: torch.Tensor | None,
        eos_id: int,
        max_length: int | None = None,
        beam_width: int = 1,
        fusion: LMFusion | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Decode without targets: tokens ``(B, L')``, scores ``(B,)`` and attention
        ``(B, L', T')`` (None for beam search)."""
        return self.search(*self.encode(inputs, input_lengths), eos_id, max_length, beam_width, fusion)

    def search(
        self,
        memory: torch.Tensor,
        mask: torch.Tensor,
        summary: torch.Tensor,
        eos_id: int,
        max_length: int | None = None,
        beam_width: int = 1,
        fusion: LMFusion | None = None,
        more: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = (),
        ctc: CTCPrefixScorer | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`generate` over an encoding (:meth:`encode`), e.g. the one a loss already computed.
        A ``fusion`` with a language model, ``more`` encodings of other views of the same inputs
        (read as an ensemble), or a ``ctc`` prefix scorer of the CTC head's reading (joint decoding; see
        :func:`~seq2seq_lab.models.search.beam`) run a beam search (of width 1 too)."""
        steps = max_length or self.output_length
        if beam_width > 1 or fusion is not None or more or ctc is not None:
            tokens, scores = beam(self.decoder, memory, mask, summary, steps, eos_id, beam_width, fusion=fusion,
                                  more=more, ctc=ctc)
            return tokens, scores, None
        return greedy(self.decoder, memory, mask, summary, steps, eos_id)


class SequenceClassifier(nn.Module):
    """A :class:`Seq2Seq` whose whole output sequence feeds a classifier head: ``(B, T, F) -> (B, C)``."""

    def __init__(self, seq2seq: Seq2Seq, num_classes: int):
        super().__init__()
        self.seq2seq = seq2seq
        self.head = ClassifierHead(seq2seq.output_length, seq2seq.output_dim, num_classes)

    def forward(self, inputs: torch.Tensor, input_lengths: torch.Tensor | None = None):
        """Class logits ``(B, C)`` and attention ``(B, L, T)``."""
        outputs, weights = self.seq2seq(inputs, input_lengths)
        return self.head(outputs), weights
