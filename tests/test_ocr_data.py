"""OCR data layer: charset files, list files, LMDB, bad-input policies, transforms, OCRDataModule."""

from __future__ import annotations

import io
import pickle
import random
from pathlib import Path

import lmdb
import pytest
import torch
from PIL import Image, ImageDraw

from seq2seq_lab.data.charset import CharsetError, read_charset
from seq2seq_lab.data.ocr.lmdb_io import LMDBFormatError, LMDBSource, close_env, write_lmdb
from seq2seq_lab.data.ocr import OCRDataModule, collate_ocr
from seq2seq_lab.data.ocr.sources import BadSampleError, ListFileSource, index_samples
from seq2seq_lab.data.ocr.transforms import LineImageTransform
from seq2seq_lab.data.ocr.widths import header_size

CHARS = list("abcdefghij0123456789你好") + [" "]
N = 40


def png_bytes(size: tuple[int, int], text: str = "", color=(240, 240, 230)) -> bytes:
    img = Image.new("RGB", size, color)
    ImageDraw.Draw(img).text((2, 2), text, fill=(10, 10, 10))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def write_charset(path: Path, chars=CHARS) -> Path:
    path.write_text("\n".join(chars) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> dict:
    """40 images under imgs/, train.txt listing them, charset.txt, and the (bytes, label) pairs."""
    rng = random.Random(0)
    (tmp_path / "imgs").mkdir()
    lines, pairs = [], []
    for i in range(N):
        label = "".join(rng.choice(CHARS[:-1]) for _ in range(rng.randint(1, 8)))
        if i % 7 == 3:
            label = label[:4] + " " + label[4:5]  # labels may hold spaces
        size = (rng.randint(20, 600), rng.randint(16, 48))
        data = png_bytes(size, label, color=(rng.randint(150, 255), rng.randint(150, 255), 200))
        (tmp_path / "imgs" / f"{i:03d}.png").write_bytes(data)
        lines.append(f"imgs/{i:03d}.png {label}")
        pairs.append((data, label))
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"root": tmp_path, "list": tmp_path / "train.txt", "charset": write_charset(tmp_path / "charset.txt"),
            "lines": lines, "pairs": pairs, "labels": [p[1] for p in pairs]}


def make_dm(corpus: dict, **kw) -> OCRDataModule:
    args = dict(train=str(corpus["list"]), charset=str(corpus["charset"]), batch_size=8, num_workers=0)
    return OCRDataModule(**{**args, **kw})


def all_batches(loader) -> list[dict]:
    return list(loader)


def add_lines(corpus: dict, *extra: str) -> Path:
    """Append lines to train.txt; returns it. Line numbers of the extras start at N + 1."""
    with open(corpus["list"], "a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in extra))
    return corpus["list"]


def spare_image(corpus: dict, name: str = "spare.png") -> str:
    (corpus["root"] / name).write_bytes(png_bytes((60, 20)))
    return name


# --------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("channels", [1, 3])
def test_list_file_round_trip(corpus, channels):
    dm = make_dm(corpus, channels=channels, test=str(corpus["list"]))
    assert (dm.output_length, dm.output_dim) == (11, len(CHARS) + 4)
    seen = []
    for batch in dm.train_dataloader():
        x, lengths = batch["inputs"], batch["input_lengths"]
        assert x.shape == (len(batch["texts"]), channels, 32, x.size(3)) and x.dtype == torch.float32
        assert x.size(3) == min(280, -(-int(lengths.max()) // 4) * 4)  # the widest, to a multiple of 4
        assert x.min() >= -1.0 and x.max() <= 1.0
        assert batch["targets"].shape == (x.shape[0], 11) and batch["targets"].dtype == torch.long
        assert dm.tokenizer.batch_decode(batch["targets"]) == batch["texts"]
        assert batch["target_lengths"].tolist() == [len(t) + 1 for t in batch["texts"]]
        seen += batch["texts"]
    assert sorted(seen) == sorted(corpus["labels"])
    test_texts = [t for b in dm.test_dataloader() for t in b["texts"]]
    widths = dm.datasets["test"].widths()
    assert test_texts == [corpus["labels"][i] for i in sorted(range(N), key=widths.__getitem__)]  # by width
    no_buckets = make_dm(corpus, channels=channels, test=str(corpus["list"]), bucket_by_width=False)
    assert [t for b in no_buckets.test_dataloader() for t in b["texts"]] == corpus["labels"]  # file order


def test_resize_keeps_the_aspect_ratio_and_squashes_wider_lines():
    tf = LineImageTransform(height=32, width=280, channels=3)
    wide, w_wide = tf(png_bytes((2000, 40), "wide"))
    assert wide.shape == (3, 32, 280) and w_wide == 280
    narrow, w_narrow = tf(png_bytes((30, 60)))
    assert narrow.shape == (3, 32, 16) and w_narrow == 16 == tf.scaled_width((30, 60))  # 30 * 32 / 60, unpadded
    gray, _ = LineImageTransform(channels=1)(png_bytes((100, 32), color=(255, 255, 255)))
    assert gray.shape == (1, 32, 100) and torch.allclose(gray[:, 20:, 50:], torch.ones(1, 12, 50))
    aug = LineImageTransform(augment=True)
    torch.manual_seed(0)
    for _ in range(20):
        x, _ = aug(png_bytes((120, 30), "ab"))
        assert x.shape == (3, 32, 128) and x.min() >= -1 and x.max() <= 1


def test_lmdb_round_trip_matches_list_file(corpus, tmp_path):
    db = tmp_path / "db"
    assert write_lmdb(db, corpus["pairs"]) == N
    with pytest.raises(FileExistsError):
        write_lmdb(db, corpus["pairs"])
    from_list = all_batches(make_dm(corpus, test=str(corpus["list"])).test_dataloader())
    from_db = all_batches(make_dm(corpus, train=None, test=str(db)).test_dataloader())
    assert len(from_list) == len(from_db) == 5
    for a, b in zip(from_list, from_db):
        assert a["texts"] == b["texts"]
        for key in ("inputs", "input_lengths", "targets", "target_lengths"):
            assert torch.equal(a[key], b[key]), key
    origins = [s.origin for s in LMDBSource(db)]
    assert origins[11] == f"{db}:image-000000012"


def test_several_sources_and_pickling(corpus, tmp_path):
    db = tmp_path / "db"
    write_lmdb(db, [(png_bytes((50, 20)), "ab")])
    dm = make_dm(corpus, train=[str(corpus["list"]), str(db)], num_workers=2)
    dm.setup("fit")
    ds = dm.datasets["train"]
    assert len(ds) == N + 1 and ds[N]["texts"] == "ab"  # opens the env in this process
    clone = pickle.loads(pickle.dumps(ds))
    assert torch.equal(clone[N]["inputs"], ds[N]["inputs"])
    assert pickle.loads(pickle.dumps(collate_ocr)) is collate_ocr
    assert sum(len(b["texts"]) for b in dm.train_dataloader()) == N + 1


def test_workers_give_same_batches(corpus):
    b0 = all_batches(make_dm(corpus, num_workers=0).train_dataloader())
    b2 = all_batches(make_dm(corpus, num_workers=2).train_dataloader())
    assert len(b0) == len(b2) == 5
    for a, b in zip(b0, b2):
        assert a["texts"] == b["texts"] and torch.equal(a["inputs"], b["inputs"])
        assert torch.equal(a["targets"], b["targets"])


def test_val_fraction_split(corpus):
    dm = make_dm(corpus, val_fraction=0.25)
    dm.setup("fit")
    train = [s.origin for s in dm.datasets["train"].samples]
    val = [s.origin for s in dm.datasets["val"].samples]
    assert len(val) == 10 and len(train) == 30 and not set(train) & set(val)
    dm2 = make_dm(corpus, val_fraction=0.25)
    dm2.setup("fit")
    assert [s.origin for s in dm2.datasets["val"].samples] == val
    assert make_dm(corpus).val_dataloader() == []
    with pytest.raises(ValueError, match="no test data"):
        make_dm(corpus).test_dataloader()


# --------------------------------------------------------------------------- bad input

def _case_lines(corpus: dict, case: str) -> tuple[list[str], str, str]:
    """Extra list lines for ``case``, the problem name, and a regex the error must match."""
    spare = spare_image(corpus)
    n = N + 1
    if case == "unknown_char":
        return [f"{spare} ab\u00e9x"], case, rf"train.txt:{n}: label 'ab\u00e9x' has characters '\u00e9', 'x' not in charset .*charset.txt"
    if case == "missing_image":
        return ["imgs/nope.png ab"], case, rf"train.txt:{n}: image '.*nope.png' not found"
    if case == "empty_label":
        return [f"{spare}"], case, rf"train.txt:{n}: empty label \(no label after the image path\)"
    if case == "too_long":
        return [f"{spare} abcdefghij0"], case, rf"train.txt:{n}: label 'abcdefghij0' has 11 characters, more than max_length=10"
    if case == "duplicate":
        return [corpus["lines"][4].split(" ")[0] + " abc"], case, rf"train.txt:{n}: image .* listed again \(first at .*train.txt:5\)"
    raise AssertionError(case)


CASES = ["unknown_char", "missing_image", "empty_label", "too_long", "duplicate"]


@pytest.mark.parametrize("case", CASES)
def test_bad_sample_error(corpus, case):
    lines, _, pattern = _case_lines(corpus, case)
    add_lines(corpus, *lines)
    with pytest.raises(BadSampleError, match=pattern):
        make_dm(corpus).setup("fit")


@pytest.mark.parametrize("case", CASES)
def test_bad_sample_skip(corpus, case, caplog):
    lines, problem, _ = _case_lines(corpus, case)
    add_lines(corpus, *lines, "", f"{spare_image(corpus, 'ok.png')} ab 1")  # blank line, then a good one
    dm = make_dm(corpus, on_bad_sample="skip")
    with caplog.at_level("WARNING", logger="seq2seq_lab.data.ocr"):
        dm.setup("fit")
    assert dm.skipped == {problem: 1}
    assert len(dm.datasets["train"]) == N + 1
    assert f"skipped 1 of {N + 2} samples ({problem}: 1)" in caplog.text


def test_unknown_char_policies(corpus):
    add_lines(corpus, f"{spare_image(corpus)} abx")
    dm = make_dm(corpus, on_bad_sample="error", on_unknown_char="unk", test=str(corpus["list"]), bucket_by_width=False)
    assert dm.tokenizer.use_unk
    last = all_batches(dm.test_dataloader())[-1]
    assert last["texts"][-1] == "abx"
    assert last["targets"][-1, :4].tolist() == [*dm.tokenizer.encode("ab")[:2], dm.tokenizer.UNK, dm.tokenizer.EOS]
    dm = make_dm(corpus, on_bad_sample="error", on_unknown_char="skip")
    dm.setup("fit")
    assert dm.skipped == {"unknown_char": 1} and not dm.tokenizer.use_unk
    with pytest.raises(BadSampleError, match="'x' not in charset"):
        make_dm(corpus, on_bad_sample="skip", on_unknown_char="error").setup("fit")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_corrupt_image(corpus, num_workers):
    (corpus["root"] / "bad.png").write_bytes(b"this is not an image")
    add_lines(corpus, "bad.png ab")
    dm = make_dm(corpus, num_workers=num_workers, test=str(corpus["list"]))
    with pytest.raises(BadSampleError, match=rf"train.txt:{N + 1}: cannot read image '.*bad.png'"):
        all_batches(dm.test_dataloader())
    dm = make_dm(corpus, num_workers=num_workers, test=str(corpus["list"]), on_bad_sample="skip")
    batches = all_batches(dm.test_dataloader())
    assert [len(b["texts"]) for b in batches] == [8] * 5 + [1]  # the bad one replaced by the next good one
    assert dm.skipped == {"bad_image": 1}
    all_batches(dm.test_dataloader())  # a second epoch does not count it again
    assert dm.skipped == {"bad_image": 1}


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_empty_list_file(corpus, policy):
    empty = corpus["root"] / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(BadSampleError, match=r"empty.txt: no samples"):
        make_dm(corpus, train=[str(corpus["list"]), str(empty)], on_bad_sample=policy).setup("fit")


def test_lmdb_problems(tmp_path, corpus):
    db = tmp_path / "db"
    write_lmdb(db, [(png_bytes((50, 20)), "ab"), (b"junk", "ab"), (png_bytes((50, 20)), "")])
    env = lmdb.open(str(db))  # add a label without an image
    with env.begin(write=True) as txn:
        txn.put(b"num-samples", b"4")
        txn.put(b"label-000000004", b"abc")  # no image-000000004
    env.close()
    dm = make_dm(corpus, train=str(db), on_bad_sample="skip")
    assert [b["texts"] for b in dm.train_dataloader()] == [["ab", "ab"]]
    assert dm.skipped == {"empty_label": 1, "missing_image": 1, "bad_image": 1}
    close_env(str(db))  # py-lmdb opens a database once per process
    env = lmdb.open(str(db))
    with env.begin(write=True) as txn:
        txn.put(b"label-000000003", b"\xff")
    env.close()
    with pytest.raises(BadSampleError, match=rf"{db}:image-000000003: empty label \(label-000000003 is not"):
        make_dm(corpus, train=str(db)).setup("fit")
    close_env(str(db))
    env = lmdb.open(str(db))
    with env.begin(write=True) as txn:
        txn.delete(b"num-samples")
    env.close()
    with pytest.raises(LMDBFormatError, match=rf"{db}: LMDB has no 'num-samples' key"):
        make_dm(corpus, train=str(db)).setup("fit")


def test_index_opens_no_image(tmp_path, monkeypatch):
    """Indexing reads the list only: a big list is counted without decoding anything.

    (How long it takes is the bench's business, not a test's.)
    """
    def refuse(*args, **kwargs):
        raise AssertionError("index_samples opened an image")

    monkeypatch.setattr(Image, "open", refuse)
    lst = tmp_path / "big.txt"
    lst.write_text("".join(f"img/{i}.jpg 你好{i % 1000}\n" for i in range(20_000)), encoding="utf-8")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "7.jpg").write_bytes(b"not an image")  # exists: kept, decoded only later
    kept, skipped = index_samples([ListFileSource(lst)], CHARS, 10, on_bad_sample="skip")
    assert [Path(s.key).name for s in kept] == ["7.jpg"] and skipped == {"missing_image": 19_999}

# --------------------------------------------------------------------------- charset and arguments

def test_charset_bom_space_crlf(tmp_path):
    path = tmp_path / "cs.txt"
    path.write_bytes("\ufeff你\r\n \r\n好\n,\n\n".encode("utf-8"))
    assert read_charset(path) == ["你", " ", "好", ","]


@pytest.mark.parametrize("content,pattern", [
    ("a\nb\na\n", r"cs.txt:1,3: character 'a' appears twice \(lines 1 and 3\)"),
    ("a\nbc\n", r"cs.txt:2: line has 2 characters 'bc'"),
    ("a\n\nb\n", r"cs.txt:2: empty line"),
    ("", r"cs.txt: charset file has no characters"),
])
def test_charset_errors(tmp_path, corpus, content, pattern):
    path = tmp_path / "cs.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CharsetError, match=pattern):
        make_dm(corpus, charset=str(path), on_duplicate_char="error")  # a repeat only warns by default


def test_charset_not_utf8(tmp_path):
    path = tmp_path / "cs.txt"
    path.write_bytes("a\nb\n".encode() + "你".encode("gbk") + b"\n")
    with pytest.raises(CharsetError, match=r"cs.txt:3: charset file is not valid UTF-8"):
        read_charset(path)


def test_invalid_arguments(corpus):
    with pytest.raises(ValueError, match="on_bad_sample must be one of 'error', 'skip'; got 'ignore'"):
        make_dm(corpus, on_bad_sample="ignore")
    with pytest.raises(ValueError, match="on_unknown_char must be one of None, 'error', 'skip', 'unk'"):
        make_dm(corpus, on_unknown_char="drop")
    with pytest.raises(ValueError, match="channels must be one of 1, 3"):
        make_dm(corpus, channels=2)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        make_dm(corpus, train=str(corpus["root"] / "nope.txt")).setup("fit")


# --------------------------------------------------------------------------- variable widths

def test_collate_pads_each_batch_to_its_widest_line():
    from seq2seq_lab.data.ocr.widths import batch_width

    items = [{"inputs": torch.rand(1, 32, w) * 2 - 1, "input_lengths": torch.tensor(w), "targets": torch.zeros(3),
              "target_lengths": torch.tensor(1), "texts": "a"} for w in (10, 37)]
    batch = collate_ocr(items, max_width=280)
    x = batch["inputs"]
    assert x.shape == (2, 1, 32, 40) and batch["input_lengths"].tolist() == [10, 37]
    assert torch.equal(x[0, :, :, :10], items[0]["inputs"]) and torch.equal(x[1, :, :, :37], items[1]["inputs"])
    assert torch.equal(x[0, :, :, 10:], x[0, :, :, 9:10].expand(1, 32, 30))  # the last column repeated
    assert collate_ocr(items, max_width=280, fixed_width=True)["inputs"].shape == (2, 1, 32, 280)
    assert batch_width([277], 278) == 278 and batch_width([277]) == 280 and batch_width([280], 280) == 280


def _spread(batches: list[list[int]], widths: list[int]) -> float:
    return sum(max(widths[i] for i in b) - min(widths[i] for i in b) for b in batches) / len(batches)


def test_width_buckets_cover_every_sample_once_and_depend_only_on_seed_and_epoch():
    from seq2seq_lab.data.batching import EpochRandomSampler, WidthBucketBatchSampler

    rng = random.Random(0)
    widths = [rng.randint(20, 1000) for _ in range(1003)]

    def buckets(epoch: int, seed: int = 3, drop_last: bool = False) -> list[list[int]]:
        sampler = EpochRandomSampler(range(1003), seed)
        sampler.set_epoch(epoch)
        return list(WidthBucketBatchSampler(sampler, 10, drop_last, widths, pool_batches=20, seed=seed))

    first = buckets(0)
    assert sorted(i for b in first for i in b) == list(range(1003)) and len(first) == 101
    assert _spread(first, widths) < 0.1 * _spread([list(range(i, i + 10)) for i in range(0, 1000, 10)], widths)
    assert first == buckets(0) and first != buckets(1) and first != buckets(0, seed=4)
    assert [len(b) for b in first].count(3) == 1  # one short batch, not always the last
    dropped = buckets(0, drop_last=True)
    assert len(dropped) == 100 and all(len(b) == 10 for b in dropped)


def test_width_buckets_survive_lightning_distributed_sampler_injection():
    """Under DDP, Lightning re-creates the batch sampler around a DistributedSampler: each rank
    buckets its own shard, the ranks get as many batches, and set_epoch reaches the shuffle."""
    from lightning.fabric.utilities.data import _replace_dunder_methods, _set_sampler_epoch
    from lightning.pytorch.utilities.data import _update_dataloader
    from torch.utils.data import BatchSampler, DistributedSampler

    from seq2seq_lab.data.batching import WidthBucketBatchSampler, make_loader

    widths = [(7 * i) % 101 for i in range(50)]
    dataset = list(range(50))
    with _replace_dunder_methods(BatchSampler):  # as Lightning does around the *_dataloader hooks
        loader = make_loader(dataset, 4, shuffle=True, num_workers=0, seed=0, collate_fn=list, widths=widths)
    shards = []
    for rank in (0, 1):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        ranked = _update_dataloader(loader, sampler)
        assert isinstance(ranked.batch_sampler, WidthBucketBatchSampler) and ranked.batch_sampler.sampler is sampler
        epoch0 = list(ranked)
        _set_sampler_epoch(ranked, 1)
        assert list(ranked) != epoch0
        shards.append(epoch0)
    assert len(shards[0]) == len(shards[1]) == 7
    assert sorted(i for shard in shards for b in shard for i in b) == list(range(50))  # disjoint shards
    assert all(_spread(shard, widths) < 30 for shard in shards)


def test_header_widths_match_the_transformed_images(corpus, tmp_path, monkeypatch):
    from PIL import Image

    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: shown 20 wide, 60 high
    Image.new("RGB", (60, 20), (200, 200, 200)).save(rotated, format="JPEG", exif=exif)
    (corpus["root"] / "rotated.jpg").write_bytes(rotated.getvalue())
    add_lines(corpus, "rotated.jpg ab")
    dm = make_dm(corpus, val=str(corpus["list"]))
    dm.setup("fit")
    dataset = dm.datasets["train"]
    transformed = [dataset[i]["input_lengths"].item() for i in range(len(dataset))]
    calls = []
    real = header_size

    def counted(load):
        calls.append(load)
        return real(load)

    monkeypatch.setattr("seq2seq_lab.data.ocr.module.header_size", counted)
    widths = dm.datasets["val"].widths()
    assert len(calls) == N + 1 and widths[-1] == 11  # round(20 * 32 / 60)
    dm.train_dataloader(), dm.train_dataloader(), dm.val_dataloader()  # noqa: B018
    assert len(calls) == 2 * (N + 1)  # read once per split, then cached
    assert dataset.widths() == transformed == widths
    db = tmp_path / "db"
    write_lmdb(db, corpus["pairs"])
    lmdb_dm = make_dm(corpus, train=str(db))
    lmdb_dm.setup("fit")
    assert lmdb_dm.datasets["train"].widths() == widths[:N]


def test_lines_of_one_size_give_the_batches_they_gave_before(tmp_path):
    """280x32 lines (as ocr_synth_cpu renders them) with bucket_by_width: false: the old
    shuffle, and full-width tensors stacked as they were."""
    from seq2seq_lab.data.batching import EpochRandomSampler

    lines = []
    (tmp_path / "imgs").mkdir()
    for i in range(12):
        (tmp_path / "imgs" / f"{i}.png").write_bytes(png_bytes((280, 32), f"ab{i}"))
        lines.append(f"imgs/{i}.png ab{i}")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    corpus = {"list": tmp_path / "train.txt", "charset": write_charset(tmp_path / "charset.txt")}
    dm = make_dm(corpus, batch_size=5, bucket_by_width=False, channels=1)
    batches = all_batches(dm.train_dataloader())
    order = list(EpochRandomSampler(range(12), dm.seed))
    tf = LineImageTransform(32, 280, 1)
    for k, batch in enumerate(batches):
        idx = order[5 * k : 5 * k + 5]
        assert batch["texts"] == [f"ab{i}" for i in idx]
        expected = torch.stack([tf((tmp_path / "imgs" / f"{i}.png").read_bytes())[0] for i in idx])
        assert torch.equal(batch["inputs"], expected) and batch["input_lengths"].tolist() == [280] * len(idx)
    narrow = make_dm({**corpus, "list": tmp_path / "train.txt"}, fixed_width=True, width=400)
    assert {b["inputs"].size(3) for b in narrow.train_dataloader()} == {400}


def test_the_data_module_trains_on_short_lines_first(corpus):
    from seq2seq_lab.data.length_schedule import LengthScheduleBatchSampler
    from seq2seq_lab.errors import ConfigError

    dm = make_dm(corpus, length_schedule=[[0, 4], [0.5, 10]])
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.batch_sampler, LengthScheduleBatchSampler)
    batches = [batch["texts"] for batch in loader]  # no trainer: the run has not started
    assert len(batches) == 5 and all(len(t) <= 4 for texts in batches for t in texts)  # the epoch's 40 lines' 5 batches
    assert any(len(t) > 4 for t in corpus["labels"])
    val = make_dm(corpus, length_schedule=[[0, 4], [0.5, 10]], val_fraction=0.2).val_dataloader()
    assert not isinstance(val.batch_sampler, LengthScheduleBatchSampler)
    with pytest.raises(ConfigError, match="on_the_fly"):
        make_dm(corpus, length_schedule=[[0, 4]], on_the_fly=True, synth={"out_dir": None})


@pytest.mark.parametrize("one_cycle", [False, True], ids=["steps", "one-cycle-position"])
def test_a_run_takes_the_long_lines_from_the_scheduled_share_of_its_steps(corpus, tmp_path, one_cycle):
    """In a real fit, the run's progress (steps of max_steps here, or the position of its
    OneCycleWithinTime, which keeps to the steps within an ample time budget) moves the stage."""
    import lightning as L

    from seq2seq_lab.systems.schedules import OneCycleWithinTime

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(()))
            self.seen: list[list[str]] = []
            self.read_progress: list[float] = []  # what the sampler read from the one-cycle schedule

        def training_step(self, batch, batch_idx):
            self.seen.append(batch["texts"])
            return (self.weight - 1.0) ** 2

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            if not one_cycle:
                return optimizer
            schedule = OneCycleWithinTime(optimizer, max_lr=0.1, total_steps=12, max_seconds=3600.0)
            progress = schedule.progress
            schedule.progress = lambda: self.read_progress.append(progress()) or self.read_progress[-1]
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    model = Recorder()
    trainer = L.Trainer(max_steps=12, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=make_dm(corpus, length_schedule=[[0, 4], [0.5, 10]]))
    longest = [max(map(len, texts)) for texts in model.seen]
    assert len(longest) == 12 and max(longest[:6]) <= 4  # steps 0-5: before half of max_steps
    assert max(longest[8:]) > 4  # a batch or so late: the loop fetches the next batch ahead
    assert bool(model.read_progress) == one_cycle
