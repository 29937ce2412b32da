"""CTC prefix scores for a beam search: joint CTC-attention decoding (Watanabe et al., 2017).

A CTC head reads a line column by column; the attention decoder reads it character by character.
In joint decoding every extension ``g + c`` of a hypothesis ``g`` is scored by
``(1 - w) log P_att(c | g) + w (log P_ctc(g + c ...) - log P_ctc(g ...))``, where ``P_ctc(h ...)`` is the
CTC *prefix* probability: that the column labels, blanks and repeats collapsed, start with ``h``.
For EOS it is the probability that they are exactly ``g``. The attention may lose its place in a
long line (repeat a word, skip a run of digits); the CTC head cannot, since each column labels only
itself, and joint decoding lets it veto such readings.

:class:`CTCPrefixScorer` keeps, for each hypothesis, the forward variables of its prefix over the
columns (``r_n``: ending in a character, ``r_b``: ending in a blank) and scores only the ``K``
candidates a hypothesis's attention ranks highest (the pre-beam), as ESPnet does: ``O(T K)`` work
per hypothesis and step.
"""

from __future__ import annotations

import torch

__all__ = ["CTCPrefixScorer", "LOGZERO"]

LOGZERO = -1e10  # the floor of a prefix score, so that an impossible prefix's increments stay finite


class CTCPrefixScorer:
    """CTC prefix scores of the hypotheses of a beam search over a batch of lines.

    Args:
        log_probs: ``(B, T, V)`` the CTC head's per-column log-probabilities.
        lengths: ``(B,)`` valid columns of each line.
        blank: the blank id (never a candidate).
        weight: ``w`` above, in ``(0, 1)``.

    A search calls :meth:`start` with its width (hypotheses ``b * width + k`` of line ``b``), then per
    step :meth:`scores` of each hypothesis's candidates and :meth:`advance` to those it keeps.
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor, blank: int, weight: float):
        if not 0.0 < weight < 1.0:
            raise ValueError(f"the CTC weight of joint decoding must be in (0, 1), got {weight}")
        steps = log_probs.size(1)
        lengths = lengths.to(log_probs.device).clamp(min=1)
        valid = torch.arange(steps, device=log_probs.device).unsqueeze(1) < lengths.unsqueeze(0)  # (T, B)
        x = log_probs.detach().float().transpose(0, 1).clone()  # (T, B, V)
        # past a line's end: blank with certainty, so that every prefix's probability carries over unchanged
        x.masked_fill_(~valid.unsqueeze(-1), float("-inf"))
        x[..., blank] = x[..., blank].masked_fill(~valid, 0.0)
        self.x, self.blank, self.weight = x, blank, weight

    def start(self, width: int, eos: int) -> None:
        """Empty prefixes for ``width`` hypotheses per line; ``eos`` scores the whole prefix."""
        steps, batch, _ = self.x.shape
        self.eos = eos
        self.line = torch.arange(batch, device=self.x.device).repeat_interleave(width)  # (N,): each one's line
        n = batch * width
        self.xb = self.x[:, self.line, self.blank].unsqueeze(-1)  # (T, N, 1): each hypothesis's blank column
        self.r = torch.full((steps, n, 2), float("-inf"), device=self.x.device)  # (T, N, 2): r_n, r_b
        self.r[:, :, 1] = self.xb[..., 0].cumsum(0)  # the empty prefix: blanks only
        self.psi = torch.zeros(n, device=self.x.device)  # (N,) log prefix probability of each hypothesis
        self.last = torch.full((n,), -1, dtype=torch.long, device=self.x.device)  # (N,) last token; -1: none

    def scores(self, candidates: torch.Tensor) -> torch.Tensor:
        """Weighted increments ``w (log P_ctc(g + c ...) - log P_ctc(g ...))`` ``(N, K)`` of the
        ``candidates (N, K)`` (token ids) of each hypothesis ``g``; the blank scores ``-inf``.
        Keeps the candidates' forward variables for :meth:`advance`."""
        steps, n, k = self.x.size(0), *candidates.shape
        xc = self.x[:, self.line.unsqueeze(1).expand(n, k), candidates]  # (T, N, K)
        r_n, r_b = self.r[..., 0].unsqueeze(-1), self.r[..., 1].unsqueeze(-1)  # (T, N, 1)
        # the prefix's probability up to column t, with a blank before c where c repeats g's last character
        phi = torch.where(candidates == self.last.unsqueeze(1), r_b, torch.logaddexp(r_n, r_b))  # (T, N, K)
        new_n = torch.full((steps, n, k), float("-inf"), device=xc.device)
        new_b = torch.full((steps, n, k), float("-inf"), device=xc.device)
        empty = (self.last < 0).unsqueeze(1)  # (N, 1): c is the first character
        new_n[0] = torch.where(empty, xc[0], new_n[0])
        for t in range(1, steps):
            new_n[t] = torch.logaddexp(new_n[t - 1], phi[t - 1]) + xc[t]
            new_b[t] = torch.logaddexp(new_b[t - 1], new_n[t - 1]) + self.xb[t]
        psi = torch.logsumexp(torch.cat([new_n[:1], phi[:-1] + xc[1:]]), dim=0)  # (N, K)
        whole = torch.logaddexp(self.r[-1, :, 0], self.r[-1, :, 1])  # (N,): exactly g, for EOS
        psi = torch.where(candidates == self.eos, whole.unsqueeze(1), psi).clamp(min=LOGZERO)
        psi = psi.masked_fill(candidates == self.blank, float("-inf"))
        self._pending = (candidates, torch.stack([new_n, new_b], dim=-1), psi)  # (N, K), (T, N, K, 2), (N, K)
        return self.weight * (psi - self.psi.clamp(min=LOGZERO).unsqueeze(1))

    def advance(self, hypothesis: torch.Tensor, candidate: torch.Tensor) -> None:
        """Keep, as the new rows, candidate ``candidate (N,)`` of hypothesis ``hypothesis (N,)`` of the
        last :meth:`scores` (indices into its ``(N, K)``). A hypothesis that has ended (EOS) is the search's to
        keep at no further cost; its state here is not read again."""
        candidates, r, psi = self._pending
        self.r = r[:, hypothesis, candidate]  # (T, N, 2)
        self.psi = psi[hypothesis, candidate]
        self.last = candidates[hypothesis, candidate]
        self._pending = None
