"""A diagonal prior on a text line's attention, for the first steps of training.

A line is read left to right, and its characters share its width about evenly, so the
decoder's step ``i`` of a line of ``n`` characters should look near ``(i + 0.5) / n`` of
its valid columns. Until the attention has learnt that, the decoder reads from the wrong
place and the loss sits on a plateau. :func:`diagonal_guide_loss` charges each character
step the attention mass it puts far from that place (the guided attention of Tachibana et
al., 2017, "Efficiently Trainable Text-to-Speech System Based on Deep Convolutional
Networks with Guided Attention"); :class:`GuideSchedule` fades it out, so that later
training is free to follow lines whose characters are not evenly spread (Latin runs,
digits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

from seq2seq_lab.errors import ConfigError

__all__ = ["GuideSchedule", "diagonal_guide_loss"]


def diagonal_guide_loss(attention: torch.Tensor, mask: torch.Tensor, char_counts: torch.Tensor,
                        sigma: float) -> torch.Tensor:
    """The mean over character steps of the attention mass away from the line's diagonal.

    Args:
        attention: ``(B, L, T)`` decoder step ``i``'s weights over the encoder columns.
        mask: ``(B, T)`` True on valid columns (not padding).
        char_counts: ``(B,)`` characters per line ``n``: steps ``0..n-1`` are characters
            (step ``n``, EOS, and PAD steps are not charged).
        sigma: the prior's width, as a fraction of the line.

    Returns:
        a scalar in ``[0, 1)``: column ``t`` of ``T_b`` valid ones costs step ``i``
        ``1 - exp(-((t + 0.5) / T_b - (i + 0.5) / n)^2 / (2 sigma^2))`` per unit of weight.
    """
    attention = attention.float()
    batch, steps, columns = attention.shape
    device = attention.device
    width = mask[:, :columns].sum(1).clamp(min=1).float()  # (B,)
    place = (torch.arange(columns, device=device) + 0.5) / width[:, None]  # (B, T)
    counts = char_counts.to(device)
    expected = (torch.arange(steps, device=device) + 0.5) / counts.clamp(min=1)[:, None].float()  # (B, L)
    penalty = 1 - torch.exp(-(place[:, None, :] - expected[:, :, None]) ** 2 / (2 * sigma**2))  # (B, L, T)
    charged = torch.arange(steps, device=device)[None] < counts[:, None]  # (B, L)
    per_step = (attention * penalty * mask[:, None, :columns]).sum(-1)  # (B, L)
    return (per_step * charged).sum() / charged.sum().clamp(min=1)


@dataclass(frozen=True)
class GuideSchedule:
    """``system.guide``: the diagonal prior's weight in the loss, fading out over training.

    weight: its weight at step 0 (0: off).
    sigma: the prior's width, a fraction of the line (0.2: about two of ten characters).
    steps: the weight falls linearly to 0 at this training step (0: constant).
    """

    weight: float = 1.0
    sigma: float = 0.2
    steps: int = 2000

    @classmethod
    def from_config(cls, guide: Mapping | None) -> GuideSchedule | None:
        """The schedule ``system.guide`` asks for, or None (null, or weight 0).

        Raises:
            ConfigError: naming the ``system.guide`` key that is unknown or out of range.
        """
        if guide is None:
            return None
        if not isinstance(guide, Mapping):
            raise ConfigError(f"system.guide must be null or a mapping of weight, sigma, steps, got {guide!r}")
        known = set(asdict(cls()))
        unknown = sorted(set(guide) - known)
        if unknown:
            raise ConfigError(f"system.guide.{unknown[0]}: unknown key; keys: {', '.join(sorted(known))}")
        schedule = cls(**dict(guide))
        for key in ("weight", "sigma"):
            value = getattr(schedule, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"system.guide.{key} must be a number >= 0, got {value!r}")
        if schedule.sigma == 0:
            raise ConfigError("system.guide.sigma must be > 0")
        if isinstance(schedule.steps, bool) or not isinstance(schedule.steps, int) or schedule.steps < 0:
            raise ConfigError(f"system.guide.steps must be an integer >= 0, got {schedule.steps!r}")
        return schedule if schedule.weight else None

    def weight_at(self, step: int) -> float:
        """The prior's weight at training step ``step``."""
        if not self.steps:
            return float(self.weight)
        return float(self.weight) * max(0.0, 1.0 - step / self.steps)
