"""Finding font files that can draw a charset.

A font entry is a file path (``.ttf``, ``.otf``, ``.ttc``...), a directory
(searched recursively) or a family name, resolved with ``fc-list`` (or, where
fontconfig is absent, by matching file names under the usual font directories).
An empty list means every installed font.

Coverage is checked with Pillow alone: a character is missing when its glyph
mask is the font's ``.notdef`` mask (the "tofu" box) or, for fonts whose
``.notdef`` is blank, when a visible character draws nothing. Collections
(``.ttc``) are used through their first face.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from PIL import ImageFont

from seq2seq_lab.errors import LabError

__all__ = ["FONT_DIRS", "FONT_SUFFIXES", "NoFontError", "find_fonts", "font_files", "missing_chars"]

FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
HINT = "run `make fonts` (installs fonts-wqy-microhei / fonts-noto-cjk) or pass fonts=[/path/to/font.ttf]"
_CHECK_SIZE = 16
_NOT_A_CHAR = "\U0010fffd"  # private use, plane 16: no font maps it, so it draws .notdef


class NoFontError(LabError, ValueError):
    """No font among those tried can draw every character of the charset."""


def _scan(dirs: Iterable[str | os.PathLike]) -> list[str]:
    found = []
    for d in dirs:
        root = Path(d).expanduser()
        if root.is_dir():
            found += [str(p) for p in root.rglob("*") if p.suffix.lower() in FONT_SUFFIXES and p.is_file()]
    return sorted(set(found))


def _fc_list(pattern: str) -> list[str] | None:
    """Files that ``fc-list <pattern>`` lists; None when fontconfig is not installed."""
    if shutil.which("fc-list") is None:
        return None
    try:
        res = subprocess.run(["fc-list", pattern, "file"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    files = {line.strip().rstrip(":").strip() for line in res.stdout.splitlines() if line.strip()}
    return sorted(f for f in files if f.lower().endswith(FONT_SUFFIXES))


def _by_family(name: str) -> list[str]:
    files = _fc_list(name)
    if files is None:  # no fontconfig: match "DejaVu Sans" to DejaVuSans*.ttf
        key = name.replace(" ", "").replace("-", "").lower()
        files = [f for f in _scan(FONT_DIRS) if Path(f).stem.replace("-", "").lower().startswith(key)]
    return files


def font_files(names_or_paths: Sequence[str | os.PathLike] | None) -> tuple[list[str], list[str]]:
    """Expand font entries into font files.

    Returns:
        ``(files, unresolved)``: the files in entry order without repeats, and
        the entries that named nothing.
    """
    if not names_or_paths:
        files = _fc_list(":")
        return (files if files else _scan(FONT_DIRS)), []
    files: list[str] = []
    unresolved: list[str] = []
    for entry in names_or_paths:
        path = Path(os.fspath(entry)).expanduser()
        if path.is_file():
            found = [str(path)]
        elif path.is_dir():
            found = _scan([path])
        else:
            found = _by_family(str(entry))
        if not found:
            unresolved.append(str(entry))
        files += [f for f in found if f not in files]
    return files, unresolved


@functools.lru_cache(maxsize=64)
def _probe(path: str) -> tuple[ImageFont.FreeTypeFont, bytes, tuple[int, int]]:
    font = ImageFont.truetype(path, _CHECK_SIZE, layout_engine=ImageFont.Layout.BASIC)
    tofu = font.getmask(_NOT_A_CHAR)
    return font, bytes(tofu), tofu.size


def missing_chars(path: str, charset: Iterable[str], limit: int | None = None) -> list[str]:
    """Characters of ``charset`` the font at ``path`` cannot draw (all of them when it does not load).

    Stops after ``limit`` missing characters when given.
    """
    chars = list(dict.fromkeys(charset))
    try:
        font, tofu, tofu_size = _probe(path)
    except OSError:
        return chars
    missing = []
    for ch in chars:
        if ch.isspace():
            continue
        mask = font.getmask(ch)
        data = bytes(mask)
        if (mask.size == tofu_size and data == tofu) or not any(data):
            missing.append(ch)
            if limit is not None and len(missing) >= limit:
                break
    return missing


def _preview(chars: str, n: int = 20) -> str:
    return chars[:n] + ("..." if len(chars) > n else "")


def find_fonts(names_or_paths: Sequence[str | os.PathLike] | None, charset: Iterable[str]) -> list[str]:
    """The font files, among ``names_or_paths``, that can draw every character of ``charset``.

    Args:
        names_or_paths: font files, directories or family names (``"DejaVu Sans"``);
            empty or None for every installed font.
        charset: the characters the fonts must draw (whitespace is not checked).

    Returns:
        the font file paths, in the order found.

    Raises:
        NoFontError: no font covers the charset; the message names the charset,
            each font tried with a character it lacks, and the ``make fonts`` hint.
    """
    chars = "".join(dict.fromkeys(charset))
    files, unresolved = font_files(names_or_paths)
    good, tried = [], []
    for f in files:
        lacking = missing_chars(f, chars, limit=1)
        if lacking:
            tried.append(f"{f} (lacks {lacking[0]!r})")
        else:
            good.append(f)
    if good:
        return good
    tried += [f"{u} (no such file, directory or font family)" for u in unresolved]
    shown = "; ".join(tried[:12]) + (f"; and {len(tried) - 12} more" if len(tried) > 12 else "")
    raise NoFontError(
        f"no font can draw the charset {_preview(chars)!r} ({len(chars)} characters); "
        f"fonts tried: {shown or 'none found'}. Hint: {HINT}"
    )
