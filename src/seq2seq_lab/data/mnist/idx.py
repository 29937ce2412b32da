"""Reader and writer for IDX files (the MNIST container format), raw or gzipped.

An IDX file is a 4-byte magic number ``00 00 <dtype code> <ndim>``, then
``ndim`` big-endian uint32 dimension sizes, then the data in big-endian
C order. Every problem with a file is reported as :class:`IDXError`, whose
message starts with the file path and says in plain words what is wrong.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np

from seq2seq_lab.errors import LabError

__all__ = ["IDXError", "read_idx", "write_idx", "read_idx_bytes", "parse_idx", "parse_idx_header"]

# dtype code -> (name, big-endian numpy dtype)
IDX_DTYPES: dict[int, tuple[str, np.dtype]] = {
    0x08: ("ubyte", np.dtype(">u1")),
    0x09: ("byte", np.dtype(">i1")),
    0x0B: ("short", np.dtype(">i2")),
    0x0C: ("int", np.dtype(">i4")),
    0x0D: ("float", np.dtype(">f4")),
    0x0E: ("double", np.dtype(">f8")),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, (_, dt) in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(LabError, ValueError):
    """An IDX file is unreadable, corrupt, or malformed. The message names the file."""


def _known_codes() -> str:
    return ", ".join(f"0x{c:02X} {name}" for c, (name, _) in IDX_DTYPES.items())


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """Return the (decompressed) bytes of an IDX file.

    The file is decompressed when its name ends in ``.gz`` or it starts with
    the gzip magic bytes (an IDX file itself always starts with ``00 00``).
    The whole file is read and decompressed in one go, which is the fastest
    way with the standard library.

    Raises:
        IDXError: the file cannot be read or its gzip stream is corrupt.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise IDXError(f"{path}: cannot read file: {err.strerror or err}") from err
    if path.suffix == ".gz" or raw[:2] == _GZIP_MAGIC:
        if not raw:
            raise IDXError(f"{path}: empty file (expected a gzip stream)")
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
            raise IDXError(f"{path}: corrupt gzip stream ({str(err) or type(err).__name__})") from err
    return raw


def parse_idx_header(buf: bytes, path: str | os.PathLike = "<bytes>") -> tuple[np.dtype, tuple[int, ...], int]:
    """Parse and check an IDX header.

    Returns:
        ``(dtype, shape, header_size)`` where ``dtype`` is the big-endian
        numpy dtype of the data and ``header_size`` the offset of the data.

    Raises:
        IDXError: bad magic number, unknown dtype code, or short header.
    """
    if len(buf) < 4:
        raise IDXError(f"{path}: too short to be an IDX file ({len(buf)} bytes; the magic number alone is 4)")
    magic = int.from_bytes(buf[:4], "big")
    if buf[0] != 0 or buf[1] != 0:
        raise IDXError(f"{path}: bad magic number 0x{magic:08X} (expected 0x0000080N); not an IDX file")
    code, ndim = buf[2], buf[3]
    if code not in IDX_DTYPES:
        raise IDXError(
            f"{path}: bad magic number 0x{magic:08X}: unknown data type code 0x{code:02X} (known: {_known_codes()})"
        )
    if ndim == 0:
        raise IDXError(f"{path}: bad magic number 0x{magic:08X}: number of dimensions is 0")
    header_size = 4 + 4 * ndim
    if len(buf) < header_size:
        raise IDXError(
            f"{path}: truncated header: {ndim} dimensions need {header_size} header bytes, file has {len(buf)}"
        )
    shape = tuple(int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return IDX_DTYPES[code][1], shape, header_size


def parse_idx(buf: bytes, path: str | os.PathLike = "<bytes>") -> np.ndarray:
    """Parse the decompressed bytes of an IDX file into an array.

    Returns:
        A writable array of shape given by the header, native byte order.

    Raises:
        IDXError: malformed header, or data size differs from the header's.
    """
    dtype, shape, offset = parse_idx_header(buf, path)
    count = int(np.prod(shape, dtype=np.int64))
    expected = count * dtype.itemsize
    actual = len(buf) - offset
    if actual != expected:
        what = "truncated" if actual < expected else f"trailing garbage ({actual - expected} extra bytes)"
        dims = "x".join(str(d) for d in shape)
        raise IDXError(f"{path}: {what}: header says {dims} = {expected} bytes of data, file has {actual}")
    data = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)
    # astype copies: the result is writable and in native byte order.
    return data.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw, or gzipped when the name ends in ``.gz``).

    Returns:
        The array, shape as declared in the file header, e.g. ``(N, 28, 28)``
        uint8 for MNIST images, ``(N,)`` uint8 for labels.

    Raises:
        IDXError: the file is unreadable, corrupt, or malformed.
    """
    return parse_idx(read_idx_bytes(path), path)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in ``.gz``.

    Supported dtypes: uint8, int8, int16, int32, float32, float64. The file is
    written to a temporary name and renamed, so readers never see half a file.

    Returns:
        The path written.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODE_OF_KIND.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX code (supported: {_known_codes()})")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx: arrays need 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code][1]).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
