"""Transcribe text-line images with a trained OCR checkpoint:
``python -m seq2seq_lab.predict ckpt_path=<ckpt> inputs=<image | directory | list file>``.

``inputs`` is an image file, a directory (its image files, recursively, sorted by
path) or a list file (one image per line, ``path [label]``, paths relative to the
list file's directory, as the OCR data module reads them). The model, tokenizer
and image size come from the config stored in the checkpoint; ``data.*`` and
``system.*`` overrides apply on top (e.g. ``system.beam_width=5``). ``precision`` and
``quantize`` are as for ``eval`` (:mod:`seq2seq_lab.precision`). Images of any size
are preprocessed as in training (:class:`~seq2seq_lab.data.ocr.transforms.LineImageTransform`:
height ``data.height``, aspect ratio kept, squashed to ``data.width`` when wider) and
decoded in batches of ``batch_size``, each padded to its widest image as the data
module's batches are (``data.fixed_width``: to ``data.width``).

Prints ``path<TAB>text<TAB>confidence`` per image, in input order, and writes the
same rows (under a header) to ``predictions.tsv`` in the run dir. The confidence
is the geometric mean of the per-step probabilities of the decoded path: the
decoded tokens with EOS for the attention models, every column's best label for CTC.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from seq2seq_lab.assemble import load_trained
from seq2seq_lab.configs import config_dir
from seq2seq_lab.data.ocr.transforms import LineImageTransform
from seq2seq_lab.data.ocr.widths import pad_batch
from seq2seq_lab.errors import LabError, reported_errors
from seq2seq_lab.precision import (
    calibration_images,
    check_quantize,
    precision_plugin,
    quantize_system,
)

log = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "collect_inputs", "predict"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class PredictError(LabError, ValueError):
    """Inputs that cannot be found or read, or a checkpoint whose system cannot transcribe."""


def collect_inputs(spec: str) -> list[Path]:
    """The image paths ``spec`` names: an image, a directory of images, or a list file."""
    path = Path(spec)
    if path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        images = [path]
    elif path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
        images = [path.parent / line.split(maxsplit=1)[0] for line in lines if line.strip()]
    else:
        raise PredictError(f"inputs={spec!r}: no such image, directory or list file")
    if not images:
        raise PredictError(f"inputs={spec!r}: no images found")
    return images


def _load(path: Path, transform: LineImageTransform) -> torch.Tensor:
    """The transformed image ``(C, H, w)``, unpadded."""
    try:
        image, _ = transform(path.read_bytes())
    except Exception as err:  # noqa: BLE001 - missing files and every Pillow decoding error
        raise PredictError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err
    return image


def predict(cfg: DictConfig) -> list[tuple[str, str, float]]:
    """Transcribe ``cfg.inputs``; returns ``(path, text, confidence)`` rows and writes ``predictions.tsv``."""
    precision = precision_plugin(cfg.precision)
    quantize = check_quantize(cfg.get("quantize"))
    datamodule, system = load_trained(cfg.ckpt_path, {"data": cfg.get("data") or {}, "system": cfg.get("system") or {}})
    if not hasattr(system, "transcribe") or not hasattr(datamodule, "channels"):
        raise PredictError(f"{cfg.ckpt_path}: a {type(system).__name__} on {type(datamodule).__name__} "
                           "does not read text-line images")
    quantize_system(system, quantize, calibration_images(datamodule, cfg.get("calibration_batches", 8)))
    precision.convert_module(system).eval()
    transform = LineImageTransform(datamodule.height, datamodule.width, datamodule.channels)
    paths = collect_inputs(str(cfg.inputs))

    rows = []
    for start in range(0, len(paths), cfg.batch_size):
        chunk = paths[start : start + cfg.batch_size]
        # (B, C, H, W) padded as the data module pads its batches, (B,) widths before padding
        images, lengths = pad_batch([_load(p, transform) for p in chunk], datamodule.width,
                                    getattr(datamodule, "fixed_width", False))
        with torch.inference_mode(), precision.forward_context():
            texts, confidence = system.transcribe(precision.convert_input(images), lengths)
        for path, text, conf in zip(chunk, texts, confidence.float().tolist()):
            rows.append((str(path), text, conf))
            print(f"{path}\t{text}\t{conf:.4f}", flush=True)

    out = Path(cfg.paths.output_dir) / "predictions.tsv"
    out.write_text("path\ttext\tconfidence\n" + "".join(f"{p}\t{t}\t{c:.4f}\n" for p, t, c in rows),
                   encoding="utf-8")
    log.info("wrote %d predictions to %s", len(rows), out)
    return rows


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    with reported_errors(log):
        predict(cfg)


if __name__ == "__main__":
    main()
