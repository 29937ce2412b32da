"""Text-line OCR samples: the list-file reader and the text-level checks.

A *source* is an iterable of :class:`Sample`; :class:`ListFileSource` reads
list files and ``lmdb_io.LMDBSource`` reads LMDB databases. :func:`index_samples`
runs the checks that need no image decoding (charset, empty label, length,
duplicates, missing file) over one or more sources and applies the policy.

List-file format, one sample per line, with the label as text::

    images/000001.jpg 你好世界
    images/000002.jpg hello world

or as charset line numbers (the *index* form of the Synthetic Chinese String
Dataset: ``k`` names line ``k``, 1-based, of the charset file)::

    22240671_1034114836.jpg 35 50 27 45 637 1543 210 10 431 426

* the image path is relative to the list file's directory, or to ``image_dir`` when
  given (absolute paths work too); when the first image is not there but is in an
  ``images/`` directory beside the list file (the classic corpus's layout: bare file
  names in ``data_test.txt``, the files in ``images/``), that directory is the root;
  a path cannot contain a space or a tab;
* the label is the rest of the line after the first space or tab, kept as is
  (it may contain spaces); only the line ending is stripped;
* blank lines are skipped; a line without a label is an ``empty_label`` problem;
* ``label_format`` picks the form: ``"text"``, ``"index"``, or ``"auto"`` (the
  default), which decides per file, see :func:`detect_label_format`. An index
  label is split on whitespace; its text is the characters of those lines, and
  the sample keeps the line numbers (``Sample.lines``), so a character that the
  charset repeats keeps the id of the line the label names. An index that is
  not an integer in ``1..len(charset lines)`` in an index-form file is a
  :class:`BadSampleError` naming the file and line (whatever ``on_bad_sample``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

from seq2seq_lab.data.charset import read_utf8
from seq2seq_lab.errors import LabError

__all__ = ["LABEL_FORMATS", "PROBLEMS", "BadSampleError", "FileImage", "ListFileSource", "MissingSourceError",
           "Sample", "detect_label_format", "index_samples"]

log = logging.getLogger(__name__)

LABEL_FORMATS = ("auto", "text", "index")  # how a list file writes its labels
_INDEX_TOKEN = re.compile(r"[0-9]+")

# every per-sample problem, in the order they are checked
PROBLEMS = ("empty_label", "unknown_char", "too_long", "duplicate", "missing_image", "bad_image")


class BadSampleError(LabError, ValueError):
    """A sample (or a whole source) is unusable; the message names the file and line or key."""


class MissingSourceError(LabError, FileNotFoundError):
    """A list file or LMDB directory that a split names does not exist."""


class Sample(NamedTuple):
    """One text-line sample.

    key: identity for duplicate detection (normalised image path, or LMDB path + key).
    load: picklable zero-argument callable returning the encoded image bytes; it
        also has ``exists() -> bool`` (cheap, no decoding) and ``name`` (for messages).
    label: the text.
    origin: ``"file:line"`` or ``"<lmdb path>:image-000000012"``, for messages.
    note: why ``label`` is empty, when the reader knows (e.g. "no label after the image path").
    lines: for an index-form label, its 1-based charset line numbers (``len(label)`` of
        them), which the targets use instead of encoding ``label``; else empty.
    """

    key: str
    load: Callable[[], bytes]
    label: str
    origin: str
    note: str = ""
    lines: tuple[int, ...] = ()


class FileImage:
    """Loader of an image file: ``FileImage(path)()`` returns its bytes."""

    __slots__ = ("path",)

    def __init__(self, path: str):
        self.path = path

    @property
    def name(self) -> str:
        return self.path

    def exists(self) -> bool:
        return os.path.isfile(self.path)

    def __call__(self) -> bytes:
        with open(self.path, "rb") as fh:
            return fh.read()

    def __getstate__(self) -> str:
        return self.path

    def __setstate__(self, state: str) -> None:
        self.path = state

    def __repr__(self) -> str:
        return f"FileImage({self.path!r})"


def _index_label(label: str, num_lines: int) -> list[int] | None:
    """The line numbers of an index-form label, or None when it is not one (a token that is
    not a decimal integer in ``1..num_lines``)."""
    tokens = label.split()
    if not all(_INDEX_TOKEN.fullmatch(t) for t in tokens):
        return None
    lines = [int(t) for t in tokens]
    return lines if all(1 <= k <= num_lines for k in lines) else None


def detect_label_format(labels: Sequence[str], num_lines: int) -> str:
    """``"index"`` or ``"text"``: the form of a list file's ``labels``.

    Index form needs every non-blank label to be whitespace-separated decimal
    integers within ``1..num_lines`` (the charset's lines) and at least one label
    to have two or more of them. Ambiguity is resolved in favour of text: a file
    whose labels are all one integer (``"img.jpg 42"``) is text, as a label of
    digits is a valid text line; so is a file with no labels or no charset
    (``num_lines == 0``). Set ``label_format`` to overrule.
    """
    labels = [lb for lb in labels if lb.strip()]
    if not labels or num_lines < 1:
        return "text"
    several = False
    for label in labels:
        lines = _index_label(label, num_lines)
        if lines is None:
            return "text"
        several = several or len(lines) > 1
    return "index" if several else "text"


class ListFileSource:
    """Samples of one list file (``relative/path.jpg label`` per line; see the module docstring).

    Args:
        list_path: the list file.
        label_format: ``"auto"``, ``"text"`` or ``"index"``.
        charset_lines: the charset file's lines (one character each), which index
            labels name; without them a file is read as text (``"index"`` is an error).
        charset_name: the charset file, for messages.
        image_dir: the directory image paths are relative to; None: the list file's
            (or its ``images/`` subdirectory, see the module docstring).

    ``form`` is the label form of the last read (``None`` before the first).

    Raises (when iterated):
        FileNotFoundError: the list file is missing.
        BadSampleError: the list file is not UTF-8, or (index form) a label is not
            charset line numbers (names the line).
    """

    def __init__(self, list_path: str | os.PathLike, label_format: str = "auto",
                 charset_lines: Sequence[str] | None = None, charset_name: str = "charset",
                 image_dir: str | os.PathLike | None = None):
        if label_format not in LABEL_FORMATS:
            raise ValueError(f"label_format must be one of {', '.join(map(repr, LABEL_FORMATS))}; "
                             f"got {label_format!r}")
        if label_format == "index" and not charset_lines:
            raise ValueError("label_format='index' needs the charset lines")
        self.path = os.fspath(list_path)
        self.root = os.path.dirname(os.path.abspath(self.path))
        self.image_dir = os.fspath(image_dir) if image_dir else None
        self.label_format = label_format
        self.charset_lines = list(charset_lines or [])
        self.charset_name = charset_name
        self.form: str | None = None

    def __repr__(self) -> str:
        return f"ListFileSource({self.path!r})"

    def _rows(self) -> list[tuple[int, str, str, str]]:
        """``(lineno, image path as written, label, note)`` of each non-blank line (see :class:`Sample`)."""
        text = read_utf8(self.path, BadSampleError, "list file")
        rows = []
        for lineno, line in enumerate(text.split("\n"), start=1):
            if line.endswith("\r"):
                line = line[:-1]
            if not line.strip():
                continue
            cut = min((i for i in (line.find(" "), line.find("\t")) if i >= 0), default=-1)
            rows.append((lineno, line, "", "no label after the image path") if cut < 0
                        else (lineno, line[:cut], line[cut + 1:], ""))
        return rows

    def _choose_form(self, labels: Sequence[str]) -> str:
        """The label form of this read (logged)."""
        if self.label_format != "auto":
            form, how = self.label_format, "label_format"
        else:
            form, how = detect_label_format(labels, len(self.charset_lines)), "detected"
        log.info("%s: labels read as %s (%s)", self.path, form, how)
        return form

    def _lines(self, label: str, origin: str) -> tuple[int, ...]:
        """Charset line numbers of an index-form label; BadSampleError names ``origin`` and the bad index."""
        n = len(self.charset_lines)
        for token in label.split():
            if not _INDEX_TOKEN.fullmatch(token) or not 1 <= int(token) <= n:
                what = "out of range" if _INDEX_TOKEN.fullmatch(token) else "not an integer"
                raise BadSampleError(f"{origin}: index {token!r} in label {label.strip()!r} is {what}: "
                                     f"expected charset lines 1..{n} of {self.charset_name}")
        return tuple(int(t) for t in label.split())

    def _image_root(self, first: str | None) -> str:
        """Where relative image paths start: ``image_dir``, else the list file's directory, else its ``images/``."""
        if self.image_dir:
            return self.image_dir
        beside = os.path.join(self.root, "images")
        if first and not os.path.isabs(first) and not os.path.exists(os.path.join(self.root, first)) \
                and os.path.exists(os.path.join(beside, first)):
            log.info("%s: image paths are relative to %s", self.path, beside)
            return beside
        return self.root

    def __iter__(self) -> Iterator[Sample]:
        rows = self._rows()
        self.form = self._choose_form([row[2] for row in rows])
        root = self._image_root(rows[0][1] if rows else None)
        for lineno, rel, label, note in rows:
            origin = f"{self.path}:{lineno}"
            lines: tuple[int, ...] = ()
            if self.form == "index":
                lines = self._lines(label, origin) if label.strip() else ()
                label = "".join(self.charset_lines[k - 1] for k in lines)
            path = os.path.normpath(os.path.join(root, rel))
            yield Sample(path, FileImage(path), label, origin, note, lines)


def _problem(sample: Sample, charset: frozenset[str], charset_name: str, max_length: int,
             first_origin: dict[str, str], check_chars: bool) -> tuple[str, str] | None:
    """The first text-level problem of ``sample`` as ``(problem, message)``, else None."""
    label, origin = sample.label, sample.origin
    if not label:
        return "empty_label", f"{origin}: empty label" + (f" ({sample.note})" if sample.note else "")
    if check_chars and not charset.issuperset(label):
        bad = [c for c in dict.fromkeys(label) if c not in charset]
        chars = ", ".join(repr(c) for c in bad)
        what = "character" if len(bad) == 1 else "characters"
        return "unknown_char", f"{origin}: label {label!r} has {what} {chars} not in charset {charset_name}"
    if len(label) > max_length:
        return "too_long", f"{origin}: label {label!r} has {len(label)} characters, more than max_length={max_length}"
    first = first_origin.get(sample.key)
    if first is not None:
        return "duplicate", f"{origin}: image {sample.load.name!r} is listed again (first at {first})"
    if not sample.load.exists():
        return "missing_image", f"{origin}: image {sample.load.name!r} not found"
    return None


def index_samples(
    sources: Iterable[Iterable[Sample]],
    charset: Iterable[str],
    max_length: int,
    on_bad_sample: str = "error",
    on_unknown_char: str | None = None,
    charset_name: str = "charset",
) -> tuple[list[Sample], dict[str, int]]:
    """Read every sample of ``sources`` and apply the bad-sample policy.

    No image is opened: images that exist but cannot be decoded are found later,
    by the dataset. A source with zero samples is always an error.

    Args:
        sources: list-file / LMDB sources (each an iterable of :class:`Sample`).
        charset: the allowed characters.
        max_length: longest allowed label, in characters.
        on_bad_sample: ``"error"`` or ``"skip"``, for every problem.
        on_unknown_char: ``"error"``, ``"skip"`` or ``"unk"`` (keep the label; the
            tokenizer maps the characters to UNK); ``None`` follows ``on_bad_sample``.
        charset_name: the charset file, for messages.

    Returns:
        the good samples in source order, and problem -> number skipped (only problems that occurred).

    Raises:
        BadSampleError: a problem under the ``"error"`` policy, or an empty source.
    """
    char_policy = on_unknown_char or on_bad_sample
    allowed = frozenset(charset)
    kept: list[Sample] = []
    skipped: dict[str, int] = {}
    first_origin: dict[str, str] = {}
    for source in sources:
        count = 0
        for sample in source:
            count += 1
            found = _problem(sample, allowed, charset_name, max_length, first_origin, char_policy != "unk")
            first_origin.setdefault(sample.key, sample.origin)
            if found is None:
                kept.append(sample)
                continue
            problem, message = found
            policy = char_policy if problem == "unknown_char" else on_bad_sample
            if policy == "error":
                raise BadSampleError(message)
            skipped[problem] = skipped.get(problem, 0) + 1
        if count == 0:
            raise BadSampleError(f"{getattr(source, 'path', source)}: no samples (empty list file or database)")
    return kept, skipped
