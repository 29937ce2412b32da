"""Views of a batch of text lines, for reading each line as an ensemble of itself.

A model reads a line a little differently when it is a few percent narrower, or shifted by
part of the encoder's column stride. Averaging the decoder's next-token log-probabilities
over a few such views (``system.views``, :func:`~seq2seq_lab.models.search.beam`) misreads
fewer characters in faces the model never saw than any one view does (docs/ocr_zh.md,
"Reading several views of a line").

Each view is made from each line's own columns (its width before padding), then padded as
the data module pads a batch, so a line's views, and its reading, do not depend on how much
padding its batch had.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from seq2seq_lab.data.ocr.widths import pad_batch
from seq2seq_lab.errors import ConfigError

__all__ = ["LineViews", "line_view"]


def line_view(images: torch.Tensor, lengths: torch.Tensor | None, scale: float = 1.0, shift: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """One view of ``images (B, C, H, W)`` whose rows have ``lengths (B,)`` valid columns (None: all ``W``):
    each line resized to ``round(w * scale)`` columns (bilinear, antialiased), then ``shift`` copies
    of its first column prepended; the batch padded on the right again by repeating each line's last
    column. Returns ``(B, C, H, W')`` in the input's dtype and the new widths ``(B,)`` long."""
    if lengths is None:
        lengths = torch.full((images.size(0),), images.size(3), dtype=torch.long)
    lines = []
    for image, width in zip(images.float(), lengths.tolist()):
        line = image[:, :, :width]  # (C, H, w)
        new = max(1, round(width * scale))
        if new != width:
            line = F.interpolate(line.unsqueeze(0), size=(line.size(1), new), mode="bilinear",
                                 align_corners=False, antialias=True).squeeze(0)
        if shift:
            line = torch.cat([line[:, :, :1].expand(-1, -1, shift), line], dim=2)
        lines.append(line.cpu())
    padded, widths = pad_batch(lines)
    return padded.to(device=images.device, dtype=images.dtype), widths.to(images.device)


@dataclass(frozen=True)
class LineViews:
    """The views a line is read in: the line as given, and one for every other pair of a width
    ``scale`` and a left ``shift`` in pixels (``scales=(1.0,)``, ``shifts=(0,)``: the line alone).

    Scales above 1 make lines wider than the training lines may have been, and their last columns'
    positions then went untrained (``ocr_zh_cpu`` read worse at any scale above 1); its shipped views
    only shift, by 0-3 pixels: every phase of its encoder's 4-pixel column stride.
    """

    scales: tuple[float, ...] = (1.0,)
    shifts: tuple[int, ...] = (0,)

    @classmethod
    def from_config(cls, views: Mapping | None) -> LineViews | None:
        """``system.views`` (``{scales: [...], shifts: [...]}``, either may be left out) or None.

        Raises:
            ConfigError: naming the key that is unknown, empty or out of range.
        """
        if views is None:
            return None
        unknown = sorted(set(views) - {"scales", "shifts"})
        if unknown:
            raise ConfigError(f"system.views.{unknown[0]}: unknown key; keys: scales, shifts")
        scales, shifts = _numbers(views, "scales", (1.0,)), _numbers(views, "shifts", (0,))
        for scale in scales:
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.25 <= scale <= 4:
                raise ConfigError(f"system.views.scales: each must be a number in [0.25, 4], got {scale!r}")
        for shift in shifts:
            if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift <= 64:
                raise ConfigError(f"system.views.shifts: each must be a whole number of pixels in [0, 64], got {shift!r}")
        return cls(tuple(float(s) for s in scales), tuple(shifts))

    @property
    def others(self) -> list[tuple[float, int]]:
        """``(scale, shift)`` of each view but the line as given, ``(1.0, 0)``."""
        pairs = dict.fromkeys((scale, shift) for scale in self.scales for shift in self.shifts)
        return [pair for pair in pairs if pair != (1.0, 0)]

    def __len__(self) -> int:
        """How many views a line is read in, itself included."""
        return 1 + len(self.others)


def _numbers(views: Mapping, key: str, default: tuple) -> Sequence:
    values = views.get(key, default)
    if isinstance(values, (int, float)):
        values = [values]
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        raise ConfigError(f"system.views.{key}: must be a non-empty list, got {values!r}")
    return list(values)
