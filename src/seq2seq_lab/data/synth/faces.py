"""Font faces and their character maps: which faces can draw a given line.

A *face* is one font inside a file: a ``.ttf``/``.otf`` has one, a collection
(``.ttc``/``.otc``) several, e.g. the Japanese, Korean, Simplified and Traditional
Chinese faces of Noto Sans CJK. Entries are resolved as in
:func:`seq2seq_lab.data.synth.fonts.font_files` (a file, a directory or a family
name); a family name takes the face index that fontconfig reports for it, and a
collection given by path takes its Simplified-Chinese face (a name with ``SC``,
``CN`` or ``GB``), else its first face that is not a ``Mono`` variant.

Coverage is read from the face's character map with fontTools, once per face
and process: a line is drawn only with a face whose map has every character
of the line (whitespace aside), so no line shows a missing-glyph box.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fontTools.ttLib import TTCollection, TTFont, TTLibError

from seq2seq_lab.data.synth.fonts import HINT, NoFontError, font_files

__all__ = ["CoverageIndex", "FontFace", "coverage", "faces_for", "file_key", "font_names", "resolve_faces"]

_SC_NAME = re.compile(r"\b(SC|CN|GB)\b|Simplified", re.IGNORECASE)
_COLLECTIONS = (".ttc", ".otc")


@dataclass(frozen=True)
class FontFace:
    """One face of a font file: ``path`` and ``index`` (0 unless a collection), ``name`` for people."""

    path: str
    index: int = 0
    name: str = ""

    def __str__(self) -> str:
        return f"{self.name} ({os.path.basename(self.path)}#{self.index})"


def _face_names(path: str) -> list[str]:
    """The full name of every face in ``path`` (one for a single font)."""
    fonts = TTCollection(path, lazy=True).fonts if path.lower().endswith(_COLLECTIONS) else [TTFont(path, lazy=True)]
    return [str(f["name"].getDebugName(4) or f["name"].getDebugName(1) or "") for f in fonts]


def pick_face(path: str) -> FontFace:
    """The face of ``path`` to draw Simplified Chinese with (see the module docstring)."""
    names = _face_names(path)
    index = next((i for i, n in enumerate(names) if _SC_NAME.search(n)), None)
    if index is None:
        index = next((i for i, n in enumerate(names) if "mono" not in n.lower()), 0)
    return FontFace(path, index, names[index])


def _fc_faces(family: str) -> list[FontFace]:
    """Faces fontconfig lists for a family name, with their collection index."""
    if shutil.which("fc-list") is None:
        return []
    try:
        res = subprocess.run(["fc-list", family, "file", "index"], capture_output=True, text=True,
                             timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in res.stdout.splitlines():
        path, _, rest = line.partition(":")
        match = re.search(r"index=(\d+)", rest)
        if path.strip() and match:
            index = int(match.group(1))
            found.append(FontFace(path.strip(), index, _face_names(path.strip())[index]))
    return sorted(set(found), key=lambda f: (f.path, f.index))


def resolve_faces(entries: Sequence[str | os.PathLike], what: str = "fonts") -> list[FontFace]:
    """The faces ``entries`` name: files, directories (every font file under them) or family names.

    Args:
        entries: font files, directories or fontconfig family names; empty for every installed font.
        what: the config key, for messages.

    Raises:
        NoFontError: an entry names no font (the message names it and says how to install fonts).
    """
    # each face of a file once, though links may reach the file by more than one path (Debian's
    # fonts-japanese-mincho.ttf is HanaMinA.ttf): the file's own path wins, the first one's place is kept
    chosen: dict[tuple[str, int], FontFace] = {}
    missing: list[str] = []
    for entry in entries or [None]:
        found = _fc_faces(str(entry)) if entry is not None and not os.path.exists(os.fspath(entry)) else []
        if not found:
            files, unresolved = font_files([entry] if entry is not None else [])
            missing += unresolved
            found = [pick_face(f) for f in files if _loads(f)]
        for face in found:
            key = file_key(face)
            if key not in chosen or face.path == key[0]:
                chosen[key] = face
    faces = list(chosen.values())
    if missing:
        raise NoFontError(f"{what}: no font found for {', '.join(map(repr, missing))}. Hint: {HINT}")
    if not faces:
        raise NoFontError(f"{what}: no font files found. Hint: {HINT}")
    return faces


def file_key(face: FontFace | str) -> tuple[str, int]:
    """``face``'s file and index, links resolved: two faces with one key draw alike. A plain path
    (the simple style's fonts) is its file's first face, as Pillow opens it."""
    if isinstance(face, FontFace):
        return os.path.realpath(face.path), face.index
    return os.path.realpath(face), 0


def font_names(entries) -> list[str]:
    """The names in a ``fonts`` list whose entries are names or lists of names (a group), in order."""
    return [str(n) for e in entries for n in (e if isinstance(e, (list, tuple)) else [e])]


def _loads(path: str) -> bool:
    try:
        _face_names(path)
    except (TTLibError, OSError, KeyError, AssertionError):
        return False
    return True


@functools.lru_cache(maxsize=64)
def coverage(face: FontFace) -> frozenset[str]:
    """The characters ``face``'s character map draws (fontTools' best cmap)."""
    if face.path.lower().endswith(_COLLECTIONS):
        font = TTCollection(face.path, lazy=True).fonts[face.index]
    else:
        font = TTFont(face.path, lazy=True)
    return frozenset(chr(cp) for cp in (font.getBestCmap() or {}))


def faces_for(text: str, faces: Iterable[FontFace]) -> list[FontFace]:
    """The faces that have a glyph for every non-space character of ``text``."""
    return CoverageIndex(faces).covering(text)


class CoverageIndex:
    """Which of ``faces`` cover a line, asked once per line drawn.

    Each character seen gets a bit mask of the faces that have it (built on first sight from
    :func:`coverage`); a line's faces are the AND of its characters' masks, not a set test
    per face.
    """

    def __init__(self, faces: Iterable[FontFace]):
        self.faces = list(faces)
        self._every = (1 << len(self.faces)) - 1
        self._masks: dict[str, int] = {}

    def _mask(self, char: str) -> int:
        mask = self._masks.get(char)
        if mask is None:
            mask = self._masks[char] = sum(1 << k for k, f in enumerate(self.faces) if char in coverage(f))
        return mask

    def covering(self, text: str) -> list[FontFace]:
        """The faces with a glyph for every non-space character of ``text``, in ``faces``' order."""
        bits = self._every
        for c in set(text):
            if not c.isspace():
                bits &= self._mask(c)
        return [f for k, f in enumerate(self.faces) if bits >> k & 1]
