"""IDX reader/writer: round trips and every kind of broken file."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from seq2seq_lab.data.mnist.idx import IDXError, read_idx, write_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_images_and_labels(tmp_path, suffix):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(7,), dtype=np.uint8)
    ip = write_idx(tmp_path / f"img-idx3-ubyte{suffix}", images)
    lp = write_idx(tmp_path / f"lab-idx1-ubyte{suffix}", labels)
    if suffix:
        assert ip.read_bytes()[:2] == b"\x1f\x8b"
    else:
        assert ip.read_bytes()[:4] == bytes([0, 0, 0x08, 3])
    got_i, got_l = read_idx(ip), read_idx(lp)
    assert got_i.dtype == np.uint8 and got_i.shape == (7, 28, 28)
    np.testing.assert_array_equal(got_i, images)
    np.testing.assert_array_equal(got_l, labels)
    assert got_i.flags.writeable


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip_other_dtypes(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    got = read_idx(write_idx(tmp_path / "x.idx", arr))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="int64"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.int64))


def _raw(tmp_path, name, data: bytes, gz: bool = False):
    path = tmp_path / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _header(code: int, *dims: int) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated(tmp_path, gz):
    path = _raw(tmp_path, "train-images-idx3-ubyte", _header(0x08, 60000, 28, 28) + bytes(1000), gz)
    with pytest.raises(IDXError) as exc:
        read_idx(path)
    msg = str(exc.value)
    assert str(path) in msg
    assert "truncated: header says 60000x28x28 = 47040000 bytes of data, file has 1000" in msg


@pytest.mark.parametrize("gz", [False, True])
def test_trailing_garbage(tmp_path, gz):
    path = _raw(tmp_path, "labels-idx1-ubyte", _header(0x08, 5) + bytes(8), gz)
    with pytest.raises(IDXError, match="trailing garbage") as exc:
        read_idx(path)
    assert "labels-idx1-ubyte" in str(exc.value) and "3 extra bytes" in str(exc.value)


def test_bad_magic(tmp_path):
    path = _raw(tmp_path, "bad-idx", bytes.fromhex("12345678") + bytes(16))
    with pytest.raises(IDXError) as exc:
        read_idx(path)
    assert str(path) in str(exc.value)
    assert "bad magic number 0x12345678 (expected 0x0000080N)" in str(exc.value)


def test_unknown_dtype_code(tmp_path):
    path = _raw(tmp_path, "odd-idx", _header(0x0A, 2) + bytes(2))
    with pytest.raises(IDXError, match=r"unknown data type code 0x0A") as exc:
        read_idx(path)
    assert "odd-idx" in str(exc.value)


@pytest.mark.parametrize("data", [b"", b"\x00\x00", _header(0x08, 3, 4)[:9]])
def test_short_header(tmp_path, data):
    path = _raw(tmp_path, "short-idx", data)
    with pytest.raises(IDXError, match="short-idx"):
        read_idx(path)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[: len(b) // 2],  # cut short: EOFError inside gzip
        lambda b: b[:10] + bytes(len(b) - 10),  # zeroed deflate stream: zlib.error
        lambda b: b"\x1f\x8b\x08" + b"junk" * 5,  # gzip magic then garbage
        lambda b: b"this is not gzip at all",  # .gz name without gzip magic
        lambda b: b[:-8] + b"\xff" * 8,  # bad CRC/size trailer
    ],
)
def test_corrupt_gzip(tmp_path, mangle):
    good = gzip.compress(_header(0x08, 100) + bytes(range(100)))
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(mangle(good))
    with pytest.raises(IDXError, match="corrupt gzip stream") as exc:
        read_idx(path)
    assert str(path) in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(IDXError, match="cannot read file"):
        read_idx(tmp_path / "nope-idx1-ubyte")
