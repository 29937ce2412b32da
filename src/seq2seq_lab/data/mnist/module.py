"""MNIST: find, verify, optionally download, and serve it as sequences.

Files are looked up in ``<data_dir>/mnist/`` and then ``<data_dir>/``, under
either naming (``train-images-idx3-ubyte`` or ``train-images.idx3-ubyte``),
raw or ``.gz``. A file with the official number of items (60000 / 10000) must
match the official MD5 of its decompressed bytes; smaller files (tests,
subsets) are loaded without a checksum.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from seq2seq_lab.data.batching import ResumableDataModule, TensorBatchDataset, make_loader
from seq2seq_lab.data.contract import DataContract
from seq2seq_lab.data.mnist.idx import parse_idx, parse_idx_header, read_idx_bytes
from seq2seq_lab.data.paths import DATA_DIR_ENV, resolve_data_dir
from seq2seq_lab.errors import ConfigError, LabError

log = logging.getLogger(__name__)

__all__ = ["MNISTDataModule", "MNISTNotFoundError", "MNISTDataError", "MNISTChecksumError",
           "locate_mnist", "download_mnist", "read_mnist_file", "load_mnist"]

# canonical name -> (official number of items, md5 of the decompressed file)
OFFICIAL: dict[str, tuple[int, str]] = {
    "train-images-idx3-ubyte": (60000, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (60000, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (10000, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (10000, "27ae3e4e09519cfbb04c329615203637"),
}
# split -> (images file, labels file), canonical names
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
NUM_CLASSES = 10


class MNISTNotFoundError(LabError, FileNotFoundError):
    """MNIST files are absent and could not (or may not) be downloaded."""


class MNISTDataError(LabError, ValueError):
    """MNIST files are present but their contents are wrong."""


class MNISTChecksumError(MNISTDataError):
    """An official-size MNIST file does not match the official MD5."""


def _candidates(name: str) -> list[str]:
    """File names accepted for canonical ``name``, in lookup order."""
    alt = name.replace("-idx", ".idx")  # train-images-idx3-ubyte -> train-images.idx3-ubyte
    return [name, name + ".gz", alt, alt + ".gz"]


def _md5(buf: bytes) -> str:
    return hashlib.md5(buf, usedforsecurity=False).hexdigest()


def _find(root: Path, name: str) -> Path | None:
    for d in (root / "mnist", root):
        for cand in _candidates(name):
            if (d / cand).is_file():
                return d / cand
    return None


def download_mnist(dest: Path, names: list[str], mirrors: tuple[str, ...] = MIRRORS, timeout: float = 10.0) -> None:
    """Download ``<name>.gz`` for each canonical name into ``dest``, checksum-verified.

    Each file goes to a temporary name in ``dest`` and is renamed into place
    only once its MD5 matches, so an interrupted download leaves nothing behind.

    Raises:
        OSError: every mirror failed for some file.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        errors = []
        for mirror in mirrors:
            url = f"{mirror}{name}.gz"
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest)
            try:
                log.info("downloading %s", url)
                with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=timeout) as resp:
                    while chunk := resp.read(1 << 20):
                        fh.write(chunk)
                actual = _md5(read_idx_bytes(tmp))  # read_idx_bytes sniffs the gzip magic
                if actual != OFFICIAL[name][1]:
                    raise OSError(f"md5 {actual}, expected {OFFICIAL[name][1]}")
                os.chmod(tmp, 0o644)  # mkstemp makes it 0600
                os.replace(tmp, dest / f"{name}.gz")
                break
            except Exception as err:  # network error, bad gzip, bad checksum: try the next mirror
                log.info("download of %s failed: %s", url, err)
                errors.append((url, err))
            finally:
                Path(tmp).unlink(missing_ok=True)
        else:
            detail = "; ".join(f"{url}: {err}" for url, err in errors)
            raise OSError(f"all mirrors failed for {name}.gz ({detail})") from (errors[-1][1] if errors else None)

def idx_image_size(data_dir: str | os.PathLike | None) -> tuple[int, int] | None:
    """``(H, W)`` of the training images from their IDX header (the first 16 bytes); None when absent."""
    path = _find(resolve_data_dir(data_dir), SPLIT_FILES["train"][0])
    if path is None:
        return None
    with open(path, "rb") as fh:
        head = fh.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as fh:
        _, shape, _ = parse_idx_header(fh.read(16), path)
    if len(shape) != 3:
        raise ConfigError(f"{path}: images must be a 3-dimensional IDX array (N, H, W), got shape {shape}")
    return shape[1], shape[2]


def locate_mnist(
    data_dir: str | os.PathLike | None, splits: tuple[str, ...] = ("train", "test"), download: bool = True
) -> dict[str, Path]:
    """Find the MNIST files of ``splits``; download the missing ones if allowed.

    Args:
        data_dir: data root, overridden by ``$S2S_DATA_DIR`` (see ``resolve_data_dir``).
        splits: any of ``"train"``, ``"test"``.
        download: fetch missing files into ``<data_dir>/mnist/``.

    Returns:
        canonical file name -> path found.

    Raises:
        MNISTNotFoundError: files missing and download disabled or failed.
    """
    root = resolve_data_dir(data_dir)
    names = [n for s in splits for n in SPLIT_FILES[s]]
    found = {n: _find(root, n) for n in names}
    missing = [n for n, p in found.items() if p is None]
    if not missing:
        return found  # type: ignore[return-value]
    reason, cause = "download disabled (download=False)", None
    if download:
        try:
            download_mnist(root / "mnist", missing)
            return {n: _find(root, n) for n in names}  # type: ignore[misc]
        except Exception as err:  # noqa: BLE001 - any failure becomes one clear message
            reason, cause = f"download failed: {err}", err
    dirs = ", ".join(str(d) for d in (root / "mnist", root))
    expected = ", ".join(f"{n} (or {_candidates(n)[2]})" for n in missing)
    raise MNISTNotFoundError(
        f"MNIST not found: searched {dirs} for {expected}, each raw or .gz; {reason}. "
        f"Put the files in {root / 'mnist'}, or set {DATA_DIR_ENV} or data.data_dir."
    ) from cause


def read_mnist_file(path: str | os.PathLike, name: str) -> np.ndarray:
    """Read one MNIST IDX file, checking the MD5 when it has the official item count.

    Args:
        path: the file (raw or .gz).
        name: its canonical name, a key of :data:`OFFICIAL`.

    Raises:
        IDXError: the file is malformed.
        MNISTChecksumError: official size but wrong content.
    """
    buf = read_idx_bytes(path)
    _, shape, _ = parse_idx_header(buf, path)
    official = OFFICIAL.get(name)
    if official is not None and shape[0] == official[0]:
        actual = _md5(buf)  # hash the bytes already in memory
        if actual != official[1]:
            raise MNISTChecksumError(
                f"{path}: checksum mismatch for {name}: expected md5 {official[1]}, got {actual} "
                "(corrupt or not the official file; delete it to re-download)"
            )
    return parse_idx(buf, path)


def load_mnist(
    data_dir: str | os.PathLike | None, split: str, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split.

    Returns:
        ``images`` uint8 ``(N, H, W)`` (28x28 for MNIST) and ``labels`` int64 ``(N,)`` in 0..9.

    Raises:
        MNISTNotFoundError, MNISTDataError, IDXError.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown MNIST split {split!r} (allowed: {', '.join(SPLIT_FILES)})")
    img_name, lab_name = SPLIT_FILES[split]
    paths = locate_mnist(data_dir, (split,), download)
    img_path, lab_path = paths[img_name], paths[lab_name]
    images = read_mnist_file(img_path, img_name)
    labels = read_mnist_file(lab_path, lab_name)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise MNISTDataError(f"{img_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise MNISTDataError(f"{lab_path}: expected integer labels (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise MNISTDataError(
            f"MNIST {split} count mismatch: {img_path} has {len(images)} images "
            f"but {lab_path} has {len(labels)} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        bad = np.unique(labels[(labels < 0) | (labels >= NUM_CLASSES)])[:5].tolist()
        raise MNISTDataError(f"{lab_path}: labels must be in 0..{NUM_CLASSES - 1}, found {bad}")
    return images, labels.astype(np.int64)


class MNISTDataModule(ResumableDataModule):
    """MNIST as sequence classification: each image is a sequence of pixel rows (or columns).

    Batches are dicts::

        inputs         float32 (B, T, F)  rows view: T = H rows, F = W pixels; columns view: the transpose
        input_lengths  long    (B,)       all == T
        targets        long    (B,)       class labels 0..9

    Pixels are scaled to [0, 1] (``x / 255``) when ``normalize``; no mean/std
    standardisation is applied. Otherwise they are raw 0..255 as float32.

    Args:
        data_dir: data root (``$S2S_DATA_DIR`` wins when set).
        batch_size: training batch size.
        eval_batch_size: val/test batch size (default: ``batch_size``).
        view: ``"rows"`` or ``"columns"``.
        val_size: images taken from the 60k training set for validation.
        seed: seeds the train/val split and the training shuffle.
        train_subset: keep only the first N of the shuffled training part.
        num_workers: DataLoader workers.
        download: download missing files in ``prepare_data``/``setup``.
        normalize: scale pixels to [0, 1].
    """

    VIEWS = ("rows", "columns")
    num_classes = NUM_CLASSES

    def __init__(
        self,
        data_dir: str | os.PathLike | None = None,
        batch_size: int = 500,
        eval_batch_size: int | None = None,
        view: str = "rows",
        val_size: int = 5000,
        seed: int = 42,
        train_subset: int | None = None,
        num_workers: int = 0,
        download: bool = True,
        normalize: bool = True,
    ):
        super().__init__()
        if view not in self.VIEWS:
            raise ValueError(f"unknown MNIST view {view!r} (allowed: {', '.join(map(repr, self.VIEWS))})")
        if batch_size < 1 or (eval_batch_size is not None and eval_batch_size < 1):
            raise ValueError(f"batch sizes must be >= 1, got {batch_size}, {eval_batch_size}")
        if val_size < 0 or (train_subset is not None and train_subset < 1):
            raise ValueError(f"need val_size >= 0 and train_subset >= 1, got {val_size}, {train_subset}")
        self.save_hyperparameters()
        self.data_dir = resolve_data_dir(data_dir)
        self.loader_options(batch_size, eval_batch_size, num_workers, seed)
        self.view = view
        self.val_size = val_size
        self.train_subset = train_subset
        self.download = download
        self.normalize = normalize
        # (H, W) from the training images' IDX header, read now (a few bytes): the model is sized
        # before any image is loaded; standard MNIST's 28 x 28 while the files are still to download
        self.image_hw: tuple[int, int] = idx_image_size(self.data_dir) or (28, 28)
        self.contract = DataContract("classify", NUM_CLASSES, input_length=self.input_length, input_dim=self.input_dim)
        self.train_dataset: TensorBatchDataset | None = None
        self.val_dataset: TensorBatchDataset | None = None
        self.test_dataset: TensorBatchDataset | None = None
        self.train_indices: torch.Tensor | None = None  # (N_train,) indices into the 60k training file
        self.val_indices: torch.Tensor | None = None  # (val_size,)

    @property
    def input_length(self) -> int:
        """T, steps per sequence: H for rows, W for columns."""
        return self.image_hw[0] if self.view == "rows" else self.image_hw[1]

    @property
    def input_dim(self) -> int:
        """F, features per step: W for rows, H for columns."""
        return self.image_hw[1] if self.view == "rows" else self.image_hw[0]

    def _check_size(self, images: np.ndarray) -> None:
        """The images ``(N, H, W)`` have the size the contract promised the model."""
        if (images.shape[1], images.shape[2]) != self.image_hw:
            raise ConfigError(f"{self.data_dir}: MNIST images are {images.shape[1]}x{images.shape[2]}, but the "
                              f"training images' header said {self.image_hw[0]}x{self.image_hw[1]}")

    def prepare_data(self) -> None:
        locate_mnist(self.data_dir, ("train", "test"), self.download)

    def _dataset(self, images: np.ndarray, labels: np.ndarray) -> TensorBatchDataset:
        """uint8 (N, H, W) + int64 (N,) -> dataset of inputs (N, T, F), input_lengths (N,), targets (N,)."""
        x = torch.from_numpy(images).to(torch.float32)
        if self.view == "columns":
            x = x.transpose(1, 2).contiguous()
        if self.normalize:
            x.div_(255.0)
        lengths = torch.full((len(x),), x.shape[1], dtype=torch.long)
        return TensorBatchDataset({"inputs": x, "input_lengths": lengths, "targets": torch.from_numpy(labels)})

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_dataset is None:
            images, labels = load_mnist(self.data_dir, "train", self.download)
            n = len(images)
            if self.val_size >= n:
                raise ConfigError(f"data.val_size={self.val_size} leaves no training data "
                                  f"({n} training images in {self.data_dir})")
            self._check_size(images)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
            self.val_indices = perm[: self.val_size]
            self.train_indices = perm[self.val_size :][: self.train_subset]  # None keeps all
            self.train_dataset = self._dataset(images[self.train_indices.numpy()], labels[self.train_indices.numpy()])
            self.val_dataset = self._dataset(images[self.val_indices.numpy()], labels[self.val_indices.numpy()])
        if stage in (None, "test", "predict") and self.test_dataset is None:
            images, labels = load_mnist(self.data_dir, "test", self.download)
            self._check_size(images)
            self.test_dataset = self._dataset(images, labels)

    def _loader(self, split: str, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = f"{split}_dataset"
        if getattr(self, dataset) is None:
            self.setup(stage)
        seed = self.seed if shuffle else None
        return make_loader(getattr(self, dataset), batch_size, shuffle, self.num_workers, seed=seed,
                           resume_at=self.resume_at if shuffle else None)




