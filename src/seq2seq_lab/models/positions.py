"""Sinusoidal position encodings (Vaswani et al., 2017) for the columns of an encoder memory."""

from __future__ import annotations

import math

import torch

__all__ = ["CONCAT_DIM", "add_positions", "concat_positions", "sinusoid_positions"]

# features of the encodings that ``concat_positions`` appends
CONCAT_DIM = 32


def sinusoid_positions(steps: int, dim: int, device: torch.device | None = None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(steps, dim)``: row ``j`` holds ``sin(j w_i)`` in its even and ``cos(j w_i)`` in its odd
    features, with wavelengths ``2 pi / w_i`` from ``2 pi`` to ``10000 * 2 pi`` (an odd ``dim``
    drops the last cosine). Each row depends on ``j`` alone, not on ``steps``."""
    position = torch.arange(steps, device=device, dtype=torch.float32).unsqueeze(1)  # (T, 1)
    rates = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = position * rates  # (T, ceil(dim / 2))
    table = torch.stack([angles.sin(), angles.cos()], dim=2).flatten(1)[:, :dim]  # (T, dim)
    return table.to(dtype)


def add_positions(x: torch.Tensor) -> torch.Tensor:
    """``x (B, T, K)`` plus the encodings of its ``T`` steps, in its dtype and device."""
    return x + sinusoid_positions(x.size(1), x.size(2), x.device, x.dtype)


def concat_positions(x: torch.Tensor, dim: int = CONCAT_DIM) -> torch.Tensor:
    """``x (B, T, K)`` with the ``dim``-feature encodings of its ``T`` steps appended:
    ``(B, T, K + dim)``. Unlike :func:`add_positions` the features of ``x`` stay as they are."""
    table = sinusoid_positions(x.size(1), dim, x.device, x.dtype)  # (T, dim)
    return torch.cat([x, table.expand(x.size(0), -1, -1)], dim=2)
