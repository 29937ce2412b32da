"""Reading a long line in pieces cut between its characters.

An attention decoder trained mostly on lines of about 10 characters misreads more of the characters
of a line of 30-40 than of a short one, from the first character on (docs/ocr_zh.md, "Lines of other
lengths"). So a line read as at least 1.5 times ``chars`` characters is cut into pieces of about
``chars`` characters each (``system.piece_chars``), the pieces are read as lines of their own, and
their readings are joined in order. Each cut falls midway between the columns of two neighbouring
characters of a first reading of the whole line: the CTC head's best path where the model has one
(its per-column reading hardly depends on the line's length), else a greedy reading, each
character at the column its attention weighs most.

The cuts come from each line's own columns, and a piece is padded as the data module pads a batch,
so a line's reading does not depend on how much padding its batch had.
"""

from __future__ import annotations

import torch

from seq2seq_lab.data.ocr.widths import pad_batch
from seq2seq_lab.errors import ConfigError

__all__ = ["attended_spans", "character_spans", "check_piece_chars", "cut_columns", "cut_lines", "join_readings"]


def check_piece_chars(chars: int | None) -> int | None:
    """``system.piece_chars``: None (lines read whole) or an integer >= 2.

    Raises:
        ConfigError: naming the key and the value.
    """
    if chars is not None and (isinstance(chars, bool) or not isinstance(chars, int) or chars < 2):
        raise ConfigError(f"system.piece_chars must be null or an integer >= 2 (characters per piece), got {chars!r}")
    return chars


def character_spans(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int) -> list[list[tuple[int, int]]]:
    """The characters of each row's CTC best path, as the first and last column of each.

    Args:
        log_probs: ``(B, T, V)`` per-column scores (log-probabilities or logits: only their argmax counts).
        lengths: ``(B,)`` valid columns per row.
        blank: the blank id.

    Returns:
        per row, ``(first, last)`` columns of each run of one non-blank label: a label repeated
        across columns is one character, as CTC collapses it.
    """
    best = log_probs.argmax(-1).tolist()  # (B, T)
    spans = []
    for labels, length in zip(best, lengths.tolist()):
        row: list[tuple[int, int]] = []
        for column, label in enumerate(labels[:length]):
            if label == blank:
                continue
            if row and row[-1][1] == column - 1 and labels[column - 1] == label:
                row[-1] = (row[-1][0], column)
            else:
                row.append((column, column))
        spans.append(row)
    return spans


def attended_spans(tokens: torch.Tensor, attention: torch.Tensor, eos: int) -> list[list[tuple[int, int]]]:
    """The characters of each row's greedy reading, as :func:`character_spans` gives a CTC path's: each at the
    column its attention weighs most, left to right.

    Args:
        tokens: ``(B, L)`` the reading (its characters up to the first EOS count).
        attention: ``(B, L, T)`` the attention weights of each step.
        eos: the EOS id.
    """
    peaks = attention.argmax(-1).tolist()  # (B, L)
    spans = []
    for row, columns in zip(tokens.tolist(), peaks):
        length = row.index(eos) if eos in row else len(row)
        spans.append([(column, column) for column in sorted(columns[:length])])
    return spans


def cut_columns(spans: list[tuple[int, int]], chars: int, stride: int) -> list[int]:
    """Pixel columns at which to cut a line whose ``n`` characters sit at ``spans`` (:func:`character_spans`,
    :func:`attended_spans`) into ``round(n / chars)`` pieces of about ``chars`` characters (none below 1.5
    ``chars``): each midway between the last column of one character and the first of the next, at ``stride``
    pixels per column (feature column ``j`` is centred on pixel ``stride * j``)."""
    n = len(spans)
    pieces = max(1, int(n / chars + 0.5))
    after = [round(j * n / pieces) for j in range(1, pieces)]  # the first character of each piece but the first
    return [round(stride * (spans[i - 1][1] + spans[i][0]) / 2) for i in after]


def cut_lines(images: torch.Tensor, widths: torch.Tensor, cuts: list[list[int]]
              ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``images (B, C, H, W)`` of ``widths (B,)`` valid columns cut at ``cuts`` (pixel columns per line; [] keeps
    it whole) into pieces: ``(P, C, H, W')`` padded as a batch, their widths ``(P,)`` and the line each comes
    from, in order (a line's pieces left to right)."""
    pieces, owner = [], []
    for line, (image, width, at) in enumerate(zip(images, widths.tolist(), cuts)):
        edges = [0, *sorted(c for c in set(at) if 0 < c < width), width]
        for start, end in zip(edges, edges[1:]):
            pieces.append(image[:, :, start:end].cpu())
            owner.append(line)
    padded, piece_widths = pad_batch(pieces)
    return padded.to(device=images.device, dtype=images.dtype), piece_widths.to(images.device), owner


def join_readings(tokens: torch.Tensor, scores: torch.Tensor, owner: list[int], lines: int, eos: int, pad: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The pieces' readings joined into their lines' readings.

    Args:
        tokens: ``(P, L)`` each piece's tokens (its text up to its first EOS counts).
        scores: ``(P,)`` each piece's summed log-probability, its EOS included.
        owner: the line of each piece, a line's pieces in order.
        lines: ``B``, the number of lines.
        eos: the EOS id (ends each joined line); pad: the id after it.

    Returns:
        tokens ``(B, L')``: each line's pieces' texts in order, then EOS, then ``pad``; and scores ``(B,)``:
        the pieces' summed log-probabilities scaled to the joined line's tokens (its characters and one
        EOS), so their mean per token is the mean over all of its pieces' tokens.
    """
    texts: list[list[int]] = [[] for _ in range(lines)]
    total = torch.zeros(lines, dtype=torch.float64)
    counted = torch.zeros(lines, dtype=torch.float64)
    for piece, line in enumerate(owner):
        row = tokens[piece].tolist()
        text = row[: row.index(eos)] if eos in row else row
        texts[line] += text
        total[line] += float(scores[piece])
        counted[line] += len(text) + (eos in row)
    length = max(len(text) for text in texts) + 1
    joined = torch.full((lines, length), pad, dtype=tokens.dtype)
    for line, text in enumerate(texts):
        joined[line, : len(text) + 1] = torch.tensor([*text, eos], dtype=tokens.dtype)
    mean = total / counted.clamp(min=1)
    steps = torch.tensor([len(text) + 1 for text in texts], dtype=torch.float64)
    return joined.to(tokens.device), (mean * steps).to(device=scores.device, dtype=scores.dtype)
