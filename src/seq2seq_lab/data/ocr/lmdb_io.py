"""LMDB text-line databases in the scene-text layout.

Keys (all ASCII), 1-based::

    num-samples        b"40"            number of samples, decimal
    image-000000001    encoded image bytes (JPEG, PNG, ...)
    label-000000001    UTF-8 label

Readers open the environment read-only (``lock=False, readonly=True,
readahead=False``), lazily and once per process: DataLoader workers fork, and
an LMDB environment must not be used across processes (nor opened twice in one,
py-lmdb refuses), so :func:`open_env` keeps one env per path per process and
readers only hold the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import lmdb

from seq2seq_lab.data.ocr.sources import Sample
from seq2seq_lab.errors import LabError

__all__ = ["LMDBFormatError", "LMDBImage", "LMDBReader", "LMDBSource", "close_env", "is_lmdb_dir", "open_env",
           "write_lmdb"]

NUM_KEY = b"num-samples"
_INITIAL_MAP_SIZE = 64 << 20  # grows by doubling when full
_TXN_SAMPLES = 1000


class LMDBFormatError(LabError, ValueError):
    """An LMDB database lacks the scene-text layout."""


def image_key(i: int) -> bytes:
    return b"image-%09d" % i


def label_key(i: int) -> bytes:
    return b"label-%09d" % i


def is_lmdb_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a directory holding an LMDB ``data.mdb``."""
    return os.path.isfile(os.path.join(path, "data.mdb"))


# path -> (pid that opened it, env). py-lmdb refuses to open one database twice in a
# process, so every reader and source of a process shares this env.
_ENVS: dict[str, tuple[int, lmdb.Environment]] = {}


def open_env(path: str) -> lmdb.Environment:
    """This process's read-only environment on ``path``, opened on first use.

    A forked child inherits the parent's entry; it closes its copy (that does not
    affect the parent) and opens its own.

    Raises:
        FileNotFoundError: no ``data.mdb`` under ``path``.
        LMDBFormatError: ``data.mdb`` is not a readable LMDB database.
    """
    key = os.path.realpath(path)
    entry = _ENVS.get(key)
    if entry is not None:
        pid, env = entry
        if pid == os.getpid():
            return env
        env.close()
    if not is_lmdb_dir(path):
        raise FileNotFoundError(f"{path}: not an LMDB directory (no data.mdb)")
    try:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as err:  # InvalidError, CorruptedError, ... : a damaged or foreign data.mdb
        raise LMDBFormatError(f"{path}: cannot open the LMDB database ({type(err).__name__}: {err})") from None
    _ENVS[key] = (os.getpid(), env)
    return env


def close_env(path: str) -> None:
    """Close this process's environment on ``path``, if open (e.g. before rewriting it)."""
    entry = _ENVS.pop(os.path.realpath(path), None)
    if entry is not None and entry[0] == os.getpid():
        entry[1].close()


class LMDBReader:
    """Picklable reader of one database; ``get(key)`` returns the value bytes or ``None``.

    The environment is looked up per call in the per-process table, so a copy of
    the reader in a DataLoader worker (forked or unpickled) opens its own.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def get(self, key: bytes) -> bytes | None:
        with open_env(self.path).begin() as txn:
            return txn.get(key)

    def __repr__(self) -> str:
        return f"LMDBReader({self.path!r})"


class LMDBImage:
    """Loader of one image in a database; ``present`` was checked at index time."""

    __slots__ = ("reader", "key", "present")

    def __init__(self, reader: LMDBReader, key: bytes, present: bool):
        self.reader, self.key, self.present = reader, key, present

    @property
    def name(self) -> str:
        return f"{self.reader.path}:{self.key.decode()}"

    def exists(self) -> bool:
        return self.present

    def __call__(self) -> bytes:
        data = self.reader.get(self.key)
        if data is None:
            raise FileNotFoundError(f"{self.name}: key not in the database")
        return data

    def __getstate__(self) -> tuple:
        return self.reader, self.key, self.present

    def __setstate__(self, state: tuple) -> None:
        self.reader, self.key, self.present = state


class LMDBSource:
    """Samples of one LMDB database, with the same interface as ``ListFileSource``.

    Iterating reads ``num-samples`` and every label in one read transaction and
    checks that each image key is present (without copying the image). Loaders
    share one :class:`LMDBReader`.

    Raises (when iterated):
        FileNotFoundError: no ``data.mdb`` under ``path``.
        LMDBFormatError: ``num-samples`` is missing or not an integer.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.reader = LMDBReader(self.path)

    def __repr__(self) -> str:
        return f"LMDBSource({self.path!r})"

    def __iter__(self) -> Iterator[Sample]:
        with open_env(self.path).begin(buffers=True) as txn:
            raw = txn.get(NUM_KEY)
            if raw is None:
                raise LMDBFormatError(
                    f"{self.path}: LMDB has no 'num-samples' key; expected the scene-text layout "
                    "(num-samples, image-%09d, label-%09d, 1-based)"
                )
            try:
                n = int(bytes(raw).decode("ascii").strip())
            except ValueError:
                raise LMDBFormatError(f"{self.path}: 'num-samples' is not an integer: {bytes(raw)[:40]!r}") from None
            for i in range(1, n + 1):
                ikey = image_key(i)
                origin = f"{self.path}:{ikey.decode()}"
                raw_label = txn.get(label_key(i))
                label, note = "", ""
                if raw_label is None:
                    note = f"no {label_key(i).decode()} key"
                else:
                    try:
                        label = bytes(raw_label).decode("utf-8")
                    except UnicodeDecodeError:
                        note = f"{label_key(i).decode()} is not valid UTF-8"
                present = txn.get(ikey) is not None
                yield Sample(origin, LMDBImage(self.reader, ikey, present), label, origin, note)


def write_lmdb(path: str | os.PathLike, samples: Iterable[tuple[bytes, str]], overwrite: bool = False) -> int:
    """Write ``(image_bytes, label)`` pairs as a scene-text LMDB database.

    Args:
        path: directory to create (it gets ``data.mdb`` and ``lock.mdb``).
        samples: encoded image bytes (as stored in an image file) and the label text.
        overwrite: replace an existing database at ``path``.

    Returns:
        the number of samples written.

    Raises:
        FileExistsError: ``path`` holds a database and ``overwrite`` is False.
        TypeError: an image is not bytes or a label not str.
    """
    path = os.fspath(path)
    close_env(path)
    if is_lmdb_dir(path):
        if not overwrite:
            raise FileExistsError(f"{path}: an LMDB database exists (pass overwrite=True to replace it)")
        for name in ("data.mdb", "lock.mdb"):
            if os.path.exists(os.path.join(path, name)):
                os.remove(os.path.join(path, name))
    os.makedirs(path, exist_ok=True)
    env = lmdb.open(path, map_size=_INITIAL_MAP_SIZE, subdir=True, meminit=False)
    count = 0
    try:
        chunk: list[tuple[bytes, bytes]] = []

        def flush() -> None:
            while True:
                try:
                    with env.begin(write=True) as txn:
                        for k, v in chunk:
                            txn.put(k, v)
                    break
                except lmdb.MapFullError:  # the aborted transaction wrote nothing; grow and redo it
                    env.set_mapsize(env.info()["map_size"] * 2)
            chunk.clear()

        for image, label in samples:
            if not isinstance(image, (bytes, bytearray, memoryview)):
                raise TypeError(f"sample {count + 1}: image must be bytes, got {type(image).__name__}")
            if not isinstance(label, str):
                raise TypeError(f"sample {count + 1}: label must be str, got {type(label).__name__}")
            count += 1
            chunk += [(image_key(count), bytes(image)), (label_key(count), label.encode("utf-8"))]
            if len(chunk) >= 2 * _TXN_SAMPLES:
                flush()
        chunk.append((NUM_KEY, str(count).encode("ascii")))
        flush()
    finally:
        env.close()
    return count

