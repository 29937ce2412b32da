"""Charset files: one character per line, as in the classic Chinese OCR corpora.

Line ``i`` (1-based) holds the character whose tokenizer id is ``i + 1``
(``SOS = 0`` and ``EOS = 1`` come first, see :class:`Tokenizer`). Rules:

* the file is UTF-8; a BOM on line 1 is dropped;
* only the line ending (``\\n`` or ``\\r\\n``) is stripped, so a line holding a
  single space is the space character;
* empty lines are allowed only at the very end of the file;
* a line with more than one character is an error;
* a character on two lines is a warning by default (``on_duplicate="warn"``), as
  shipped charsets have them (``char_std_5990.txt`` of the Synthetic Chinese
  String Dataset repeats five): ids stay by line, both lines' ids decode to the
  character, and a text label encodes it to the id of its first line.
  ``on_duplicate="error"`` makes it an error.

``builtin:NAME`` names a charset file shipped with the package (``data/charsets/``):
``builtin:char_std_5990`` is that corpus's file, byte for byte.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from seq2seq_lab.errors import LabError

__all__ = ["DUPLICATE_POLICIES", "CharsetError", "charset_file", "read_charset"]

log = logging.getLogger(__name__)

DUPLICATE_POLICIES = ("warn", "error")  # a character on two lines of a charset file

_MAX_REPORTED = 10  # problems listed in one error message
BUILTIN_DIR = Path(__file__).with_name("charsets")


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


def charset_file(spec: str | os.PathLike) -> str:
    """The file a charset spec names: ``builtin:NAME`` (a shipped charset) or a path, as given.

    Raises:
        CharsetError: an unknown builtin name (the message lists the shipped ones).
    """
    spec = os.fspath(spec)
    if not spec.startswith("builtin:"):
        return spec
    path = BUILTIN_DIR / f"{spec.removeprefix('builtin:')}.txt"
    if not path.is_file():
        shipped = ", ".join(f"builtin:{p.stem}" for p in sorted(BUILTIN_DIR.glob("*.txt")))
        raise CharsetError(f"charset {spec!r}: no such builtin charset; shipped: {shipped}")
    return str(path)


def read_charset(path: str | os.PathLike, on_duplicate: str = "warn") -> list[str]:
    """Read a charset file.

    Args:
        path: the charset file, one character per line, or ``builtin:NAME``.
        on_duplicate: a character on two lines: ``"warn"`` (log a warning naming
            the file and both lines, keep both lines) or ``"error"``.

    Returns:
        the characters in file order, one per line (``len`` = number of non-trailing
        lines; a repeated character appears at each of its lines).

    Raises:
        CharsetError: no such file, not UTF-8, empty, an empty or multi-character line, or
            (``on_duplicate="error"``) a duplicate.
    """
    if on_duplicate not in DUPLICATE_POLICIES:
        raise ValueError(f"on_duplicate must be one of {', '.join(map(repr, DUPLICATE_POLICIES))}; "
                         f"got {on_duplicate!r}")
    name = os.fspath(path)
    path = charset_file(path)
    if not os.path.isfile(path):
        raise CharsetError(f"{name}: no such charset file")
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
            message = (f"{name}:{first_seen[ch]},{lineno}: character {ch!r} appears twice "
                       f"(lines {first_seen[ch]} and {lineno})")
            if on_duplicate == "error":
                problems.append(message)
            else:
                log.warning("%s; both ids decode to it, text labels use line %d", message, first_seen[ch])
        else:
            first_seen[ch] = lineno
    if problems:
        more = len(problems) - _MAX_REPORTED
        shown = "; ".join(problems[:_MAX_REPORTED]) + (f"; and {more} more" if more > 0 else "")
        raise CharsetError(f"invalid charset file {name}: {shown}")
    return lines
