"""Text-line OCR with the attention decoder: :class:`Seq2SeqSystem` plus text metrics and ``transcribe``."""

from __future__ import annotations

import torch

from seq2seq_lab.models.search import until_eos
from seq2seq_lab.systems.seq2seq import Seq2SeqSystem, align_predictions
from seq2seq_lab.systems.text_metrics import text_metrics

__all__ = ["OCRSystem"]


class OCRSystem(Seq2SeqSystem):
    """A :class:`Seq2SeqSystem` for images of text lines.

    Validation and test also log, on the decoded strings (greedy, or beam when
    ``beam_width > 1``): ``line_acc`` (exact lines), ``cer`` and ``ned`` (1 - NED);
    see :mod:`~seq2seq_lab.systems.text_metrics`. The monitor defaults to ``line_acc``.
    Arguments as :class:`Seq2SeqSystem`.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("monitor", "line_acc")
        super().__init__(*args, **kwargs)
        self.text_metrics = text_metrics()

    def update_metrics(self, batch: dict, outputs: torch.Tensor, stage: str) -> None:
        targets = batch["targets"]  # (B, L)
        tokens, _, _ = self(batch["inputs"], batch.get("input_lengths"), max_length=targets.size(1))
        preds = align_predictions(tokens, targets.size(1), self.tokenizer.EOS, self.tokenizer.PAD)  # (B, L)
        self.exact_match[stage].update(preds, targets)
        texts, refs = self.tokenizer.batch_decode(preds), self.tokenizer.batch_decode(targets)
        for metric in self.text_metrics[stage].values():
            metric.update(texts, refs)

    def stage_metrics(self, stage: str) -> dict:
        return {"acc": self.exact_match[stage], **self.text_metrics[stage]}

    @torch.no_grad()
    def transcribe(self, images: torch.Tensor) -> tuple[list[str], torch.Tensor]:
        """Texts of ``images (B, C, H, W)`` and ``(B,)`` confidences: the geometric mean of the
        probabilities of the decoded tokens, EOS included (``exp`` of their mean log-probability)."""
        tokens, scores, _ = self(images)  # (B, L'), (B,)
        confidence = (scores.float() / until_eos(tokens, self.tokenizer.EOS).sum(1).clamp(min=1)).exp()
        return self.tokenizer.batch_decode(tokens), confidence
