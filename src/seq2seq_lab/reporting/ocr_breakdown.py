"""Where an OCR model fails: accuracy per character type and scores per group of lines (e.g. font).

Pure Python (no torch), over ``(reference, hypothesis)`` string pairs:

* per character type of the *reference* characters (:func:`char_type`): ``chinese``,
  ``digit``, ``latin``, ``punct``: the character accuracy, matched reference characters
  of the type over reference characters of the type. Matches come from a Levenshtein
  alignment with backtrace (:func:`align`): a reference character that is substituted
  or deleted is an error for its type; an inserted character is an error of no type.
* per group (one label per pair, e.g. the font that drew the line): ``line_acc`` (exact
  lines), ``cer`` (edits over reference characters, summed over the group's lines, as
  :class:`torchmetrics.text.CharErrorRate` counts) and the number of lines.
* the misreadings: how often each reference character was read as another one, or dropped,
  in that alignment (:attr:`Breakdown.confusions`; the most frequent in the table).

:func:`ocr_breakdown` computes both; :meth:`Breakdown.metrics` flattens them into
``metrics.json`` keys and :meth:`Breakdown.table` renders them for the log.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from seq2seq_lab.reporting.tables import fmt, markdown_rows

__all__ = ["CHAR_TYPES", "Breakdown", "GroupScore", "LineAlignment", "TypeScore", "align", "char_type",
           "ocr_breakdown"]

CHAR_TYPES = ("chinese", "digit", "latin", "punct")

# CJK unified ideographs (the URO, extensions A to H) and the compatibility ideographs; 〇 (U+3007) too
_CJK_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x323AF), (0x3007, 0x3007))


def char_type(c: str) -> str | None:
    """The type of character ``c``, or None for whitespace (which no type counts).

    ``chinese``: a CJK ideograph (see ``_CJK_RANGES``); ``digit``: a decimal digit
    (Unicode ``Nd``: ASCII and fullwidth ones); ``latin``: a Latin letter (ASCII,
    accented, fullwidth); ``punct``: anything else (punctuation such as ，。、“”《》：()%,
    and symbols, kana, Greek...).
    """
    if c.isspace():
        return None
    code = ord(c)
    if any(low <= code <= high for low, high in _CJK_RANGES):
        return "chinese"
    category = unicodedata.category(c)
    if category == "Nd":
        return "digit"
    if category.startswith("L") and "LATIN" in unicodedata.name(c, ""):
        return "latin"
    return "punct"


@dataclass(frozen=True)
class LineAlignment:
    """A minimal edit alignment of a reference with a hypothesis.

    edits: the Levenshtein distance (insertions, deletions, substitutions cost 1).
    matched: per reference character, whether the alignment pairs it with an equal character.
    read: per reference character, the hypothesis character the alignment pairs it with
        (``""`` where it was dropped).
    """

    edits: int
    matched: tuple[bool, ...]
    read: tuple[str, ...]


def align(reference: str, hypothesis: str) -> LineAlignment:
    """Align ``hypothesis`` to ``reference`` with the fewest edits, and among those the most matches.

    The cost of a path is ``edits * K - matches`` with ``K`` above any number of
    matches, so one dynamic programme minimises edits first and then maximises matches.
    Where several such alignments match different characters, the backtrace (from the
    end) prefers the diagonal (match or substitution), then a deletion, then an insertion.
    """
    if reference == hypothesis:
        return LineAlignment(0, (True,) * len(reference), tuple(reference))
    n, m = len(reference), len(hypothesis)
    k = n + m + 1
    # cost[i][j]: best cost of reference[:i] against hypothesis[:j]
    cost = [[j * k for j in range(m + 1)]]
    for i in range(1, n + 1):
        x, row, above = reference[i - 1], [i * k], cost[i - 1]
        for j in range(1, m + 1):
            diagonal = above[j - 1] + (-1 if x == hypothesis[j - 1] else k)
            row.append(min(diagonal, above[j] + k, row[j - 1] + k))
        cost.append(row)

    matched, read = [False] * n, [""] * n
    edits, i, j = 0, n, m
    while i or j:
        if i and j:
            same = reference[i - 1] == hypothesis[j - 1]
            if cost[i][j] == cost[i - 1][j - 1] + (-1 if same else k):
                matched[i - 1], read[i - 1] = same, hypothesis[j - 1]
                edits += not same
                i, j = i - 1, j - 1
                continue
        if i and cost[i][j] == cost[i - 1][j] + k:  # reference[i - 1] deleted
            i -= 1
        else:  # hypothesis[j - 1] inserted
            j -= 1
        edits += 1
    return LineAlignment(edits, tuple(matched), tuple(read))


@dataclass
class TypeScore:
    """Reference characters of one type (``chars``) and how many of them were matched (``correct``)."""

    chars: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float | None:
        """``correct / chars``; None without characters."""
        return self.correct / self.chars if self.chars else None


@dataclass
class GroupScore:
    """Lines of one group: how many, how many exact, their edits and reference characters."""

    lines: int = 0
    exact: int = 0
    edits: int = 0
    chars: int = 0

    def add(self, reference: str, hypothesis: str, alignment: LineAlignment) -> None:
        self.lines += 1
        self.exact += reference == hypothesis
        self.edits += alignment.edits
        self.chars += len(reference)

    @property
    def line_acc(self) -> float:
        return self.exact / self.lines if self.lines else 0.0

    @property
    def cer(self) -> float:
        """Edits over reference characters (an OCR reference is never empty; 0 characters count as 1)."""
        return self.edits / max(self.chars, 1)


@dataclass
class Breakdown:
    """Scores per reference character type (every one of :data:`CHAR_TYPES`) and per group, and the
    misreadings: ``confusions[(reference char, read as)]`` counts, ``""`` for a dropped character;
    ``line_edits[i]``: the edits of pair ``i``."""

    char_types: dict[str, TypeScore] = field(default_factory=lambda: {t: TypeScore() for t in CHAR_TYPES})
    groups: dict[str, GroupScore] = field(default_factory=dict)
    confusions: Counter = field(default_factory=Counter)
    line_edits: list[int] = field(default_factory=list)

    def metrics(self, prefix: str = "test", group_key: str = "by_font") -> dict[str, float]:
        """Flat metrics: ``{prefix}/char_acc/{type}`` (types with characters only),
        ``{prefix}/char_count/{type}`` and ``{prefix}/{group_key}/{group}/{line_acc,cer,lines}``
        (a ``/`` in a group name becomes ``_``)."""
        out: dict[str, float] = {}
        for name, score in self.char_types.items():
            out[f"{prefix}/char_count/{name}"] = score.chars
            if score.accuracy is not None:
                out[f"{prefix}/char_acc/{name}"] = score.accuracy
        for group, score in self.groups.items():
            base = f"{prefix}/{group_key}/{group.replace('/', '_')}"
            out.update({f"{base}/line_acc": score.line_acc, f"{base}/cer": score.cer, f"{base}/lines": score.lines})
        return out

    def table(self, group_title: str = "font", misreadings: int = 10) -> str:
        """The breakdown as Markdown tables: character types, the groups (if any) by name, then the
        ``misreadings`` most frequent misreadings (if any)."""
        rows = [[name, str(s.chars), fmt(s.accuracy)] for name, s in self.char_types.items()]
        out = markdown_rows(["char type", "ref chars", "char acc"], rows)
        if self.groups:
            rows = [[name, str(s.lines), fmt(s.line_acc), fmt(s.cer)] for name, s in sorted(self.groups.items())]
            out += ["", *markdown_rows([group_title, "lines", "line_acc", "cer"], rows)]
        if self.confusions and misreadings > 0:
            rows = [[repr(ref), repr(read) if read else "(dropped)", str(count)]
                    for (ref, read), count in self.confusions.most_common(misreadings)]
            out += ["", *markdown_rows(["reference", "read as", "times"], rows)]
        return "\n".join(out)


def ocr_breakdown(pairs: Iterable[tuple[str, str]], groups: Sequence[str] | None = None) -> Breakdown:
    """The :class:`Breakdown` of ``(reference, hypothesis)`` pairs; ``groups[i]`` labels pair ``i``
    (None: no groups).

    Raises:
        ValueError: ``groups`` is not one label per pair.
    """
    pairs = list(pairs)
    if groups is not None and len(groups) != len(pairs):
        raise ValueError(f"{len(groups)} group labels for {len(pairs)} lines")
    result = Breakdown()
    for index, (reference, hypothesis) in enumerate(pairs):
        alignment = align(reference, hypothesis)
        result.line_edits.append(alignment.edits)
        for c, ok, read in zip(reference, alignment.matched, alignment.read):
            kind = char_type(c)
            if kind is not None:
                result.char_types[kind].chars += 1
                result.char_types[kind].correct += ok
            if not ok:
                result.confusions[c, read] += 1
        if groups is not None:
            result.groups.setdefault(groups[index], GroupScore()).add(reference, hypothesis, alignment)
    return result
