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

Prints ``path<TAB>text<TAB>confidence`` per image, in input order, and appends the
same rows (under a header, with an ``error`` column) to ``predictions.tsv`` in the run
dir as each batch is decoded; ``resume=true`` skips the images already there, and
``on_bad_image`` (row | skip | error) says what an unreadable image does. The confidence
is the geometric mean of the per-step probabilities of the decoded path: the
decoded tokens with EOS for the attention models, every column's best label for CTC.

A line more than :data:`SQUASH_WARN` times as wide as the model's maximum width (both
at the model's height) is squashed further than ``ocr_zh_cpu``'s corpus squashes any of
its lines. Its reading is still written; the count is logged with the first such image,
since such a line usually holds more characters than the model reads (``ocr_zh_cpu``:
10; ``ocr_zh_cpu_lines`` reads up to 40).

``backend=onnxruntime model_path=<file.onnx>`` reads with a model exported by
:mod:`seq2seq_lab.export` instead, through :mod:`seq2seq_lab.deploy.runtime` (numpy, Pillow
and onnxruntime): no checkpoint, and torch is never imported, so a few images are read in
a fraction of the time. The same rows, resume and bad-image policy apply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import hydra
from omegaconf import DictConfig

from seq2seq_lab.configs import config_dir
from seq2seq_lab.deploy.runtime import oriented_size
from seq2seq_lab.errors import LabError, reported_errors

log = logging.getLogger(__name__)

__all__ = ["IMAGE_SUFFIXES", "collect_inputs", "predict"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
BACKENDS = ("pytorch", "onnxruntime")

# ocr_zh_cpu's corpus squashes its lines to the model's width by at most 1.9x (tight crops; the loose crops its bf16
# default drew until 2026-12-07, 2.54x); 25 Chinese characters at ~30 pixels, 2.7x
SQUASH_WARN = 2.6


class Backend(NamedTuple):
    """How a backend reads: ``load(bytes)`` -> one prepared line; ``decode(lines)`` -> ``[(text, confidence)]``;
    the model's line ``height`` and maximum ``width``, in pixels."""

    load: Callable[[bytes], Any]
    decode: Callable[[list], list[tuple[str, float]]]
    height: int
    width: int


class PredictError(LabError, ValueError):
    """Inputs that cannot be found or read, or a checkpoint whose system cannot transcribe."""


BAD_IMAGE_POLICIES = ("row", "skip", "error")


def _read_list_file(path: Path) -> list[str]:
    """The lines of a list file: UTF-8, a leading byte-order mark allowed; errors name the file and line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise PredictError(f"{path}:{line}: not UTF-8 (byte 0x{data[err.start]:02x}); "
                           "save the list file as UTF-8") from None


def collect_inputs(spec: str) -> list[Path]:
    """The image paths ``spec`` names: an image, a directory of images, or a list file."""
    path = Path(spec)
    if path.is_dir():
        images = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        images = [path]
    elif path.is_file():
        images = [path.parent / line.split(maxsplit=1)[0] for line in _read_list_file(path) if line.strip()]
    else:
        raise PredictError(f"inputs={spec!r}: no such image, directory or list file")
    if not images:
        raise PredictError(f"inputs={spec!r}: no images found")
    return images


def _load(path: Path, backend: Backend) -> tuple[Any, float]:
    """The prepared line of the image at ``path``, and how many times the model's maximum width it is
    at the model's height (before it is squashed to it); any failure is a :class:`PredictError` naming it."""
    try:
        data = path.read_bytes()
        line = backend.load(data)
        w, h = oriented_size(data)
    except Exception as err:  # noqa: BLE001 - missing files and every Pillow decoding error
        raise PredictError(f"{path}: cannot read image ({type(err).__name__}: {err})") from err
    return line, w * backend.height / (h * backend.width)


def pytorch_backend(cfg: DictConfig) -> Backend:
    """Lines read by the checkpoint's system, as in training (precision, quantize and beam width as configured)."""
    import torch

    from seq2seq_lab.assemble import load_trained
    from seq2seq_lab.data.ocr.transforms import LineImageTransform
    from seq2seq_lab.data.ocr.widths import pad_batch
    from seq2seq_lab.precision import calibration_images, check_quantize, precision_plugin, quantize_system

    precision = precision_plugin(cfg.precision)
    quantize = check_quantize(cfg.get("quantize"))
    datamodule, system = load_trained(cfg.ckpt_path, {"data": cfg.get("data") or {}, "system": cfg.get("system") or {}})
    if "transcribe" not in system.capabilities:
        raise PredictError(f"{cfg.ckpt_path}: a {type(system).__name__} does not read text-line images")
    quantize_system(system, quantize, calibration_images(datamodule, cfg.get("calibration_batches", 8)))
    precision.convert_module(system).eval()
    geometry = datamodule.contract  # the training lines' height, maximum width and channels
    transform = LineImageTransform(geometry.height, geometry.width, geometry.channels, trim=geometry.trim_margins)

    def decode(lines: list) -> list[tuple[str, float]]:
        # (B, C, H, W) padded as the data module pads its batches, (B,) widths before padding
        batch, lengths = pad_batch(lines, geometry.width, geometry.fixed_width)
        with torch.inference_mode(), precision.forward_context():
            texts, confidence = system.transcribe(precision.convert_input(batch), lengths)
        return list(zip(texts, confidence.float().tolist()))

    return Backend(lambda data: transform(data)[0], decode, geometry.height, geometry.width)


def onnxruntime_backend(cfg: DictConfig) -> Backend:
    """Lines read by an exported model (``model_path``) in onnxruntime, through the torch-free runtime."""
    from seq2seq_lab.deploy.loading import open_exported

    reader = open_exported(cfg.model_path, cfg.get("threads"))
    if reader.kind == "classifier":
        raise PredictError(f"model_path={cfg.model_path}: a classifier does not read text-line images")
    return Backend(reader.load, lambda lines: reader.decode(*reader.prepare(lines)),
                   reader.meta["height"], reader.meta["width"])


def _resume_from(out: Path) -> set[str]:
    """The paths already in a predictions.tsv, for ``resume``; a torn last row (a kill mid-write) is dropped."""
    if not out.is_file():
        return set()
    lines = out.read_text(encoding="utf-8").split("\n")
    header, complete = lines[0], [line for line in lines[1:-1] if line]  # lines[-1]: "" or a torn row
    if lines[-1]:
        out.write_text("\n".join([header, *complete]) + "\n", encoding="utf-8")
    return {line.split("\t", 1)[0] for line in complete}


def predict(cfg: DictConfig) -> list[tuple[str, str, float]]:
    """Transcribe ``cfg.inputs``; returns ``(path, text, confidence)`` rows and writes ``predictions.tsv``.

    Rows are appended (and flushed) as each batch is decoded, so a stopped run keeps its
    rows; ``resume=true`` then skips the paths already written. An unreadable image is a
    row with an empty text, confidence 0 and the error (``on_bad_image=row``), is left out
    (``skip``), or stops the run (``error``); the count is logged either way.
    """
    if not isinstance(cfg.batch_size, int) or cfg.batch_size < 1:
        raise PredictError(f"batch_size={cfg.batch_size!r}: must be an integer >= 1")
    policy = cfg.get("on_bad_image", "row")
    if policy not in BAD_IMAGE_POLICIES:
        raise PredictError(f"on_bad_image={policy!r}: must be one of {', '.join(BAD_IMAGE_POLICIES)}")
    backend = cfg.get("backend", "pytorch")
    if backend not in BACKENDS:
        raise PredictError(f"backend={backend!r}: must be one of {', '.join(BACKENDS)}")
    if backend == "onnxruntime" and not cfg.get("model_path"):
        raise PredictError("backend=onnxruntime needs model_path=<the .onnx file> "
                           "(written by python -m seq2seq_lab.export ckpt_path=...)")
    if backend == "pytorch" and not cfg.get("ckpt_path"):
        raise PredictError("ckpt_path: the checkpoint to read with is required (or backend=onnxruntime "
                           "model_path=<an exported .onnx>)")
    paths = collect_inputs(str(cfg.inputs))
    reader = (onnxruntime_backend if backend == "onnxruntime" else pytorch_backend)(cfg)

    out = Path(cfg.paths.output_dir) / "predictions.tsv"
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _resume_from(out) if cfg.get("resume", False) else set()
    if done:
        log.info("resume: %d of %d images already in %s", len(done & {str(p) for p in paths}), len(paths), out)
        paths = [p for p in paths if str(p) not in done]
    else:
        out.write_text("path\ttext\tconfidence\terror\n", encoding="utf-8")
    rows, bad, squashed = [], 0, []
    with out.open("a", encoding="utf-8") as tsv:
        for start in range(0, len(paths), cfg.batch_size):
            batch_paths = paths[start : start + cfg.batch_size]
            chunk, images, results = [], [], {}
            for path in batch_paths:
                try:
                    line, squash = _load(path, reader)
                    images.append(line)
                    chunk.append(path)
                    if squash > SQUASH_WARN:
                        squashed.append((path, squash))
                except PredictError as err:
                    if policy == "error":
                        raise
                    bad += 1
                    log.warning("%s", err)
                    if policy == "row":
                        results[path] = ("", 0.0, " ".join(str(err).split()))
            if images:
                results.update((p, (t, c, "")) for p, (t, c) in zip(chunk, reader.decode(images)))
            for path in (p for p in batch_paths if p in results):
                text, conf, error = results[path]
                rows.append((str(path), text, conf))
                print(f"{path}\t{text}\t{conf:.4f}", flush=True)
                tsv.write(f"{path}\t{text}\t{conf:.4f}\t{error}\n")
            tsv.flush()
    if bad:
        log.warning("%d unreadable image(s) (on_bad_image=%s)", bad, policy)
    if squashed:
        path, squash = squashed[0]
        log.warning("%d of %d image(s) are more than %gx the %d pixels this model reads at height %d, and were "
                    "squashed to them (first: %s, %.1fx): such a line usually holds more characters than the model "
                    "was trained to read, so its reading may be cut short or wrong. Read long lines with a model "
                    "trained on them (e.g. experiment=ocr_zh_cpu_lines: up to 40 characters), or cut them into "
                    "shorter lines first",
                    len(squashed), len(rows), SQUASH_WARN, reader.width, reader.height, path, squash)
    log.info("wrote %d predictions to %s", len(rows), out)
    return rows


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
def main(cfg: DictConfig) -> None:
    with reported_errors(log):
        predict(cfg)


if __name__ == "__main__":
    main()
