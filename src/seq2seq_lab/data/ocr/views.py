"""Views of a batch of text lines, for reading each line as an ensemble of itself.

A model reads a line a little differently when it sits a pixel lower, or a pixel or two to the
right (another phase of the encoder's column stride), or is a few percent narrower. Averaging the
decoder's next-token log-probabilities over a few such views (``system.views``,
:func:`~seq2seq_lab.models.search.beam`) misreads fewer characters in faces the model never saw
than the line alone does (docs/ocr_zh.md, "Reading several views of a line").

Each view is made from each line's own columns (its width before padding), then padded as the
data module pads a batch, so a line's views, and its reading, do not depend on how much padding
its batch had.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from seq2seq_lab.data.ocr.widths import pad_batch
from seq2seq_lab.errors import ConfigError

__all__ = ["LineView", "line_view", "line_views"]


@dataclass(frozen=True)
class LineView:
    """A line moved ``right`` and ``down`` by whole pixels (copies of its first column, its top row,
    fill in; its bottom rows drop out) after its width is resized by ``scale``.

    Scales above 1 make lines wider than the training lines may have been, and their last columns'
    positions then went untrained (``ocr_zh_cpu`` read worse at any scale above 1).
    """

    right: int = 0
    down: int = 0
    scale: float = 1.0

    def __str__(self) -> str:
        """As the config writes it, e.g. ``{right: 1, down: 1}``; only what differs from the line as given."""
        keys = [f"{key}: {value:g}" for key, value, same in
                (("right", self.right, 0), ("down", self.down, 0), ("scale", self.scale, 1.0)) if value != same]
        return "{" + ", ".join(keys) + "}"


def line_view(images: torch.Tensor, lengths: torch.Tensor | None, view: LineView) -> tuple[torch.Tensor, torch.Tensor]:
    """``view`` of ``images (B, C, H, W)`` whose rows have ``lengths (B,)`` valid columns (None: all ``W``):
    each line resized to ``round(w * scale)`` columns (bilinear, antialiased) and moved, then the batch
    padded on the right again by repeating each line's last column. Returns ``(B, C, H, W')`` in the
    input's dtype and the new widths ``(B,)`` long."""
    if lengths is None:
        lengths = torch.full((images.size(0),), images.size(3), dtype=torch.long)
    lines = []
    for image, width in zip(images.float(), lengths.tolist()):
        line = image[:, :, :width]  # (C, H, w)
        new = max(1, round(width * view.scale))
        if new != width:
            line = F.interpolate(line.unsqueeze(0), size=(line.size(1), new), mode="bilinear",
                                 align_corners=False, antialias=True).squeeze(0)
        if view.right:
            line = torch.cat([line[:, :, :1].expand(-1, -1, view.right), line], dim=2)
        if view.down:
            line = torch.cat([line[:, :1].expand(-1, view.down, -1), line[:, : line.size(1) - view.down]], dim=1)
        lines.append(line.cpu())
    padded, widths = pad_batch(lines)
    return padded.to(device=images.device, dtype=images.dtype), widths.to(images.device)


_LIMITS = {"right": (0, 64), "down": (0, 8), "scale": (0.25, 4.0)}


def line_views(views: Sequence[Mapping] | None) -> list[LineView]:
    """``system.views``: a list of views besides the line as given, each a mapping with any of
    ``right`` and ``down`` (whole pixels) and ``scale`` (of the width); None or [] reads the line alone.
    A view equal to the line as given is dropped, and so is a repeat.

    Raises:
        ConfigError: naming the view and key that is unknown or out of range.
    """
    if views is None:
        return []
    if isinstance(views, (str, Mapping)) or not isinstance(views, Sequence):
        raise ConfigError(f"system.views must be a list of views such as {{right: 1, down: 1}}, got {views!r}")
    out: dict[LineView, None] = {}
    for i, view in enumerate(views):
        if not isinstance(view, Mapping):
            raise ConfigError(f"system.views[{i}] must be a mapping with right, down and/or scale, got {view!r}")
        unknown = sorted(set(view) - set(_LIMITS))
        if unknown:
            raise ConfigError(f"system.views[{i}].{unknown[0]}: unknown key; keys: right, down, scale")
        for key, value in view.items():
            low, high = _LIMITS[key]
            whole = key != "scale"
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or not low <= value <= high:
                kind = "a whole number of pixels" if whole else "a number"
                raise ConfigError(f"system.views[{i}].{key} must be {kind} in [{low}, {high}], got {value!r}")
        parsed = LineView(**{k: (float(v) if k == "scale" else int(v)) for k, v in view.items()})
        if parsed != LineView():
            out[parsed] = None
    return list(out)
