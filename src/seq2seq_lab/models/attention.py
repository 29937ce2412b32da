"""Attention modules, registered by name.

Every module maps ``(query (B, Q), keys (B, T, K), mask (B, T))`` to
``(context (B, C), weights (B, T))``: the weights sum to 1 over the valid
positions (``mask`` True) and are 0 where masked. ``C`` is ``K``, or 0 for
``none``. The context sums the keys themselves, or ``values (B, T, K)`` when given
(keys that carry more than the context should, e.g. column encodings). Modules
whose key-side work does not depend on the query do it once per sequence in
:meth:`Attention.precompute`; the decoder passes the result back as ``cache`` at
every step.

An attention that reads where it looked before (``reads_history``, e.g. ``location``)
also takes ``history (B, 2, T)``: the previous step's weights and the sum of all
earlier steps' weights, zeros at the first step. The decoder keeps it in its state
(:class:`~seq2seq_lab.models.decoder.DecoderState`).

Adding a type: write a subclass here, decorate it with ``@register("name")``,
and add ``conf/model/attention/name.yaml``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ATTENTIONS: dict[str, type[Attention]] = {}


def register(name: str) -> Callable[[type[Attention]], type[Attention]]:
    def add(cls: type[Attention]) -> type[Attention]:
        ATTENTIONS[name] = cls
        cls.name = name
        return cls

    return add


def build_attention(spec: str | Callable[..., Attention], query_dim: int, key_dim: int) -> Attention:
    """An attention module from a registered name or a factory (e.g. a Hydra partial)."""
    if isinstance(spec, str):
        if spec not in ATTENTIONS:
            raise ValueError(f"unknown attention {spec!r}; choose one of {', '.join(ATTENTIONS)}")
        return ATTENTIONS[spec](query_dim=query_dim, key_dim=key_dim)
    return spec(query_dim=query_dim, key_dim=key_dim)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis of ``scores (B, T)``, 0 where ``mask (B, T)`` is False."""
    if mask is None:
        return torch.softmax(scores, dim=-1)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return weights.masked_fill(~mask, 0.0)  # also clears the NaNs of an all-masked row


def weighted_sum(weights: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``weights (B, T)`` x ``keys (B, T, K)`` -> ``(B, K)``."""
    return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)


class Attention(nn.Module):
    """Base class: subclasses score the keys; this class normalises and sums."""

    name = "base"
    reads_history = False  # True: forward takes ``history (B, 2, T)`` (see the module's docstring)

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__()
        self.query_dim = query_dim
        self.key_dim = key_dim

    @property
    def context_dim(self) -> int:
        return self.key_dim

    def precompute(self, keys: torch.Tensor) -> torch.Tensor | None:
        """Query-independent work on ``keys (B, T, K)``, done once per sequence."""
        return None

    def score(self, query: torch.Tensor, keys: torch.Tensor, cache: torch.Tensor | None) -> torch.Tensor:
        """Unnormalised scores ``(B, T)``."""
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor | None = None,
        cache: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if cache is None:
            cache = self.precompute(keys)
        weights = masked_softmax(self.score(query, keys, cache), mask)
        return weighted_sum(weights, keys if values is None else values), weights


@register("none")
class NoAttention(Attention):
    """No attention: an empty context ``(B, 0)`` and all-zero weights."""

    @property
    def context_dim(self) -> int:
        return 0

    def forward(self, query, keys, mask=None, cache=None, values=None):
        batch, steps = keys.shape[:2]
        return keys.new_zeros(batch, 0), keys.new_zeros(batch, steps)


@register("mlp")
class AdditiveAttention(Attention):
    """Bahdanau et al. (2015): ``v^T tanh(W_q q + W_k k)``.

    Args:
        attention_dim: size of the hidden layer (default: ``key_dim``).
    """

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int | None = None):
        super().__init__(query_dim, key_dim)
        attention_dim = attention_dim or key_dim
        self.query_proj = nn.Linear(query_dim, attention_dim)
        self.key_proj = nn.Linear(key_dim, attention_dim, bias=False)
        self.energy = nn.Linear(attention_dim, 1, bias=False)

    def precompute(self, keys):
        return self.key_proj(keys)  # (B, T, A)

    def score(self, query, keys, cache):
        hidden = torch.tanh(cache + self.query_proj(query).unsqueeze(1))  # (B, T, A)
        return self.energy(hidden).squeeze(-1)


@register("dot")
class DotAttention(Attention):
    """Luong et al. (2015) dot: ``q . k``.

    When ``query_dim != key_dim`` the keys are first mapped to the query's size
    by a linear layer (once per sequence); with equal sizes there are no
    parameters.
    """

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__(query_dim, key_dim)
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False) if key_dim != query_dim else None

    def precompute(self, keys):
        return keys if self.key_proj is None else self.key_proj(keys)  # (B, T, Q)

    def score(self, query, keys, cache):
        return torch.bmm(cache, query.unsqueeze(2)).squeeze(2)


@register("general")
class GeneralAttention(Attention):
    """Luong et al. (2015) general: ``q^T W k``, computed as ``(W^T q) . k``."""

    def __init__(self, query_dim: int, key_dim: int):
        super().__init__(query_dim, key_dim)
        self.query_proj = nn.Linear(query_dim, key_dim, bias=False)

    def score(self, query, keys, cache):
        return torch.bmm(keys, self.query_proj(query).unsqueeze(2)).squeeze(2)


@register("concat")
class ConcatAttention(Attention):
    """Luong et al. (2015) concat: ``v^T tanh(W [q; k])``, one weight over the concatenation.

    Args:
        attention_dim: size of the hidden layer (default: ``key_dim``).
    """

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int | None = None):
        super().__init__(query_dim, key_dim)
        attention_dim = attention_dim or key_dim
        self.joint = nn.Linear(query_dim + key_dim, attention_dim)
        self.energy = nn.Linear(attention_dim, 1, bias=False)

    def score(self, query, keys, cache):
        expanded = query.unsqueeze(1).expand(-1, keys.size(1), -1)
        return self.energy(torch.tanh(self.joint(torch.cat([expanded, keys], dim=-1)))).squeeze(-1)


@register("position")
class PositionAttention(Attention):
    """Position-only attention of the classic PyTorch OCR tutorial.

    The weights come from the query alone, a linear map to ``max_positions``
    fixed slots; the keys only supply the values. Sequences may be shorter than
    ``max_positions`` (the extra slots are dropped). They may be longer only by
    padding: steps past the slots must be masked out in every row (a batch padded
    wider than the model's lines, e.g. a line's views moved right), and get no weight.
    """

    def __init__(self, query_dim: int, key_dim: int, max_positions: int = 71):
        super().__init__(query_dim, key_dim)
        self.max_positions = max_positions
        self.slots = nn.Linear(query_dim, max_positions)

    def forward(self, query, keys, mask=None, cache=None, values=None):
        steps = keys.size(1)
        if steps > self.max_positions and (mask is None or bool(mask[:, self.max_positions:].any())):
            raise ValueError(
                f"position attention has {self.max_positions} slots but a line has valid steps past them "
                f"({steps} steps in all); set max_positions >= {steps}"
            )
        return super().forward(query, keys, mask, cache, values)

    def score(self, query, keys, cache):
        scores = self.slots(query)  # (B, max_positions)
        steps = keys.size(1)
        if steps <= self.max_positions:
            return scores[:, :steps]
        return F.pad(scores, (0, steps - self.max_positions))  # padding past the slots: masked out in forward


@register("location")
class LocationAttention(AdditiveAttention):
    """Location-aware additive attention (Chorowski et al., 2015, as Tacotron 2 uses it):
    ``v^T tanh(W_q q + W_k k + W_f (F * history))``.

    ``history (B, 2, T)`` holds the previous step's weights and the sum of all earlier ones;
    ``F`` is a 1-D convolution over the memory axis with ``filters`` channels. The scores then
    see where the attention stood and how much of the line it has read, so along a long
    line it moves on from there rather than searching the whole memory by content at every
    step. ``W_f`` starts at zero: a fresh module scores as :class:`AdditiveAttention` with the
    same weights, so a trained ``mlp`` model's checkpoint is a valid start (``init_missing=keep``).

    Args:
        attention_dim: size of the hidden layer (default: ``key_dim``).
        filters: channels of the location convolution.
        kernel_size: its width in memory steps (odd; a CRNN column is 4 pixels at stride 4).
    """

    reads_history = True

    def __init__(self, query_dim: int, key_dim: int, attention_dim: int | None = None,
                 filters: int = 32, kernel_size: int = 31):
        super().__init__(query_dim, key_dim, attention_dim)
        if kernel_size % 2 == 0:
            raise ValueError(f"location attention needs an odd kernel_size, got {kernel_size}")
        self.location_conv = nn.Conv1d(2, filters, kernel_size, padding=kernel_size // 2, bias=False)
        self.location_proj = nn.Linear(filters, self.energy.in_features, bias=False)
        nn.init.zeros_(self.location_proj.weight)

    def forward(self, query, keys, mask=None, cache=None, values=None, history=None):
        """As :meth:`Attention.forward`; the location term joins the keys' projection (the ``cache``
        :meth:`AdditiveAttention.score` reads). Without ``history`` (the first step) it is 0."""
        if cache is None:
            cache = self.precompute(keys)
        if history is not None:
            cache = cache + self.location_proj(self.location_conv(history.to(cache.dtype)).transpose(1, 2))  # (B, T, A)
        return super().forward(query, keys, mask, cache, values)
