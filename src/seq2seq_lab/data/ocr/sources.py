"""Text-line OCR samples: the list-file reader and the text-level checks.

A *source* is an iterable of :class:`Sample`; :class:`ListFileSource` reads
list files and ``lmdb_io.LMDBSource`` reads LMDB databases. :func:`index_samples`
runs the checks that need no image decoding (charset, empty label, length,
duplicates, missing file) over one or more sources and applies the policy.

List-file format, one sample per line::

    images/000001.jpg 你好世界
    images/000002.jpg hello world

* the image path is relative to the list file's directory (absolute paths work
  too); it cannot contain a space or a tab;
* the label is the rest of the line after the first space or tab, kept as is
  (it may contain spaces); only the line ending is stripped;
* blank lines are skipped; a line without a label is an ``empty_label`` problem;
* labels are text. The variant that stores labels as space-separated charset
  indices is not supported (its digits would be read as characters).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from seq2seq_lab.data.charset import read_utf8
from seq2seq_lab.errors import LabError

__all__ = ["PROBLEMS", "BadSampleError", "FileImage", "ListFileSource", "MissingSourceError", "Sample", "index_samples"]

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
    """

    key: str
    load: Callable[[], bytes]
    label: str
    origin: str
    note: str = ""


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


class ListFileSource:
    """Samples of one list file (``relative/path.jpg label`` per line).

    Raises (when iterated):
        FileNotFoundError: the list file is missing.
        BadSampleError: the list file is not UTF-8 (names the line).
    """

    def __init__(self, list_path: str | os.PathLike):
        self.path = os.fspath(list_path)
        self.root = os.path.dirname(os.path.abspath(self.path))

    def __repr__(self) -> str:
        return f"ListFileSource({self.path!r})"

    def __iter__(self) -> Iterator[Sample]:
        text = read_utf8(self.path, BadSampleError, "list file")
        root = self.root
        for lineno, line in enumerate(text.split("\n"), start=1):
            if line.endswith("\r"):
                line = line[:-1]
            if not line.strip():
                continue
            cut = min((i for i in (line.find(" "), line.find("\t")) if i >= 0), default=-1)
            rel, label = (line, "") if cut < 0 else (line[:cut], line[cut + 1:])
            note = "no label after the image path" if cut < 0 else ""
            path = os.path.normpath(os.path.join(root, rel))
            yield Sample(path, FileImage(path), label, f"{self.path}:{lineno}", note)


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
