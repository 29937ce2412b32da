"""Tests for the toy copy / reverse / sort DataModule."""

from __future__ import annotations

import pickle

import pytest
import torch

from seq2seq_lab.data.toy import ToyDataModule, collate_toy

SMALL = dict(num_train=300, num_val=50, num_test=40, batch_size=32)


def make(**kw) -> ToyDataModule:
    dm = ToyDataModule(**{**SMALL, **kw})
    dm.setup("fit")
    return dm


def sources_from_inputs(inputs: torch.Tensor, lengths: torch.Tensor, charset: str) -> list[str]:
    """Decode one-hot ``(B, T, F)`` inputs back to strings."""
    idx = inputs.argmax(-1)
    return ["".join(charset[i] for i in row[:n]) for row, n in zip(idx.tolist(), lengths.tolist())]


def test_attributes_exist_before_setup():
    dm = ToyDataModule(max_length=6, charset="abc")
    assert dm.input_dim == 3
    assert dm.input_length == 6
    assert dm.output_length == 7
    assert dm.vocab_size == dm.tokenizer.vocab_size == 3 + 4


def test_batch_shapes_and_dtypes():
    dm = make(max_length=7, eval_batch_size=16)
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape == (32, 7, 10) and batch["inputs"].dtype == torch.float32
    assert batch["input_lengths"].shape == (32,) and batch["input_lengths"].dtype == torch.long
    assert batch["targets"].shape == (32, 8) and batch["targets"].dtype == torch.long
    assert batch["target_lengths"].shape == (32,) and batch["target_lengths"].dtype == torch.long
    assert isinstance(batch["texts"], list) and len(batch["texts"]) == 32
    assert next(iter(dm.val_dataloader()))["inputs"].shape[0] == 16
    assert next(iter(dm.test_dataloader()))["inputs"].shape[0] == 16


@pytest.mark.parametrize(
    "task,fn",
    [("copy", lambda s: s), ("reverse", lambda s: s[::-1]), ("sort", lambda s: "".join(sorted(s)))],
)
def test_targets_are_correct(task, fn):
    dm = make(task=task)
    tok = dm.tokenizer
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        for batch in loader:
            srcs = sources_from_inputs(batch["inputs"], batch["input_lengths"], dm.charset)
            decoded = tok.batch_decode(batch["targets"])
            assert decoded == batch["texts"] == [fn(s) for s in srcs]
            assert torch.equal(batch["target_lengths"], batch["input_lengths"] + 1)


def test_targets_match_tokenizer_batch_encode():
    dm = make(task="sort", charset="xyzw")
    data = dm.splits["val"]
    targets, lengths = dm.tokenizer.batch_encode(data["texts"], dm.max_length)
    assert torch.equal(data["targets"], targets)
    assert torch.equal(data["target_lengths"], lengths)


def test_lengths_vary_within_bounds():
    dm = make(min_length=2, max_length=9)
    for split in ("train", "val", "test"):
        lengths = dm.splits[split]["input_lengths"]
        assert lengths.min() >= 2 and lengths.max() <= 9
    lengths = dm.splits["train"]["input_lengths"]
    assert set(lengths.tolist()) == set(range(2, 10))
    assert [len(t) for t in dm.splits["train"]["texts"]] == lengths.tolist()


def test_fixed_length_when_min_equals_max():
    dm = make(min_length=5, max_length=5)
    assert set(dm.splits["train"]["input_lengths"].tolist()) == {5}


def test_padding_is_zero_and_pad():
    dm = make(min_length=1, max_length=8)
    data = dm.splits["train"]
    inputs, targets = data["inputs"], data["targets"]
    steps = torch.arange(inputs.shape[1])
    valid = steps[None, :] < data["input_lengths"][:, None]  # (N, T)
    assert torch.all(inputs[~valid] == 0)
    assert torch.all(inputs[valid].sum(-1) == 1)
    tsteps = torch.arange(targets.shape[1])
    after = tsteps[None, :] >= data["target_lengths"][:, None]  # (N, L)
    assert torch.all(targets[after] == dm.tokenizer.PAD)
    eos = targets.gather(1, (data["target_lengths"] - 1)[:, None]).squeeze(1)
    assert torch.all(eos == dm.tokenizer.EOS)


def test_same_seed_same_data_different_seed_different():
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    for split in ("train", "val", "test"):
        for key in ("inputs", "input_lengths", "targets", "target_lengths"):
            assert torch.equal(a.splits[split][key], b.splits[split][key])
        assert a.splits[split]["texts"] == b.splits[split]["texts"]
        assert a.splits[split]["texts"] != c.splits[split]["texts"]


def test_splits_use_separate_generators():
    dm = make(num_train=50, num_val=50, num_test=50)
    texts = [dm.splits[s]["texts"] for s in ("train", "val", "test")]
    assert texts[0] != texts[1] and texts[1] != texts[2] and texts[0] != texts[2]
    # a split does not depend on the size of the others
    other = make(num_train=50, num_val=7, num_test=50)
    assert other.splits["test"]["texts"] == texts[2]


def test_train_shuffle_is_seeded():
    a, b = make(seed=1), make(seed=1)
    assert next(iter(a.train_dataloader()))["texts"] == next(iter(b.train_dataloader()))["texts"]


def test_loader_covers_split_and_collate_is_picklable():
    dm = make(num_workers=0)
    loader = dm.val_dataloader()
    assert loader.num_workers == 0
    texts = [t for batch in loader for t in batch["texts"]]
    assert texts == dm.splits["val"]["texts"]
    assert pickle.loads(pickle.dumps(collate_toy)) is collate_toy


def test_loader_calls_setup_if_needed():
    dm = ToyDataModule(**SMALL)
    assert len(next(iter(dm.val_dataloader()))["texts"]) == 32


def test_bad_task_raises():
    with pytest.raises(ValueError, match="task") as err:
        ToyDataModule(task="shuffle")
    for name in ("copy", "reverse", "sort", "shuffle"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    "kwargs,name,value",
    [
        (dict(min_length=0), "min_length", "0"),
        (dict(min_length=5, max_length=4), "max_length", "4"),
        (dict(num_train=0), "num_train", "0"),
        (dict(num_val=-1), "num_val", "-1"),
        (dict(num_test=0), "num_test", "0"),
        (dict(batch_size=0), "batch_size", "0"),
        (dict(eval_batch_size=0), "eval_batch_size", "0"),
    ],
)
def test_bad_args_raise(kwargs, name, value):
    with pytest.raises(ValueError, match=name) as err:
        ToyDataModule(**kwargs)
    assert value in str(err.value)
