"""MNIST location/verification/DataModule and the batch-serving dataset, on tiny fake files."""

from __future__ import annotations

import gzip
import hashlib
import io
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from seq2seq_lab.data.mnist import module as mnist
from seq2seq_lab.data.batching import TensorBatchDataset, collate_batch, make_loader
from seq2seq_lab.data.mnist.idx import write_idx
from seq2seq_lab.data.mnist import (
    MNISTChecksumError,
    MNISTDataError,
    MNISTDataModule,
    MNISTNotFoundError,
    load_mnist,
    locate_mnist,
)
from seq2seq_lab.data.paths import resolve_data_dir

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


pytestmark = pytest.mark.usefixtures("offline")


def fake_mnist(root, n_train=60, n_test=20, sub="mnist", dotted=False, gz=True, hw=(28, 28)):
    """Write tiny MNIST-like files; return {canonical name: array}."""
    rng = np.random.default_rng(123)
    arrays = {
        NAMES[0]: rng.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        NAMES[1]: (np.arange(n_train) % 10).astype(np.uint8),
        NAMES[2]: rng.integers(0, 256, (n_test, *hw), dtype=np.uint8),
        NAMES[3]: (np.arange(n_test) % 10).astype(np.uint8),
    }
    d = root / sub if sub else root
    for name, arr in arrays.items():
        fname = name.replace("-idx", ".idx") if dotted else name
        write_idx(d / (fname + (".gz" if gz else "")), arr)
    return arrays


# ---------------------------------------------------------------- locating and loading


@pytest.mark.parametrize("dotted", [False, True])
@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sub", ["mnist", ""])
def test_both_namings_found(tmp_path, dotted, gz, sub):
    arrays = fake_mnist(tmp_path, dotted=dotted, gz=gz, sub=sub)
    paths = locate_mnist(tmp_path, download=False)
    assert set(paths) == set(NAMES)
    images, labels = load_mnist(tmp_path, "train", download=False)
    np.testing.assert_array_equal(images, arrays[NAMES[0]])
    assert labels.dtype == np.int64 and labels.shape == (60,)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(MNISTNotFoundError) as exc:
        locate_mnist(tmp_path, download=False)
    msg = str(exc.value)
    assert isinstance(exc.value, FileNotFoundError)
    assert str(tmp_path / "mnist") in msg and str(tmp_path) in msg
    for name in NAMES:
        assert name in msg
    assert "train-images.idx3-ubyte" in msg
    assert "set S2S_DATA_DIR or data.data_dir" in msg


def test_failed_download_is_one_clear_error(tmp_path):
    with pytest.raises(MNISTNotFoundError, match="download failed.*network disabled") as exc:
        locate_mnist(tmp_path, download=True)
    assert "S2S_DATA_DIR" in str(exc.value)
    assert not list((tmp_path / "mnist").iterdir())  # no partial files left behind


def test_download_writes_verified_file(tmp_path, monkeypatch):
    labels = (np.arange(20) % 10).astype(np.uint8)
    raw = bytes([0, 0, 8, 1]) + (20).to_bytes(4, "big") + labels.tobytes()
    monkeypatch.setitem(mnist.OFFICIAL, NAMES[3], (20, hashlib.md5(raw).hexdigest()))
    urls = []

    def fake_urlopen(url, timeout=None):
        urls.append(url)
        if len(urls) == 1:  # first mirror is down
            raise urllib.error.URLError("mirror down")
        return io.BytesIO(gzip.compress(raw))

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    fake_mnist(tmp_path)
    (tmp_path / "mnist" / f"{NAMES[3]}.gz").unlink()
    paths = locate_mnist(tmp_path, download=True)
    assert paths[NAMES[3]] == tmp_path / "mnist" / f"{NAMES[3]}.gz"
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"{NAMES[3]}.gz"] * 2
    np.testing.assert_array_equal(load_mnist(tmp_path, "test", download=False)[1], labels)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(n + ".gz" for n in NAMES)


def test_count_mismatch_names_both_files(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(59, dtype=np.uint8))
    with pytest.raises(MNISTDataError) as exc:
        load_mnist(tmp_path, "train", download=False)
    msg = str(exc.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert "60 images" in msg and "59 labels" in msg


def test_label_out_of_range(tmp_path):
    fake_mnist(tmp_path)
    labels = np.zeros(20, dtype=np.uint8)
    labels[3] = 12
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", labels)
    with pytest.raises(MNISTDataError, match=r"t10k-labels-idx1-ubyte.*0\.\.9.*\[12\]"):
        load_mnist(tmp_path, "test", download=False)


def test_images_must_be_3d(tmp_path):
    fake_mnist(tmp_path)
    write_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz", np.zeros((20, 784), dtype=np.uint8))
    with pytest.raises(MNISTDataError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, "test", download=False)


def test_checksum_rejects_official_size_file(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    monkeypatch.setitem(mnist.OFFICIAL, NAMES[2], (20, "0" * 32))
    with pytest.raises(MNISTChecksumError) as exc:
        load_mnist(tmp_path, "test", download=False)
    msg = str(exc.value)
    path = tmp_path / "mnist" / f"{NAMES[2]}.gz"
    actual = hashlib.md5(gzip.decompress(path.read_bytes())).hexdigest()
    assert str(path) in msg and "0" * 32 in msg and actual in msg
    # The right checksum passes; a non-official size is not checked at all.
    monkeypatch.setitem(mnist.OFFICIAL, NAMES[2], (20, actual))
    load_mnist(tmp_path, "test", download=False)
    monkeypatch.setitem(mnist.OFFICIAL, NAMES[2], (21, "0" * 32))
    load_mnist(tmp_path, "test", download=False)


def test_data_dir_env_override(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    assert resolve_data_dir("~/x") == (resolve_data_dir("~") / "x")
    assert resolve_data_dir("rel").is_absolute()
    monkeypatch.setenv("S2S_DATA_DIR", "")
    assert resolve_data_dir(str(tmp_path / "a")) == tmp_path / "a"
    monkeypatch.setenv("S2S_DATA_DIR", str(tmp_path))
    assert resolve_data_dir("/nonexistent") == tmp_path
    dm = MNISTDataModule("/nonexistent", val_size=10, download=False)
    dm.setup("test")
    assert len(dm.test_dataset) == 20


# ---------------------------------------------------------------- DataModule


def make_dm(root, **kw):
    kw = {"batch_size": 8, "val_size": 10, "download": False} | kw
    return MNISTDataModule(str(root), **kw)


def test_datamodule_batches_and_views(tmp_path):
    arrays = fake_mnist(tmp_path)
    rows, cols = make_dm(tmp_path), make_dm(tmp_path, view="columns")
    rows.prepare_data()
    rows.setup("fit")
    cols.setup("fit")
    assert (rows.input_length, rows.input_dim, rows.num_classes) == (28, 28, 10)
    assert (len(rows.train_dataset), len(rows.val_dataset), rows.test_dataset) == (50, 10, None)
    batch = next(iter(rows.train_dataloader()))
    assert batch["inputs"].shape == (8, 28, 28) and batch["inputs"].dtype == torch.float32
    assert batch["input_lengths"].dtype == torch.long and batch["input_lengths"].tolist() == [28] * 8
    assert batch["targets"].dtype == torch.long and batch["targets"].shape == (8,)
    x_rows, x_cols = rows.train_dataset.tensors["inputs"], cols.train_dataset.tensors["inputs"]
    assert torch.equal(x_cols, x_rows.transpose(1, 2))
    idx = rows.train_indices.numpy()
    expected = torch.from_numpy(arrays[NAMES[0]][idx]).float() / 255
    assert torch.equal(x_rows, expected) and 0 <= x_rows.min() and x_rows.max() <= 1
    assert torch.equal(rows.train_dataset.tensors["targets"], torch.from_numpy(idx % 10))
    val = list(rows.val_dataloader())
    assert [len(b["targets"]) for b in val] == [8, 2]
    rows.setup("test")
    assert [len(b["targets"]) for b in rows.test_dataloader()] == [8, 8, 4]


def test_non_square_images_and_no_normalize(tmp_path):
    fake_mnist(tmp_path, hw=(5, 7))
    dm = make_dm(tmp_path, view="columns", normalize=False)
    dm.setup("fit")
    assert (dm.input_length, dm.input_dim) == (7, 5)
    x = next(iter(dm.val_dataloader()))["inputs"]
    assert x.shape == (8, 7, 5) and x.max() > 1


def test_split_is_seeded(tmp_path):
    fake_mnist(tmp_path)
    a, b, c = make_dm(tmp_path, seed=1), make_dm(tmp_path, seed=1), make_dm(tmp_path, seed=2)
    for dm in (a, b, c):
        dm.setup("fit")
    assert torch.equal(a.val_indices, b.val_indices) and torch.equal(a.train_indices, b.train_indices)
    assert not torch.equal(a.val_indices, c.val_indices)
    assert sorted(torch.cat([a.train_indices, a.val_indices]).tolist()) == list(range(60))
    order = lambda dm: torch.cat([x["targets"] for x in dm.train_dataloader()])  # noqa: E731
    assert torch.equal(order(a), order(b))


def test_train_subset(tmp_path):
    fake_mnist(tmp_path)
    full, sub = make_dm(tmp_path), make_dm(tmp_path, train_subset=7)
    full.setup("fit")
    sub.setup("fit")
    assert len(sub.train_dataset) == 7 and len(sub.val_dataset) == 10
    assert torch.equal(sub.train_indices, full.train_indices[:7])
    assert torch.equal(sub.val_indices, full.val_indices)


def test_setup_does_not_reload(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    dm = make_dm(tmp_path)
    dm.setup("fit")
    monkeypatch.setattr(mnist, "load_mnist", lambda *a, **k: pytest.fail("reloaded"))
    dm.setup("fit")
    dm.setup("validate")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="'rows', 'columns'"):
        make_dm(tmp_path, view="diagonal")
    fake_mnist(tmp_path)
    with pytest.raises(ValueError, match="val_size"):
        make_dm(tmp_path, val_size=60).setup("fit")


# ---------------------------------------------------------------- TensorBatchDataset


@pytest.mark.parametrize("num_workers", [0, 1])
def test_tensor_batch_loader(num_workers):
    n = 23
    ds = TensorBatchDataset({"x": torch.arange(n * 3).view(n, 3), "y": torch.arange(n) * 10})
    assert len(ds) == n and ds[4]["y"] == 40 and ds[4]["x"].tolist() == [12, 13, 14]
    batches = list(make_loader(ds, 5, shuffle=False, num_workers=num_workers))
    assert [b["x"].shape for b in batches] == [(5, 3)] * 4 + [(3, 3)]
    assert torch.equal(torch.cat([b["y"] for b in batches]), ds.tensors["y"])
    shuffled = list(make_loader(ds, 5, shuffle=True, num_workers=num_workers, seed=0, drop_last=True))
    assert len(shuffled) == 4
    ys = torch.cat([b["y"] for b in shuffled])
    assert len(set(ys.tolist())) == 20 and not torch.equal(ys, ds.tensors["y"][:20])
    for b in shuffled:  # every row still belongs to its label
        assert torch.equal(b["x"][:, 0], b["y"] // 10 * 3)
    again = torch.cat([b["y"] for b in make_loader(ds, 5, True, num_workers, seed=0, drop_last=True)])
    assert torch.equal(ys, again)


def test_tensor_batch_dataset_checks():
    with pytest.raises(ValueError, match="first dimension"):
        TensorBatchDataset({"a": torch.zeros(3), "b": torch.zeros(4)})
    assert collate_batch([{"a": torch.tensor(1)}, {"a": torch.tensor(2)}])["a"].tolist() == [1, 2]


def test_the_contract_sizes_the_model_from_the_idx_header_before_any_image_is_read(tmp_path, monkeypatch):
    """IDX files of 20 x 24 images: the model is built for 20 steps of 24 features, not MNIST's 28 x 28."""
    monkeypatch.delenv("S2S_DATA_DIR", raising=False)
    import numpy as np

    from seq2seq_lab.data.mnist.idx import write_idx
    from seq2seq_lab.data.mnist.module import MNISTDataModule

    root = tmp_path / "mnist"
    root.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("t10k", 10)):
        write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 20, 24)).astype(np.uint8))
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n).astype(np.uint8))
    rows = MNISTDataModule(data_dir=tmp_path, download=False, val_size=10)
    assert (rows.contract.task, rows.contract.input_length, rows.contract.input_dim) == ("classify", 20, 24)
    assert rows.train_dataset is None  # nothing loaded yet
    columns = MNISTDataModule(data_dir=tmp_path, download=False, view="columns", val_size=10)
    assert (columns.contract.input_length, columns.contract.input_dim) == (24, 20)
    rows.setup("fit")
    assert tuple(rows.train_dataset.tensors["inputs"].shape[1:]) == (20, 24)
