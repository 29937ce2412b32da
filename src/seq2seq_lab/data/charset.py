"""Charset files: one character per line, as in the classic Chinese OCR corpora.

Line ``i`` (1-based) holds the character whose tokenizer id is ``i + 1``
(``SOS = 0`` and ``EOS = 1`` come first, see :class:`Tokenizer`). Rules:

* the file is UTF-8; a BOM on line 1 is dropped;
* only the line ending (``\\n`` or ``\\r\\n``) is stripped, so a line holding a
  single space is the space character;
* empty lines are allowed only at the very end of the file;
* a line with more than one character, or a character seen twice, is an error.
"""

from __future__ import annotations

import os

from seq2seq_lab.errors import LabError

__all__ = ["CharsetError", "read_charset"]

_MAX_REPORTED = 10  # problems listed in one error message


class CharsetError(LabError, ValueError):
    """A charset file is malformed; the message names the file and the lines."""


def read_utf8(path: str | os.PathLike, error: type[Exception], what: str) -> str:
    """The text of a UTF-8 file (a BOM is dropped); ``error`` names the file and line of bad bytes."""
    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise error(f"{os.fspath(path)}:{line}: {what} is not valid UTF-8 ({err.reason})") from None


def read_charset(path: str | os.PathLike) -> list[str]:
    """Read a charset file.

    Args:
        path: the charset file, one character per line.

    Returns:
        the characters in file order (``len`` = number of non-trailing lines).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CharsetError: not UTF-8, empty, an empty or multi-character line, or a duplicate.
    """
    name = os.fspath(path)
    text = read_utf8(path, CharsetError, "charset file")

    lines = text.split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    while lines and lines[-1] == "":  # the final newline, and any empty lines after the last character
        lines.pop()
    if not lines:
        raise CharsetError(f"{name}: charset file has no characters")

    problems: list[str] = []
    first_seen: dict[str, int] = {}
    for lineno, ch in enumerate(lines, start=1):
        if ch == "":
            problems.append(f"{name}:{lineno}: empty line (only allowed at the end of the file)")
        elif len(ch) > 1:
            problems.append(f"{name}:{lineno}: line has {len(ch)} characters {ch!r}, expected exactly one")
        elif ch in first_seen:
            problems.append(f"{name}:{first_seen[ch]},{lineno}: character {ch!r} appears twice "
                            f"(lines {first_seen[ch]} and {lineno})")
        else:
            first_seen[ch] = lineno
    if problems:
        more = len(problems) - _MAX_REPORTED
        shown = "; ".join(problems[:_MAX_REPORTED]) + (f"; and {more} more" if more > 0 else "")
        raise CharsetError(f"invalid charset file {name}: {shown}")
    return lines
