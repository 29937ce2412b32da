"""MNIST digit-string lines, on tiny fake MNIST files whose images are traceable constants.

Train image ``i`` is filled with the value ``i + 1`` (1..200) and test image ``j`` with
``j + 201`` (201..250), so every pixel of a line tells which source image it came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from seq2seq_lab.data.mnist.idx import write_idx
from seq2seq_lab.data.mnist.digits import MNISTDigitsDataModule

N_TRAIN, N_TEST, TEST_BASE = 200, 50, 201
LABELS = {"train": (np.arange(N_TRAIN) * 7) % 10, "test": (np.arange(N_TEST) * 3) % 10}
CONF = Path(__file__).resolve().parents[1] / "conf" / "data" / "mnist_digits.yaml"


pytestmark = pytest.mark.usefixtures("offline")


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "mnist"
    train = np.broadcast_to(np.arange(1, N_TRAIN + 1, dtype=np.uint8)[:, None, None], (N_TRAIN, 28, 28))
    test = np.broadcast_to(np.arange(TEST_BASE, TEST_BASE + N_TEST, dtype=np.uint8)[:, None, None], (N_TEST, 28, 28))
    write_idx(d / "train-images-idx3-ubyte.gz", train)
    write_idx(d / "train-labels-idx1-ubyte.gz", LABELS["train"].astype(np.uint8))
    write_idx(d / "t10k-images-idx3-ubyte", test)
    write_idx(d / "t10k-labels-idx1-ubyte", LABELS["test"].astype(np.uint8))
    return tmp_path


def make(root, **kw):
    args = dict(data_dir=root, num_train=300, num_val=100, num_test=100, val_size=50, batch_size=32, download=False)
    dm = MNISTDigitsDataModule(**(args | kw))
    dm.setup()
    return dm


def full_batch(dm, split):
    ds = dm.datasets[split]
    return ds.__getitems__(list(range(len(ds))))


def trace(inputs: torch.Tensor) -> list[list[tuple[int, int]]]:
    """Per line, the ``(pixel value, top row)`` of each pasted digit, left to right.

    Args:
        inputs: float32 ``(B, 1, H, W)`` in ``[-1, 1]``.
    """
    raw = torch.round((inputs[:, 0] + 1) * 127.5).to(torch.int64).numpy()  # (B, H, W)
    out = []
    for img in raw:
        digits, x = [], 0
        cols = img.max(axis=0)  # (W,) each column belongs to at most one digit
        while x < img.shape[1]:
            if cols[x] == 0:
                x += 1
                continue
            v = cols[x]
            rows = np.flatnonzero(img[:, x])
            assert len(rows) == 28 and rows[-1] - rows[0] == 27 and (img[rows, x : x + 28] == v).all()
            digits.append((int(v), int(rows[0])))
            x += 28
        out.append(digits)
    return out


def test_attributes_after_init(root):
    dm = MNISTDigitsDataModule(data_dir=root, max_digits=4, height=36, width=140, download=False)
    assert dm.tokenizer.chars == list("0123456789")
    assert dm.output_dim == dm.tokenizer.vocab_size == 14
    assert dm.output_length == 5
    assert (dm.channels, dm.height, dm.width) == (1, 36, 140)
    assert dm.eval_batch_size == dm.batch_size == 64


def test_batches_shapes_and_range(root):
    dm = make(root, eval_batch_size=40)
    for loader, n_first in ((dm.train_dataloader(), 32), (dm.val_dataloader(), 40), (dm.test_dataloader(), 40)):
        b = next(iter(loader))
        assert set(b) == {"inputs", "targets", "target_lengths", "texts"}
        assert b["inputs"].dtype == torch.float32 and b["inputs"].shape == (n_first, 1, 32, 160)
        assert b["inputs"].min() == -1.0 and b["inputs"].max() <= 1.0
        assert b["targets"].dtype == torch.long and b["targets"].shape == (n_first, 6)
        assert b["target_lengths"].dtype == torch.long and b["target_lengths"].shape == (n_first,)
        assert isinstance(b["texts"], list) and len(b["texts"]) == n_first
    assert dm.datasets["train"].tensors["images"].dtype == torch.uint8
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [300, 100, 100]


def test_full_ink_maps_to_one(root, tmp_path):
    write_idx(root / "mnist" / "t10k-images-idx3-ubyte", np.full((N_TEST, 28, 28), 255, dtype=np.uint8))
    b = full_batch(make(root), "test")
    assert b["inputs"].max() == 1.0 and b["inputs"].min() == -1.0


def test_targets_match_texts_and_lengths(root):
    dm = make(root, min_digits=2, max_digits=4, width=4 * 28 + 3 * 4)
    tok = dm.tokenizer
    for split in ("train", "val", "test"):
        b = full_batch(dm, split)
        assert tok.batch_decode(b["targets"]) == b["texts"]
        expected, lengths = tok.batch_encode(b["texts"], max_length=4)
        assert torch.equal(b["targets"], expected) and torch.equal(b["target_lengths"], lengths)
        n = {len(t) for t in b["texts"]}
        assert min(n) == 2 and max(n) == 4 and n <= {2, 3, 4}


def test_pixels_match_texts_and_placement(root):
    dm = make(root, spacing=(1, 3), vertical_offset=(1, 4), height=33, width=5 * 28 + 4 * 3)
    for split, base, labels in (("train", 1, LABELS["train"]), ("val", 1, LABELS["train"]),
                                ("test", TEST_BASE, LABELS["test"])):
        b = full_batch(dm, split)
        raw = torch.round((b["inputs"][:, 0] + 1) * 127.5)
        assert (raw[:, :, 0] > 0).any(dim=1).all()  # left-aligned: every line starts at column 0
        tops = set()
        for text, digits, src in zip(b["texts"], trace(b["inputs"]), dm.sources[split]):
            values = [v for v, _ in digits]
            assert "".join(str(labels[v - base]) for v in values) == text
            assert [v - base for v in values] == src[src >= 0].tolist()
            tops.update(top for _, top in digits)
        assert tops == {1, 2, 3, 4}
        ink_cols = (raw > 0).any(dim=1).to(torch.int64)  # (N, W)
        gaps = set()
        for row in ink_cols.tolist():
            s = "".join(map(str, row)).strip("0")
            gaps.update(len(g) for g in s.split("1") if g)
        assert gaps == {1, 2, 3}


def test_deterministic_per_seed(root):
    a, b, c = make(root, seed=3), make(root, seed=3), make(root, seed=4)
    for split in ("train", "val", "test"):
        assert torch.equal(a.datasets[split].tensors["images"], b.datasets[split].tensors["images"])
        assert a.datasets[split].texts == b.datasets[split].texts
        assert a.datasets[split].texts != c.datasets[split].texts
    assert np.array_equal(a.val_indices, b.val_indices) and not np.array_equal(a.val_indices, c.val_indices)
    # the train loader's order is seeded too
    assert next(iter(a.train_dataloader()))["texts"] == next(iter(b.train_dataloader()))["texts"]


def test_no_source_image_leaks_between_splits(root):
    dm = make(root)
    used = {}
    for split in ("train", "val", "test"):
        values = {v for digits in trace(full_batch(dm, split)["inputs"]) for v, _ in digits}
        used[split] = values
    assert used["train"] <= {int(i) + 1 for i in dm.train_indices}
    assert used["val"] <= {int(i) + 1 for i in dm.val_indices}
    assert used["test"] <= set(range(TEST_BASE, TEST_BASE + N_TEST))
    assert not used["train"] & used["val"] and not (used["train"] | used["val"]) & used["test"]
    assert len(used["val"]) > 40 and len(used["train"]) > 140  # the pools are really drawn from
    assert set(dm.val_indices.tolist()).isdisjoint(dm.train_indices.tolist())
    assert len(dm.val_indices) + len(dm.train_indices) == N_TRAIN


def test_single_item_matches_batch(root):
    ds = make(root).datasets["val"]
    batch = ds.__getitems__([5, 2])
    item = ds[2]
    assert torch.equal(item["inputs"], batch["inputs"][1]) and item["inputs"].shape == (1, 32, 160)
    assert torch.equal(item["targets"], batch["targets"][1]) and item["texts"] == batch["texts"][1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 139}, "width=139"),
        ({"max_digits": 3, "width": 3 * 28 + 2 * 4 - 1}, "width=91"),
        ({"height": 31}, "height=31"),
        ({"vertical_offset": 0, "height": 27}, "height=27"),
        ({"min_digits": 0}, "min_digits"),
        ({"min_digits": 4, "max_digits": 3}, "max_digits"),
        ({"spacing": (3, 1)}, "spacing"),
        ({"spacing": -1}, "spacing"),
        ({"vertical_offset": (0, 1, 2)}, "vertical_offset"),
        ({"num_val": 0}, "num_val"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_argument_validation(root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        MNISTDigitsDataModule(data_dir=root, download=False, **kwargs)


def test_exact_fit_is_allowed_and_val_size_checked(root):
    dm = make(root, max_digits=3, width=3 * 28 + 2 * 4, spacing=(4, 4))
    assert {len(d) for d in trace(full_batch(dm, "test")["inputs"])} == {1, 2, 3}
    with pytest.raises(ValueError, match="val_size=200"):
        make(root, val_size=200)


def test_yaml_instantiates(root):
    cfg = OmegaConf.load(CONF)
    cfg.data_dir, cfg.seed, cfg.download, cfg.num_train, cfg.val_size = str(root), 7, False, 10, 50
    dm = instantiate(cfg)
    assert isinstance(dm, MNISTDigitsDataModule)
    assert dm.spacing == (0, 4) and dm.vertical_offset == (0, 4) and dm.seed == 7
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 10
