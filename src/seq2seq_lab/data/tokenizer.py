"""Character tokenizer that owns its special tokens.

Ids follow the classic PyTorch OCR layout: ``SOS = 0``, ``EOS = 1``, and the
character on charset line ``i`` (0-based) is ``i + 2``. ``PAD`` and ``UNK`` come
after the characters, so a charset's ids never depend on them.

A character may appear on two charset lines (shipped charsets have such
repeats): ids stay by line, so both ids decode to the character, and text
encodes it to the id of its first line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from seq2seq_lab.deploy.runtime import decode_ids
from seq2seq_lab.errors import LabError


class UnknownCharacterError(LabError, ValueError):
    """A label holds a character that the charset lacks."""

    def __init__(self, char: str, text: str):
        super().__init__(f"character {char!r} (U+{ord(char):04X}) in label {text!r} is not in the charset")
        self.char = char
        self.text = text


class Tokenizer:
    """Maps text to token ids and back.

    Args:
        charset: the characters, in id order (charset lines); a repeated character
            keeps every id, and :meth:`encode` uses its first.
        use_unk: map characters outside the charset to ``UNK`` instead of raising.
    """

    SOS = 0
    EOS = 1
    FIRST_CHAR = 2

    def __init__(self, charset: Sequence[str], use_unk: bool = False):
        chars = list(charset)
        self.chars = chars
        self.use_unk = use_unk
        self._ids: dict[str, int] = {}
        for i, c in enumerate(chars):
            self._ids.setdefault(c, i + self.FIRST_CHAR)  # a repeated character encodes to its first line
        self.PAD = self.FIRST_CHAR + len(chars)
        self.UNK = self.PAD + 1

    @property
    def vocab_size(self) -> int:
        """Number of output classes: characters plus SOS, EOS, PAD and UNK."""
        return self.UNK + 1

    def __len__(self) -> int:
        return self.vocab_size

    def unknown_chars(self, text: str) -> list[str]:
        """Characters of ``text`` that the charset lacks, in order of appearance."""
        return [c for c in dict.fromkeys(text) if c not in self._ids]

    def encode(self, text: str) -> list[int]:
        """Character ids of ``text`` followed by ``EOS``."""
        ids = []
        for c in text:
            i = self._ids.get(c)
            if i is None:
                if not self.use_unk:
                    raise UnknownCharacterError(c, text)
                i = self.UNK
            ids.append(i)
        ids.append(self.EOS)
        return ids

    def encode_lines(self, lines: Sequence[int]) -> list[int]:
        """Ids of 1-based charset line numbers (line ``k`` -> id ``k + 1``) followed by ``EOS``.

        Raises:
            ValueError: a line number outside ``1..len(chars)``.
        """
        bad = [k for k in lines if not 1 <= k <= len(self.chars)]
        if bad:
            raise ValueError(f"charset line {bad[0]} is outside 1..{len(self.chars)}")
        return [k - 1 + self.FIRST_CHAR for k in lines] + [self.EOS]

    def decode(self, ids: Iterable[int], unk: str = "\ufffd") -> str:
        """Text of ``ids`` up to the first ``EOS``; other specials are dropped, UNK shows as ``unk``."""
        return decode_ids(ids, self.chars, self.EOS, self.FIRST_CHAR, self.UNK, unk)

    def batch_encode(self, texts: Sequence[str], max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad encoded texts into one tensor.

        Returns:
            targets: ``(B, L)`` long, each row ``chars..., EOS, PAD...``; ``L`` is
                ``max_length + 1`` when given, else the longest row.
            lengths: ``(B,)`` long, tokens per row including ``EOS``.
        """
        rows = [self.encode(t) for t in texts]
        width = max_length + 1 if max_length is not None else max((len(r) for r in rows), default=1)
        targets = torch.full((len(rows), width), self.PAD, dtype=torch.long)
        for b, r in enumerate(rows):
            if len(r) > width:
                raise ValueError(f"label {texts[b]!r} has {len(r) - 1} characters, more than max_length={width - 1}")
            targets[b, : len(r)] = torch.tensor(r, dtype=torch.long)
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        return targets, lengths

    def batch_decode(self, ids: torch.Tensor, unk: str = "\ufffd") -> list[str]:
        """Decode each row of a ``(B, L)`` id tensor (UNK shows as ``unk``)."""
        return [self.decode(row, unk) for row in ids.tolist()]
