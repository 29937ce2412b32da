"""What a system makes of a few samples: true and predicted text, and the attention.

Asks the system what it can do (``system.capabilities``): ``decode`` (a tokenizer and a
:class:`~seq2seq_lab.models.seq2seq.Seq2Seq` ``net`` whose ``generate`` returns ``(tokens,
scores, attention)``; greedy search here, so that the attention exists even when the system
evaluates with beam search), else ``transcribe`` (``transcribe(inputs, input_lengths) ->
(texts, confidences)``; CTC: no attention), else ``classify`` (its forward returns ``(logits,
attention)``). For others :func:`inspect_batch` returns None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Inspection:
    """``N`` samples.

    inputs: ``(N, T, F)`` sequences or ``(N, C, H, W)`` images, on the CPU.
    truths, preds: ``N`` strings (class ids as text for a classifier).
    attention: ``(N, L, T')`` decoder steps x encoder positions, or None (no attention).
    steps: for each sample, a label per decoder step (the predicted characters; step numbers for a classifier).
    """

    inputs: torch.Tensor
    truths: list[str]
    preds: list[str]
    attention: torch.Tensor | None
    steps: list[list[str]]

    @property
    def correct(self) -> list[bool]:
        return [t == p for t, p in zip(self.truths, self.preds)]


def _useful(attention: torch.Tensor | None) -> torch.Tensor | None:
    """None for missing or all-zero weights (``NoAttention``)."""
    if attention is None or attention.numel() == 0 or not bool(attention.abs().sum() > 0):
        return None
    return attention.detach().float().cpu()


@torch.no_grad()
def inspect_batch(system: Any, batch: dict[str, Any]) -> Inspection | None:
    """Run ``system`` in eval mode on a batch dict (``inputs``, ``targets``, optional ``input_lengths``)."""
    device = next(system.parameters()).device
    inputs = batch["inputs"].to(device)
    lengths = batch.get("input_lengths")
    lengths = lengths.to(device) if isinstance(lengths, torch.Tensor) else None
    targets = batch["targets"]
    was_training = system.training
    system.eval()
    try:
        capabilities = system.capabilities
        if "decode" in capabilities:
            tokenizer = system.tokenizer
            max_length = targets.size(1) if targets.dim() == 2 else None
            tokens, _, attention = system.net.generate(inputs, lengths, tokenizer.EOS, max_length, beam_width=1)
            truths = list(batch["texts"]) if "texts" in batch else tokenizer.batch_decode(targets)
            preds = tokenizer.batch_decode(tokens)
            steps = [[tokenizer.decode([t]) or ("</s>" if t == tokenizer.EOS else "·") for t in row]
                     for row in tokens.tolist()]
        elif "transcribe" in capabilities:
            tokenizer = system.tokenizer
            preds, _ = system.transcribe(inputs, lengths)
            truths = list(batch["texts"]) if "texts" in batch else tokenizer.batch_decode(targets)
            attention, steps = None, [[] for _ in preds]
        elif "classify" in capabilities and targets.dim() == 1:
            logits, attention = system(inputs, lengths)
            truths = [str(int(t)) for t in targets]
            preds = [str(int(p)) for p in logits.argmax(-1)]
            steps_n = attention.size(1) if attention is not None else 0
            steps = [[str(i + 1) for i in range(steps_n)] for _ in truths]
        else:
            return None
    finally:
        system.train(was_training)
    return Inspection(inputs.detach().cpu(), truths, preds, _useful(attention), steps)
