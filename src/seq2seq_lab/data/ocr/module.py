"""Text-line OCR: the dataset, its collate and :class:`OCRDataModule`.

Each split (``train``, ``val``, ``test``) is one or more list files or LMDB
directories (a directory holding ``data.mdb``). Text-level problems are found
once, when the split is indexed (see ``ocr_sources.index_samples``); images that
exist but cannot be decoded are found when loaded, by :class:`OCRDataset`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from seq2seq_lab.data.batching import ResumableDataModule, WidthBucketBatchSampler, collate_tokens, make_loader
from seq2seq_lab.data.contract import DataContract
from seq2seq_lab.data.charset import DUPLICATE_POLICIES, read_charset
from seq2seq_lab.data.length_schedule import LengthScheduleBatchSampler, check_length_schedule, training_progress
from seq2seq_lab.data.ocr.lmdb_io import LMDBSource, is_lmdb_dir
from seq2seq_lab.data.ocr.on_the_fly import FreshLinesSampler, OnTheFlyLines, line_item
from seq2seq_lab.data.ocr.sources import (
    LABEL_FORMATS,
    BadSampleError,
    ListFileSource,
    MissingSourceError,
    Sample,
    index_samples,
)
from seq2seq_lab.data.ocr.transforms import LineImageTransform
from seq2seq_lab.data.ocr.widths import header_size, pad_batch
from seq2seq_lab.data.synth.corpus import generate_corpus, spec_from_config
from seq2seq_lab.data.synth.text import load_charset
from seq2seq_lab.data.synth.drawer import make_drawer
from seq2seq_lab.data.tokenizer import Tokenizer
from seq2seq_lab.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["OCRDataModule", "OCRDataset", "collate_ocr", "open_sources"]

BAD_SAMPLE_POLICIES = ("error", "skip")
UNKNOWN_CHAR_POLICIES = ("error", "skip", "unk")
SplitSpec = str | os.PathLike | Sequence[str | os.PathLike] | None


def open_sources(spec: SplitSpec, label_format: str = "auto", charset_lines: Sequence[str] | None = None,
                 charset_name: str = "charset", image_dir: str | None = None) -> list[ListFileSource | LMDBSource]:
    """One source per path in ``spec`` (a path or a list of paths): LMDB dirs or list files.

    ``label_format``, ``charset_lines``, ``charset_name`` and ``image_dir`` go to each
    :class:`ListFileSource` (LMDB labels are always text).

    Raises:
        MissingSourceError: a path is missing, or is a directory without ``data.mdb``.
    """
    paths = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec or [])
    sources: list[ListFileSource | LMDBSource] = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            if not is_lmdb_dir(p):
                raise MissingSourceError(f"{p}: directory is not an LMDB database (no data.mdb)")
            sources.append(LMDBSource(p))
        elif os.path.isfile(p):
            sources.append(ListFileSource(p, label_format, charset_lines, charset_name, image_dir))
        else:
            raise MissingSourceError(f"{p}: no such list file or LMDB directory")
    return sources


class OCRDataset(Dataset):
    """Indexed samples -> images and encoded targets.

    Item ``i`` is a dict: ``inputs (C, H, w)`` float32 in [-1, 1] (unpadded, ``w <= W``),
    ``input_lengths ()`` long (``w``, in pixels), ``targets (L,)`` long with ``L = max_length + 1``
    (``chars..., EOS, PAD...``), ``target_lengths ()`` long (incl. EOS), ``texts`` str.

    An image that cannot be read raises :class:`BadSampleError` (``skip=False``),
    or (``skip=True``) is flagged and replaced by the next readable sample, so
    batches keep their size. Flags live in shared memory, so ``num_bad`` counts
    what DataLoader workers found too, each image once.
    """

    def __init__(self, samples: Sequence[Sample], tokenizer: Tokenizer, max_length: int,
                 transform: LineImageTransform, skip: bool = False):
        if not samples:
            raise ValueError("OCRDataset needs at least one sample")
        self.samples = list(samples)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.transform = transform
        self.skip = skip
        self.bad = torch.zeros(len(self.samples), dtype=torch.bool).share_memory_()  # (N,)
        self._widths: list[int] | None = None

    def widths(self) -> list[int]:
        """Each sample's width after the transform (``<= W``), from its image header: read on the
        first call, then cached. An image whose header cannot be read counts as ``W`` wide."""
        if self._widths is None:
            sizes = [header_size(sample.load) for sample in self.samples]
            self._widths = [self.transform.width if size is None else self.transform.scaled_width(size)
                            for size in sizes]
        return self._widths

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_bad(self) -> int:
        """Images found unreadable so far (each counted once)."""
        return int(self.bad.sum())

    def _image(self, sample: Sample) -> tuple[torch.Tensor, int] | str:
        """The transformed image, or an error message when it cannot be read."""
        try:
            return self.transform(sample.load())
        except Exception as err:  # noqa: BLE001 - Pillow raises many types for corrupt data
            return f"{sample.origin}: cannot read image {sample.load.name!r}: {type(err).__name__}: {err}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.samples)
        for step in range(n):
            i = (index + step) % n
            if self.bad[i]:
                continue
            sample = self.samples[i]
            result = self._image(sample)
            if not isinstance(result, str):
                break
            if not self.skip:
                raise BadSampleError(result)
            self.bad[i] = True
            log.warning("%s (skipped)", result)
        else:
            raise BadSampleError(f"no readable image among the {n} samples (first: {self.samples[0].origin})")
        image, width = result
        # chars..., EOS; an index-form label keeps its charset lines (a repeated character's line)
        ids = self.tokenizer.encode_lines(sample.lines) if sample.lines else self.tokenizer.encode(sample.label)
        return line_item(image, width, ids, sample.label, self.max_length, self.tokenizer.PAD)


def collate_ocr(items: list[dict[str, Any]], max_width: int | None = None, fixed_width: bool = False) -> dict[str, Any]:
    """Stack items: ``inputs (B, C, H, W)``, ``input_lengths (B,)`` (pixel widths before padding),
    ``targets (B, L)``, ``target_lengths (B,)``, ``texts`` list of B str.

    Each image is padded on the right by repeating its last column, to ``W =
    max_width`` with ``fixed_width``, else to the widest image of the batch
    (rounded up to a multiple of 4, at most ``max_width``: see
    :func:`~seq2seq_lab.data.ocr.widths.batch_width`). Module-level, so it pickles
    for workers (bind the options with ``functools.partial``).
    """
    return collate_tokens(items, *pad_batch([it["inputs"] for it in items], max_width, fixed_width))


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _inside(path: str, directory: str) -> bool:
    """Whether ``path`` lies in ``directory`` (resolved; neither need exist)."""
    return Path(directory).resolve() in Path(path).resolve().parents


class OCRDataModule(ResumableDataModule):
    """Text-line images with their transcriptions, for CRNN-style encoder-decoders.

    Batches are dicts (``L = max_length + 1``)::

        inputs          float32 (B, C, H, W') in [-1, 1], W' <= W: the widest of the batch
        input_lengths   long    (B,)  each image's width in pixels before right padding (<= W')
        targets         long    (B, L) chars..., EOS, PAD...
        target_lengths  long    (B,)  incl. EOS
        texts           list of B str

    ``tokenizer``, ``output_dim`` (= vocab size), ``output_length`` (= L),
    ``channels``, ``height`` and ``width`` are set in ``__init__``. The number of
    encoder columns depends on the model and is not provided here.

    Args:
        train, val, test: a list file, an LMDB directory, or a list of them; ``None`` for none.
        charset: charset file, one character per line (line ``k`` is id ``k + 1``).
        on_duplicate_char: a character on two charset lines: ``"warn"`` (logged; both
            ids decode to it, text labels use the first line) or ``"error"``.
        label_format: list-file labels as ``"text"``, ``"index"`` (charset line
            numbers, 1-based, as in the Synthetic Chinese String Dataset) or ``"auto"``
            (decided per file, text when ambiguous; see ``sources.detect_label_format``).
        max_length: longest label in characters.
        height, width, channels: image height, maximum width and channels (1 or 3). Lines keep
            their aspect ratio at ``height``; wider ones than ``width`` are squashed to it.
        batch_size: training batch size; ``eval_batch_size`` for val/test (default: the same).
        num_workers: DataLoader workers.
        augment: light augmentation of training images.
        on_bad_sample: ``"error"`` or ``"skip"``.
        on_unknown_char: ``"error"``, ``"skip"`` or ``"unk"``; ``None`` follows ``on_bad_sample``.
        val_fraction: when ``val`` is None, hold out this seeded fraction of train.
        seed: seeds the val split and the training shuffle.
        pin_memory: DataLoader ``pin_memory``.
        bucket_by_width: batch lines of similar width (:class:`~seq2seq_lab.data.batching.WidthBucketBatchSampler`: shuffled
            pools of 50 batches sorted by width), and sort val/test by width; widths come from
            the image headers, read once per split. False: plain shuffle, file order.
        fixed_width: pad every batch to ``width`` (one input size). With ``bucket_by_width: false``
            a data set of ``width``-wide images gives the batches it gave before variable widths.
        on_the_fly: draw the training lines with the generator as training goes, ``synth.num_train``
            new ones every epoch (:mod:`~seq2seq_lab.data.ocr.on_the_fly`), instead of reading ``train``;
            validation and test still read their lists. Not bucketed by width.
        synth: the generator's settings (conf/synth.yaml's keys; experiments pass their ``synth`` block).
            With its ``out_dir``, :meth:`prepare_data` writes that corpus there (or finds the identical one),
            and a charset file the corpus will write is read from the settings meanwhile.
        image_dir: the directory the list files' image paths are relative to; None: each list file's
            own (or its ``images/`` subdirectory when the images are there, as the classic corpus ships).
        length_schedule: short lines first: ``[[start, max_chars], ...]``; from each ``start`` (a
            fraction of the run: steps or ``trainer.max_time``, whichever is further) training batches
            hold only lines of at most ``max_chars`` characters, e.g. ``[[0, 10], [0.6, 40]]``
            (:mod:`~seq2seq_lab.data.length_schedule`). None: every line from the start.
        trim_margins: cut the blank paper beside each line's text off before resizing it, keeping a
            quarter of its height (:func:`~seq2seq_lab.deploy.runtime.trim_margins`): for a model trained on
            tight crops that reads loose ones. ``True``: in every split, ``eval``, ``predict`` and ``export``;
            ``"read"``: only where the model reads (the test split, ``eval``, ``predict``, ``export``), so
            training and validation see the lines as drawn; ``False``: nowhere. Widths from the image
            headers are then upper bounds, used for bucketing only.
    """

    def __init__(
        self,
        train: SplitSpec = None,
        val: SplitSpec = None,
        test: SplitSpec = None,
        charset: str = "charset.txt",
        max_length: int = 10,
        height: int = 32,
        width: int = 280,
        channels: int = 3,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        augment: bool = False,
        on_bad_sample: str = "error",
        on_unknown_char: str | None = None,
        val_fraction: float = 0.0,
        seed: int = 42,
        pin_memory: bool = False,
        bucket_by_width: bool = True,
        fixed_width: bool = False,
        on_duplicate_char: str = "warn",
        label_format: str = "auto",
        on_the_fly: bool = False,
        synth: dict | None = None,
        image_dir: str | None = None,
        length_schedule: Sequence[Sequence[float]] | None = None,
        trim_margins: bool | str = False,
    ):
        super().__init__()
        _check_choice("on_bad_sample", on_bad_sample, BAD_SAMPLE_POLICIES)
        _check_choice("on_unknown_char", on_unknown_char, (None, *UNKNOWN_CHAR_POLICIES))
        _check_choice("channels", channels, (1, 3))
        _check_choice("on_duplicate_char", on_duplicate_char, DUPLICATE_POLICIES)
        _check_choice("label_format", label_format, LABEL_FORMATS)
        if not (isinstance(trim_margins, bool) or trim_margins == "read"):
            raise ValueError(f"trim_margins must be true, false or 'read'; got {trim_margins!r}")
        for name, value, low in (("max_length", max_length, 1), ("batch_size", batch_size, 1),
                                 ("num_workers", num_workers, 0), ("height", height, 1), ("width", width, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size!r}")
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        self.save_hyperparameters()
        self.specs = {"train": train, "val": val, "test": test}
        self.charset_path = os.fspath(charset)
        if on_the_fly and not synth:
            raise ConfigError("data.on_the_fly=true needs data.synth: the generator's settings (e.g. data.synth=${synth})")
        self.length_schedule = check_length_schedule(length_schedule) if length_schedule is not None else None
        if self.length_schedule and on_the_fly:
            raise ConfigError("data.length_schedule reads the lengths of a list's lines: it does not apply to "
                              "data.on_the_fly=true")
        self.synth = dict(synth) if synth else None
        self.synth_spec = spec_from_config(synth) if synth else None
        self.on_the_fly = on_the_fly
        self.corpus_dir = self.synth.get("out_dir") if self.synth else None  # where prepare_data writes it
        if self.corpus_dir and _inside(self.charset_path, self.corpus_dir) and not Path(self.charset_path).exists():  # prepare_data writes it: the settings say what it holds
            self.charset = list(load_charset(self.synth_spec.charset, self.synth_spec.charset_size))
        else:
            self.charset = read_charset(self.charset_path, on_duplicate_char)
        self.label_format = label_format
        self.image_dir = image_dir
        self.max_length = max_length
        self.height, self.width, self.channels = height, width, channels
        self.loader_options(batch_size, eval_batch_size, num_workers, seed)
        self.augment = augment
        self.on_bad_sample = on_bad_sample
        self.on_unknown_char = on_unknown_char
        self.val_fraction = val_fraction
        self.pin_memory = pin_memory
        self.bucket_by_width, self.fixed_width = bucket_by_width, fixed_width
        self.trim_margins = trim_margins  # False | True | "read"

        self.tokenizer = Tokenizer(self.charset, use_unk=(on_unknown_char or on_bad_sample) == "unk")
        self.output_dim = self.tokenizer.vocab_size
        self.output_length = max_length + 1
        self.contract = DataContract("lines", self.output_dim, self.output_length, channels=channels,
                                     height=height, width=width, tokenizer=self.tokenizer, fixed_width=fixed_width,
                                     trim_margins=trim_margins in (True, "read"))
        self.datasets: dict[str, OCRDataset] = {}
        self._index_skipped: dict[str, dict[str, int]] = {}  # split -> problem -> count

    @property
    def skipped(self) -> dict[str, int]:
        """Problem -> samples skipped, over the splits set up so far (unreadable images as found)."""
        total: dict[str, int] = {}
        for counts in self._index_skipped.values():
            for problem, n in counts.items():
                total[problem] = total.get(problem, 0) + n
        bad = sum(ds.num_bad for ds in self.datasets.values())
        if bad:
            total["bad_image"] = total.get("bad_image", 0) + bad
        return total

    def _index(self, split: str, spec: SplitSpec) -> list[Sample]:
        """Read and check one split's samples; log what was skipped."""
        sources = open_sources(spec, self.label_format, self.charset, self.charset_path, self.image_dir)
        if not sources:
            raise ValueError(f"data.{split} is empty")
        samples, skipped = index_samples(sources, self.charset, self.max_length, self.on_bad_sample,
                                         self.on_unknown_char, charset_name=self.charset_path)
        self._index_skipped[split] = skipped
        names = ", ".join(s.path for s in sources)
        if skipped:
            detail = ", ".join(f"{p}: {n}" for p, n in skipped.items())
            log.warning("%s: skipped %d of %d samples (%s) in %s", split, sum(skipped.values()),
                        len(samples) + sum(skipped.values()), detail, names)
        else:
            log.info("%s: %d samples in %s", split, len(samples), names)
        if not samples:
            raise BadSampleError(f"{split}: every sample of {names} was skipped ({skipped})")
        return samples

    def _transform(self, augment: bool, reading: bool = False) -> LineImageTransform:
        """The lines' transform; ``reading``: the test split's, which ``trim_margins="read"`` cuts too."""
        trim = self.trim_margins is True or (reading and self.trim_margins == "read")
        return LineImageTransform(self.height, self.width, self.channels, augment=augment, trim=trim)

    def _dataset(self, samples: list[Sample], augment: bool, reading: bool = False) -> OCRDataset:
        return OCRDataset(samples, self.tokenizer, self.max_length, self._transform(augment, reading),
                          skip=self.on_bad_sample == "skip")

    def prepare_data(self) -> None:
        """Write the corpus of ``synth`` into ``synth.out_dir``, or reuse the identical one there
        (Lightning runs this once per node, before any process reads data)."""
        if self.corpus_dir:
            generate_corpus(self.synth_spec, self.corpus_dir, workers=self.synth.get("workers", 1),
                            overwrite=self.synth.get("overwrite", False), progress=False)

    def setup(self, stage: str | None = None) -> None:
        """Index the splits ``stage`` needs (once each)."""
        want_fit = stage in (None, "fit", "validate")
        if want_fit and "train" not in self.datasets and self.on_the_fly:
            spec = self.synth_spec
            self.datasets["train"] = OnTheFlyLines(make_drawer(spec), spec.num_train, self.tokenizer,
                                                   self.max_length, self._transform(self.augment))
            log.info("train: %d lines drawn on the fly every epoch (%s style)", spec.num_train, spec.style or "simple")
        # validating alone reads train only when the validation lines come out of it (val_fraction)
        want_train = stage in (None, "fit") or (stage == "validate" and self.specs["val"] is None)
        if want_train and "train" not in self.datasets and self.specs["train"] is not None:
            samples = self._index("train", self.specs["train"])
            if self.specs["val"] is None and self.val_fraction > 0:
                n_val = max(1, round(len(samples) * self.val_fraction))
                if n_val >= len(samples):
                    raise ConfigError(f"data.val_fraction={self.val_fraction} leaves no training samples "
                                      f"({len(samples)} in {self.specs['train']})")
                perm = torch.randperm(len(samples), generator=torch.Generator().manual_seed(self.seed)).tolist()
                self.datasets["val"] = self._dataset([samples[i] for i in sorted(perm[:n_val])], augment=False)
                samples = [samples[i] for i in sorted(perm[n_val:])]
            self.datasets["train"] = self._dataset(samples, augment=self.augment)
        if want_fit and "val" not in self.datasets and self.specs["val"] is not None:
            self.datasets["val"] = self._dataset(self._index("val", self.specs["val"]), augment=False)
        if stage in (None, "test", "predict") and "test" not in self.datasets and self.specs["test"] is not None:
            self.datasets["test"] = self._dataset(self._index("test", self.specs["test"]), augment=False, reading=True)

    def _loader(self, split: str, stage: str, batch_size: int, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.setup(stage)
        if split not in self.datasets:
            raise ConfigError(f"no {split} data configured (data.{split} is null)")
        dataset = self.datasets[split]
        fresh = isinstance(dataset, OnTheFlyLines)
        widths = dataset.widths() if self.bucket_by_width and not fresh else None
        bucketing = WidthBucketBatchSampler
        if shuffle and self.length_schedule:  # (never fresh: __init__ refuses it with on_the_fly)
            bucketing = functools.partial(LengthScheduleBatchSampler, lengths=[len(s.label) for s in dataset.samples],
                                          schedule=self.length_schedule, progress=self._progress)
            widths = widths or [0] * len(dataset)  # without bucket_by_width: stable sorts keep the shuffle
        return make_loader(
            dataset, batch_size, shuffle, self.num_workers, seed=self.seed,
            collate_fn=functools.partial(collate_ocr, max_width=self.width, fixed_width=self.fixed_width),
            pin_memory=self.pin_memory, widths=widths,
            resume_at=self.resume_at if shuffle else None,
            sampler=FreshLinesSampler(len(dataset), sum(self.synth_spec.counts().values()), self.seed) if fresh else None,
            bucketing=bucketing,
        )

    def _progress(self) -> float:
        """How far training is (:func:`~seq2seq_lab.data.length_schedule.training_progress`)."""
        return training_progress(self.trainer)

    def val_dataloader(self) -> DataLoader | list:
        """The val loader, or ``[]`` (no validation) when neither ``val`` nor ``val_fraction`` is set."""
        if self.specs["val"] is None and not (self.val_fraction > 0 and self.specs["train"] is not None):
            return []
        return self._loader("val", "validate", self.eval_batch_size, shuffle=False)

