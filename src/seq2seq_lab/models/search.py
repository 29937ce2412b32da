"""Decoding searches over a :class:`RecurrentDecoder`: greedy and beam."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from seq2seq_lab.models.char_lm import LMFusion
from seq2seq_lab.models.ctc_prefix import CTCPrefixScorer
from seq2seq_lab.models.decoder import RecurrentDecoder
from seq2seq_lab.models.feedback import TokenFeedback


def greedy(
    decoder: RecurrentDecoder,
    memory: torch.Tensor,
    mask: torch.Tensor,
    summary: torch.Tensor,
    max_length: int,
    eos_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Most likely token at every step.

    Returns:
        tokens ``(B, L')``, scores ``(B,)`` (sum of log-probabilities up to and
        including the first EOS) and attention ``(B, L', T)``; ``L' <= max_length``.
    """
    logits, weights = decoder(memory, mask, summary, max_length=max_length, eos_id=eos_id)
    return (*greedy_choice(logits, eos_id), weights)


def greedy_choice(logits: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The greedy reading of free-running ``logits (B, L, V)``: tokens ``(B, L)`` and scores ``(B,)``
    (log-probabilities summed up to and including each row's first EOS)."""
    log_probs, tokens = logits.float().log_softmax(-1).max(-1)  # (B, L); float: bf16 models too
    return tokens, (log_probs * until_eos(tokens, eos_id)).sum(1)


def until_eos(tokens: torch.Tensor, eos_id: int) -> torch.Tensor:
    """``(B, L)`` bool mask of ``tokens (B, L)``: True up to and including each row's first EOS."""
    is_eos = (tokens == eos_id).long()
    return (is_eos.cumsum(1) - is_eos) == 0


@torch.no_grad()
def beam(
    decoder: RecurrentDecoder,
    memory: torch.Tensor,
    mask: torch.Tensor,
    summary: torch.Tensor,
    max_length: int,
    eos_id: int,
    beam_width: int = 5,
    length_penalty: float = 0.0,
    fusion: LMFusion | None = None,
    more: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = (),
    ctc: CTCPrefixScorer | None = None,
    pre_beam: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search; ``beam_width=1`` gives the greedy answer.

    Hypotheses that produced EOS stay finished (they only extend by EOS at no
    cost). The best hypothesis maximises ``score / length ** length_penalty``.

    With a ``fusion`` (a language model and its weight), hypotheses are ranked by
    ``log P_model + weight * log P_lm`` summed over their tokens (see :class:`LMFusion`);
    the returned scores stay the model's own.

    ``more``: encodings ``(memory (B, T_k, K), mask (B, T_k), summary (B, S))`` of other views of the
    same lines (:mod:`~seq2seq_lab.data.ocr.views`). Each view keeps its own decoder state, and each
    step's log-probabilities are the mean of all views' (the model's scores are then that mean's).

    ``ctc``: joint CTC-attention decoding (:mod:`~seq2seq_lab.models.ctc_prefix`). Each hypothesis's
    ``pre_beam`` best next tokens by the score above (default ``max(10, 2 * beam_width)``) are ranked by
    ``(1 - w) log P_model + w`` (their CTC prefix score's increment) ``+`` the language model's term;
    the returned scores stay the model's own.

    Returns:
        tokens ``(B, L')`` and scores ``(B,)`` (sum of the model's log-probabilities).
    """
    if not isinstance(decoder.feedback, TokenFeedback):
        raise ValueError("beam search needs a token decoder (TokenFeedback)")
    batch, width = memory.size(0), beam_width
    views = [_View(decoder, *(x.repeat_interleave(width, dim=0) for x in encoding))
             for encoding in [(memory, mask, summary), *more]]
    prev = decoder.feedback.start(batch * width, memory.device)
    scores = torch.full((batch, width), float("-inf"), device=memory.device)
    scores[:, 0] = 0.0  # all beams start identical: keep one
    model_scores = torch.zeros(batch * width, device=memory.device)
    if fusion is not None:  # (B*W, n-1): each hypothesis's last n-1 tokens, SOS before its first
        history = torch.full((batch * width, fusion.lm.order - 1), decoder.feedback.sos_id, dtype=torch.long)
    tokens = torch.zeros(batch * width, 0, dtype=torch.long, device=memory.device)
    finished = torch.zeros(batch * width, dtype=torch.bool, device=memory.device)
    lengths = torch.zeros(batch * width, device=memory.device)
    base = (torch.arange(batch, device=memory.device) * width).unsqueeze(1)
    if ctc is not None:
        ctc.start(width, eos_id)
    for _ in range(max_length):
        log_probs = [view.step(decoder, prev) for view in views]  # each (B*W, V)
        log_probs = log_probs[0] if len(views) == 1 else torch.stack(log_probs).mean(0)
        vocab = log_probs.size(-1)
        log_probs[finished] = float("-inf")
        log_probs[finished, eos_id] = 0.0
        lm = None if fusion is None else fusion.scores(history).to(log_probs.device)  # (B*W, V)
        fused = log_probs if lm is None else log_probs + lm
        if ctc is None:
            candidates = (scores.view(-1, 1) + fused).view(batch, width * vocab)
            scores, index = candidates.topk(width, dim=1)  # (B, W)
            chosen = (base + index // vocab).view(-1)
            token = (index % vocab).view(-1)
        else:
            scores, chosen, token = _joint_step(scores, base, log_probs, lm, fused, finished, ctc,
                                                min(vocab, pre_beam or max(10, 2 * width)))
        model_scores = model_scores.index_select(0, chosen) + log_probs[chosen, token]
        if fusion is not None:
            history = torch.cat([history.index_select(0, chosen.cpu()), token.cpu().unsqueeze(1)], dim=1)[:, 1:]
        tokens = torch.cat([tokens.index_select(0, chosen), token.unsqueeze(1)], dim=1)
        lengths = lengths.index_select(0, chosen) + (~finished.index_select(0, chosen)).float()
        finished = finished.index_select(0, chosen) | (token == eos_id)
        for view in views:
            view.state = view.state.reorder(chosen)
        prev = decoder.feedback.from_targets(token)
        if bool(finished.all()):
            break
    ranked = scores / lengths.view(batch, width).clamp(min=1) ** length_penalty
    best = (base.squeeze(1) + ranked.argmax(1))
    return tokens.index_select(0, best), model_scores.index_select(0, best)


def _joint_step(scores: torch.Tensor, base: torch.Tensor, log_probs: torch.Tensor, lm: torch.Tensor | None,
                fused: torch.Tensor, finished: torch.Tensor, ctc: CTCPrefixScorer, pre_beam: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of joint CTC-attention beam search over hypotheses with ranking ``scores (B, W)`` (``base (B, 1)``:
    each line's first row) and next-token ``log_probs (B*W, V)`` (``lm``: the language model's term, or None;
    ``fused``: their sum): the new ``scores (B, W)``, and the hypothesis ``(B*W,)`` and token ``(B*W,)`` each
    new row extends."""
    batch, width = scores.shape
    top = fused.topk(pre_beam, dim=1).indices  # (B*W, K): the candidates the CTC head scores
    joint = (1 - ctc.weight) * log_probs.gather(1, top) + ctc.scores(top)
    if lm is not None:
        joint = joint + lm.gather(1, top)
    joint = torch.where(finished.unsqueeze(1), fused.gather(1, top), joint)  # a finished one: EOS at no cost
    scores, index = (scores.view(-1, 1) + joint).view(batch, width * pre_beam).topk(width, dim=1)  # (B, W)
    hypothesis = (base + index // pre_beam).view(-1)
    pick = (index % pre_beam).view(-1)
    ctc.advance(hypothesis, pick)
    return scores, hypothesis, top[hypothesis, pick]


class _View:
    """One encoding's part of a beam search: its memory, mask and summary ``(B*W, ...)``, the
    attention's keys and cache, and the decoder state of each hypothesis."""

    def __init__(self, decoder: RecurrentDecoder, memory: torch.Tensor, mask: torch.Tensor, summary: torch.Tensor):
        self.memory, self.mask, self.summary = memory, mask, summary
        self.state = decoder.initial_state(summary)
        self.keys = decoder.keys(memory)
        self.cache = decoder.attention.precompute(self.keys)

    def step(self, decoder: RecurrentDecoder, prev: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(B*W, V)`` of the next token after ``prev``; advances the state."""
        output, _, self.state = decoder.step(prev, self.state, self.memory, self.mask, self.summary, self.cache,
                                             self.keys)
        return output.float().log_softmax(-1)
