"""Text-line OCR with CTC: a :class:`~seq2seq_lab.models.ctc.CTCModel`, CTC loss and greedy decoding."""

from __future__ import annotations

import torch

from seq2seq_lab.data.tokenizer import Tokenizer
from seq2seq_lab.models.ctc import CTCModel, ctc_greedy, ctc_loss
from seq2seq_lab.systems.base import BaseSystem, check_vocabulary
from seq2seq_lab.systems.text_metrics import decode_references, text_metrics

__all__ = ["CTCSystem"]


class CTCSystem(BaseSystem):
    """Per-column CTC over the tokenizer's vocabulary; logs ``loss``, ``line_acc``, ``cer`` and ``ned``.

    The blank is id 0, the tokenizer's SOS, which CTC has no use for; EOS and
    PAD are never targets (the CTC target of a row is its characters,
    ``target_lengths - 1`` of them). Decoding is best path: the argmax of every
    column, repeats collapsed, blanks dropped. The monitor defaults to ``line_acc``.

    Args:
        model: a :class:`CTCModel` whose ``output_dim`` is the tokenizer's vocabulary size.
        tokenizer: the data module's tokenizer.
    """

    capabilities = frozenset({"transcribe"})  # text-line images -> text

    blank = Tokenizer.SOS

    def __init__(self, model: CTCModel, tokenizer: Tokenizer, **kwargs):
        kwargs.setdefault("monitor", "line_acc")
        super().__init__(**kwargs)
        check_vocabulary(model, tokenizer)
        self.net = model
        self.tokenizer = tokenizer
        self.text_metrics = text_metrics()

    def forward(self, inputs: torch.Tensor, input_lengths: torch.Tensor | None = None):
        """Greedy decoding: token ids per row (list of B lists), ``(B,)`` scores, ``(B,)`` columns."""
        return self.net.generate(inputs, input_lengths, self.blank)

    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        log_probs, mask = self.net(batch["inputs"], batch.get("input_lengths"))  # (B, T', V), (B, T')
        lengths = mask.sum(1)
        # targets (B, L): chars, EOS, PAD; only the first target_lengths - 1 (the chars) are read
        loss = ctc_loss(log_probs, lengths, batch["targets"], batch["target_lengths"] - 1, self.blank)
        return loss, (log_probs, lengths)

    def update_metrics(self, batch: dict, outputs: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        log_probs, lengths = outputs
        rows, _ = ctc_greedy(log_probs, lengths, self.blank)
        texts = [self.tokenizer.decode(r) for r in rows]
        refs = decode_references(self.tokenizer, batch["targets"])
        for metric in self.text_metrics[stage].values():
            metric.update(texts, refs)
        if stage == "test":
            self.test_readings += zip(batch["texts"], texts)

    def stage_metrics(self, stage: str) -> dict:
        return dict(self.text_metrics[stage])

    @torch.no_grad()
    def transcribe(
        self, images: torch.Tensor, input_lengths: torch.Tensor | None = None
    ) -> tuple[list[str], torch.Tensor]:
        """Texts of ``images (B, C, H, W)`` (``input_lengths (B,)``: their widths before padding;
        None: all ``W``) and ``(B,)`` confidences: the geometric mean over the valid columns of
        the best path's probabilities (``exp`` of their mean log-probability)."""
        rows, scores, lengths = self(images, input_lengths)
        return [self.tokenizer.decode(r) for r in rows], (scores / lengths.clamp(min=1)).exp()
