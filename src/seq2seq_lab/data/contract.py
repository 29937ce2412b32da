"""What a model needs from its data, known before any data is read: :class:`DataContract`.

Every data module sets ``self.contract`` in ``__init__`` from what it can read cheaply
(an IDX header, a charset file, its own arguments). The builders fill a model's or a
system's ``???`` keys from it by name (:meth:`DataContract.values`), so a model is sized
by the data without the data being loaded, and without asking the data module anything
else.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from seq2seq_lab.data.tokenizer import Tokenizer

__all__ = ["TASKS", "DataContract"]

TASKS = ("classify", "tokens", "lines")  # a label per sequence | token sequences | text-line images


@dataclass(frozen=True)
class DataContract:
    """The shapes and vocabulary a data module's batches have.

    Attributes:
        task: ``classify`` (``inputs (B, T, F)`` -> ``targets (B,)``), ``tokens`` (``inputs (B, T, F)``
            -> token ``targets (B, L)``) or ``lines`` (images ``(B, C, H, W)`` -> token targets).
        output_dim: classes (classify) or vocabulary size (tokens, lines).
        output_length: decoder steps ``L`` (the longest target plus EOS); None for classify.
        input_length, input_dim: ``T`` and ``F`` of sequence inputs; None for images.
        channels, height, width: image channels, height and maximum width; None for sequences.
        tokenizer: the tokenizer of token targets; None for classify.
        fixed_width: lines: every batch is padded to ``width`` (else to its widest line).
        trim_margins: lines: the blank paper beside each line's text is cut off before it is resized
            (:func:`~seq2seq_lab.deploy.runtime.trim_margins`).
    """

    task: str
    output_dim: int
    output_length: int | None = None
    input_length: int | None = None
    input_dim: int | None = None
    channels: int | None = None
    height: int | None = None
    width: int | None = None
    tokenizer: Tokenizer | None = None
    fixed_width: bool = False
    trim_margins: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")

    @property
    def num_classes(self) -> int | None:
        return self.output_dim if self.task == "classify" else None

    def values(self) -> dict[str, Any]:
        """The values a model or system config may leave as ``???``, by key (None ones left out)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("task", "fixed_width", "trim_margins")}
        out["num_classes"] = self.num_classes
        return {k: v for k, v in out.items() if v is not None}
