"""The OCR breakdown of ``eval`` (``breakdown=true``): the test split's readings scored per
reference character type and per font (:mod:`seq2seq_lab.reporting.ocr_breakdown`).

The readings are those of the test pass that ``eval`` has just run (the system keeps them,
:func:`recorded_readings`) where they match the test loader line for line; else the split is
decoded again (:func:`decode_split`).

Decoded again, lines are read with ``system.transcribe(images, widths)`` in the batches of the
data module's test loader (the same batches as the test, on the trainer's device and
precision). The loader's batch sampler gives each line's dataset index, so each line
is matched with its sample, whatever order the loader uses (e.g. sorted by width).

With ``lines_path``, every line's reading is written there too, in dataset order, as a
tab-separated table with a header (:data:`LINE_COLUMNS`; Python's ``csv`` quoting, so a text
with a tab or a ``"`` stays one field): the image, the list-file line it came from, its font,
the edits and both texts.

Fonts come from a ``fonts.tsv`` beside a test list file (``images/000000123.jpg<TAB>Font
Face``, image paths relative to its directory), as the synthetic corpus generator
(:mod:`seq2seq_lab.data.synth.corpus`) writes it. Lines of a list file without one
are grouped as ``(no font)``; when no line has a font there are no font groups.
"""

from __future__ import annotations

import csv
import inspect
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from seq2seq_lab.data.ocr.module import OCRDataModule, open_sources
from seq2seq_lab.data.ocr.sources import ListFileSource, Sample
from seq2seq_lab.data.synth.corpus import FONT_LIST
from seq2seq_lab.errors import LabError
from seq2seq_lab.reporting.ocr_breakdown import Breakdown, ocr_breakdown

log = logging.getLogger(__name__)

__all__ = ["LINE_COLUMNS", "NO_FONT", "FontListError", "breakdown_metrics", "decode_split", "read_font_list",
           "recorded_readings", "sample_fonts", "write_lines"]

NO_FONT = "(no font)"
LINE_COLUMNS = ("image", "origin", "font", "edits", "reference", "hypothesis")


class FontListError(LabError, ValueError):
    """A ``fonts.tsv`` line that is not ``image path<TAB>font``; the message names the file and line."""


def read_font_list(path: str | os.PathLike) -> dict[str, str]:
    """Image path (normalised, as :class:`~seq2seq_lab.data.ocr.sources.ListFileSource` keys
    its samples) -> font face, from the font list ``path``."""
    root = os.path.dirname(os.path.abspath(path))
    fonts = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        image, sep, font = line.partition("\t")
        if not sep or not image or not font.strip():
            raise FontListError(f"{path}:{lineno}: expected 'image path<TAB>font face', got {line!r}")
        fonts[os.path.normpath(os.path.join(root, image))] = font.strip()
    return fonts


def sample_fonts(samples: Sequence[Sample], spec: Any) -> list[str] | None:
    """Each sample's font, from the ``fonts.tsv`` beside the list files of ``spec`` (a split's
    list files or LMDB dirs); None when no sample has one."""
    fonts: dict[str, str] = {}
    for source in open_sources(spec):
        if isinstance(source, ListFileSource) and (Path(source.root) / FONT_LIST).is_file():
            log.info("grouping test lines by font from %s", Path(source.root) / FONT_LIST)
            fonts.update(read_font_list(Path(source.root) / FONT_LIST))
    labels = [fonts.get(s.key, NO_FONT) for s in samples]
    return labels if any(label != NO_FONT for label in labels) else None


def _passes_widths(system: torch.nn.Module) -> bool:
    """Whether ``system.transcribe`` takes the widths as a second argument."""
    try:
        return len(inspect.signature(system.transcribe).parameters) >= 2
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def decode_split(system: torch.nn.Module, loader, device: torch.device, precision) -> tuple[list[int], list[str]]:
    """Transcribe every line ``loader`` yields: ``(dataset indices, hypotheses)`` in the loader's order.

    ``precision`` is a Lightning precision plugin (``convert_input``, ``forward_context``).
    The indices come from the loader's (non-random) batch sampler; each batch's ``texts``
    are checked against the labels of the samples those indices name.
    """
    samples = loader.dataset.samples
    batches = [list(b) for b in loader.batch_sampler]
    widths = _passes_widths(system)
    system.to(device).eval()
    indices, hypotheses = [], []
    for batch_indices, batch in zip(batches, loader, strict=True):
        bad = getattr(loader.dataset, "bad", None)  # skipped unreadable images stand in for another sample
        for i, text in zip(batch_indices, batch["texts"], strict=True):
            if text != samples[i].label and not (bad is not None and bad[i]):
                raise RuntimeError(f"test line {i}: loader gave {text!r}, sample {samples[i].origin} is "
                                   f"{samples[i].label!r}: the loader's order is not its batch sampler's")
        images = precision.convert_input(batch["inputs"].to(device))
        args = (images, batch["input_lengths"].to(device)) if widths and "input_lengths" in batch else (images,)
        with precision.forward_context():
            texts, _ = system.transcribe(*args)
        indices += batch_indices
        hypotheses += texts
    return indices, hypotheses


def write_lines(path: str | os.PathLike, rows: Sequence[tuple]) -> None:
    """The per-line readings ``rows`` (one tuple of :data:`LINE_COLUMNS` each) as a TSV file with a header."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(LINE_COLUMNS)
        writer.writerows(rows)


def recorded_readings(system: torch.nn.Module, loader, world_size: int = 1) -> tuple[list[int], list[str]] | None:
    """The readings of the test pass just run (``system.test_readings``) with each line's dataset index,
    as :func:`decode_split` returns them; None where they cannot stand in for it: none recorded, the
    pass ran in several processes, or its lines are not ``loader``'s, in its batch sampler's order."""
    readings = getattr(system, "test_readings", None)
    if not readings or world_size != 1:
        return None
    order = [i for batch in loader.batch_sampler for i in batch]
    samples, bad = loader.dataset.samples, getattr(loader.dataset, "bad", None)
    if len(order) != len(readings) or any(label != samples[i].label and not (bad is not None and bad[i])
                                          for i, (label, _) in zip(order, readings)):
        return None
    return order, [text for _, text in readings]


def breakdown_metrics(system: torch.nn.Module, datamodule, trainer,
                      lines_path: str | os.PathLike | None = None) -> dict[str, float]:
    """Breakdown metrics (``test/char_acc/...``, ``test/by_font/...``) of ``system`` on the test
    split, with the table logged; ``{}`` (logged) for a system that cannot transcribe. With
    ``lines_path``, each line's reading is written there (:func:`write_lines`), in dataset order."""
    if "transcribe" not in system.capabilities:
        log.info("breakdown skipped: a %s does not transcribe text lines", type(system).__name__)
        return {}
    loader = datamodule.test_dataloader()
    dataset = loader.dataset
    found = recorded_readings(system, loader, getattr(trainer, "world_size", 1))
    if found is not None:
        log.info("breakdown: the test pass's readings of the %d lines", len(found[0]))
    indices, hypotheses = found or decode_split(system, loader, trainer.strategy.root_device, trainer.precision_plugin)
    bad = getattr(dataset, "bad", torch.zeros(len(dataset), dtype=torch.bool))
    keep = [k for k, i in enumerate(indices) if not bad[i]]
    samples = dataset.samples
    fonts = sample_fonts(samples, datamodule.specs.get("test")) if isinstance(datamodule, OCRDataModule) else None
    result: Breakdown = ocr_breakdown(
        [(samples[indices[k]].label, hypotheses[k]) for k in keep],
        None if fonts is None else [fonts[indices[k]] for k in keep],
    )
    log.info("breakdown of the test split (%d lines):\n%s", len(keep), result.table())
    if lines_path is not None:
        rows = []  # in dataset order; result.line_edits is in keep's
        for n in sorted(range(len(keep)), key=lambda n: indices[keep[n]]):
            i = indices[keep[n]]
            font = NO_FONT if fonts is None else fonts[i]
            rows.append((samples[i].key, samples[i].origin, font, result.line_edits[n], samples[i].label,
                         hypotheses[keep[n]]))
        write_lines(lines_path, rows)
        log.info("wrote each test line's reading to %s", lines_path)
    return result.metrics("test")
