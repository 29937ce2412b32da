"""A character n-gram language model for shallow fusion in beam search.

Interpolated absolute discounting (Ney, Essen and Kneser, 1994), with Kneser-Ney's
continuation counts for the unigram level::

    P_1(w)     = (1 - eps) N(. w) / N(. .) + eps / C          (C: the character ids)
    P_k(w | h) = max(c(h w) - D, 0) / c(h) + D N(h .) / c(h) P_{k-1}(w | h')

where ``h'`` drops the oldest token of ``h``, ``N(. w)`` counts the distinct tokens seen
before ``w`` and ``N(h .)`` those seen after ``h``; a history never seen backs off to
``P_{k-1}`` whole. Every character id keeps some probability (``eps``), so fusion
never rules out a character the text lacks.

In shallow fusion a language model's log-probabilities add to the recognition model's;
every character then pays ``log P``, and stopping (EOS) nothing. Scored ``relative``
to the unigram level, a character pays or gains only what its history says.

Plain torch: the counts are sorted tensors (contexts as integer keys, successors as
CSR rows), queried for a batch of histories at once. Scores go to character ids only;
special ids (SOS, EOS, PAD, UNK) get a log-probability of 0, so fusion leaves the
decision to stop, and unknown characters, to the recognition model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["CharNgramLM", "LMFusion"]


class _Order:
    """The counts of one order ``k >= 2``: histories of ``k - 1`` tokens as integer keys, sorted."""

    def __init__(self, grams: np.ndarray, vocab: int, discount: float):
        # grams: (G, k) token ids, one row per occurrence
        key = np.zeros(len(grams), dtype=np.int64)
        for col in range(grams.shape[1]):
            key = key * vocab + grams[:, col]
        unique, counts = np.unique(key, return_counts=True)  # sorted by history, then by next token
        history, successor = unique // vocab, unique % vocab
        contexts, starts, per_context = np.unique(history, return_index=True, return_counts=True)
        totals = np.add.reduceat(counts, starts)  # c(h)
        self.contexts = torch.from_numpy(contexts)
        self.indptr = torch.from_numpy(np.append(starts, len(unique)))
        self.successors = torch.from_numpy(successor)
        self.discounted = torch.from_numpy(np.maximum(counts - discount, 0) / np.repeat(totals, per_context)).float()
        self.backoff = torch.from_numpy(discount * per_context / totals).float()  # D N(h .) / c(h)

    def apply(self, keys: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
        """``P_k`` ``(N, V)`` for history ``keys (N,)`` given ``lower = P_{k-1} (N, V)``."""
        pos = torch.searchsorted(self.contexts, keys).clamp(max=len(self.contexts) - 1)
        found = self.contexts[pos] == keys  # (N,)
        scale = torch.where(found, self.backoff[pos], torch.ones_like(self.backoff[pos]))
        probs = lower * scale.unsqueeze(1)
        rows = found.nonzero().squeeze(1)
        if len(rows):
            begin, end = self.indptr[pos[rows]], self.indptr[pos[rows] + 1]
            sizes = end - begin
            row_of = torch.repeat_interleave(rows, sizes)
            offsets = torch.arange(int(sizes.sum())) - torch.repeat_interleave(sizes.cumsum(0) - sizes, sizes)
            flat = torch.repeat_interleave(begin, sizes) + offsets
            probs[row_of, self.successors[flat]] += self.discounted[flat]
        return probs


class CharNgramLM:
    """An n-gram model over token ids; :meth:`log_probs` scores the next token of each history.

    Args:
        sequences: token-id sequences (e.g. sentences of running text); n-grams never
            cross from one sequence to the next.
        vocab_size: ``V``, the model's output size.
        char_ids: the ids that are characters (``C`` of them); the others are specials.
        order: ``n``; 2 is a bigram model.
        discount: ``D`` in ``(0, 1)``.
        eps: the share of the unigram level spread evenly over all character ids.
    """

    def __init__(self, sequences: Iterable[Sequence[int]], vocab_size: int, char_ids: Sequence[int],
                 order: int = 3, discount: float = 0.75, eps: float = 0.01):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if not 0 < discount < 1:
            raise ValueError(f"discount must be in (0, 1), got {discount}")
        if not 0 < eps <= 1:
            raise ValueError(f"eps must be in (0, 1], got {eps}")
        self.order, self.vocab_size = order, vocab_size
        seqs = [np.asarray(s, dtype=np.int64) for s in sequences if len(s)]
        if not seqs:
            raise ValueError("a language model needs some text")
        chars = torch.zeros(vocab_size, dtype=torch.bool)
        chars[torch.as_tensor(list(char_ids), dtype=torch.long)] = True
        self.specials = ~chars
        # unigram: continuation counts N(. w) over distinct bigrams, smoothed over all characters
        bigrams = _grams(seqs, 2)
        if len(bigrams):
            distinct = np.unique(bigrams[:, 0] * vocab_size + bigrams[:, 1]) % vocab_size
        else:
            distinct = np.concatenate(seqs)
        continuation = torch.from_numpy(np.bincount(distinct, minlength=vocab_size)[:vocab_size]).float()
        continuation[self.specials] = 0
        unigram = (1 - eps) * continuation / continuation.sum().clamp(min=1) + eps * chars.float() / chars.sum()
        self.unigram = unigram
        self.orders = [_Order(_grams(seqs, k), vocab_size, discount) for k in range(2, order + 1)]

    def log_probs(self, history: torch.Tensor, relative: bool = False) -> torch.Tensor:
        """``log P(next | history)`` ``(N, V)`` for ``history (N, n - 1)`` token ids, oldest first
        (SOS where the line has no earlier token); special ids score 0.

        ``relative``: ``log P(next | history) - log P_1(next)``, what the history adds to the
        characters' own frequencies: 0 for a history never seen, and no bias against
        characters (nor for stopping) on average."""
        device = history.device
        history = history.cpu()
        probs = self.unigram.expand(len(history), -1).clone()
        for k, table in enumerate(self.orders, start=2):
            keys = torch.zeros(len(history), dtype=torch.long)
            for col in range(history.size(1) - (k - 1), history.size(1)):
                keys = keys * self.vocab_size + history[:, col]
            probs = table.apply(keys, probs)
        if relative:
            probs = probs / self.unigram
        out = probs.clamp(min=1e-30).log().masked_fill(self.specials, 0.0)
        return out.to(device)


@dataclass
class LMFusion:
    """Shallow fusion: a beam search adds ``weight * lm.log_probs(history, relative)`` to the
    model's log-probabilities of each next token."""

    lm: CharNgramLM
    weight: float
    relative: bool = False

    def scores(self, history: torch.Tensor) -> torch.Tensor:
        """``(N, V)`` additions for ``history (N, n - 1)``."""
        return self.weight * self.lm.log_probs(history, self.relative)


def _grams(seqs: list[np.ndarray], k: int) -> np.ndarray:
    """All ``k``-grams of each sequence, ``(G, k)``."""
    parts = [np.lib.stride_tricks.sliding_window_view(s, k) for s in seqs if len(s) >= k]
    return np.concatenate(parts) if parts else np.zeros((0, k), dtype=np.int64)
