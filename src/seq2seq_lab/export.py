"""Export a trained model for deployment: ``python -m seq2seq_lab.export ckpt_path=<ckpt> [format=torchscript]``.

The graph holds the encoder and the whole greedy decoding loop (attention OCR), the CTC
head's best path, or a sequence classifier, with a dynamic batch size and line width
(:mod:`seq2seq_lab.deploy.graphs`); the charset, special tokens and line geometry are in its
metadata. With ``verify=true`` (the default) the exported file decodes ``verify_batches``
validation batches next to PyTorch, and the export is refused, its file removed, when any
text (or class) differs. ``int8=true`` adds an int8 copy (ONNX only), checked on the same
batches: its agreement with PyTorch is reported, not required. Writes ``export.json`` (paths,
metadata summary, verification) in the run dir.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from seq2seq_lab.assemble import load_trained
from seq2seq_lab.configs import config_dir
from seq2seq_lab.deploy.exporting import compare, export_onnx, export_torchscript, quantize_int8
from seq2seq_lab.errors import ConfigError, LabError, reported_errors

log = logging.getLogger(__name__)

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


class ExportError(LabError, RuntimeError):
    """An exported model that does not decode as the PyTorch one does, or a system that cannot be exported."""


def _onnx_runner(path: Path):
    from seq2seq_lab.deploy.runtime import LineReader

    reader = LineReader(path, threads=torch.get_num_threads())
    return lambda inputs: reader.run(*inputs)


def _torchscript_runner(path: Path):
    module = torch.jit.load(str(path), map_location="cpu")
    return lambda inputs: [t.numpy() for t in module(*(torch.from_numpy(np.asarray(a)) for a in inputs))]


def _verification_batches(datamodule, batches: int) -> list:
    """The first ``batches`` validation batches, read before anything is exported, so a missing or empty
    validation split is reported at once rather than after the export."""
    try:
        batches_read = list(itertools.islice(datamodule.val_dataloader(), batches))
    except LabError as err:
        raise ConfigError(f"verify reads {batches} validation batches: {err} "
                          "(+data.val=<a list file of lines> to verify on others, or verify=false)") from None
    if not batches_read:
        raise ConfigError("verify reads the validation split, and it has no data: set data.val, or verify=false")
    return batches_read


def _verify(system, meta: dict, run, batches_read: list, label: str, required: bool) -> dict:
    seen, differing, examples = compare(system, meta, run, batches_read)
    log.info("%s: %d of %d validation lines decode as in PyTorch", label, seen - differing, seen)
    if differing and required:
        raise ExportError(f"{label}: {differing} of {seen} validation lines decode differently from PyTorch "
                          f"(fp32), so it was not kept: " + "; ".join(examples))
    return {"lines": seen, "differing": differing, "agreement": (seen - differing) / seen}


def export(cfg: DictConfig) -> dict:
    """Export ``cfg.ckpt_path`` as ``cfg.format``; returns the summary written to ``export.json``."""
    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format!r}: must be one of {', '.join(FORMATS)}")
    if cfg.get("bf16"):
        raise ConfigError("bf16=true: onnxruntime's CPU kernels for convolutions and RNNs have no bf16, so a bf16 "
                          "graph would run in fp32 casts or not at all; use int8=true for a smaller, faster CPU model")
    if cfg.get("int8") and cfg.format != "onnx":
        raise ConfigError("int8=true: only with format=onnx (onnxruntime's dynamic quantization)")
    datamodule, system = load_trained(cfg.ckpt_path, {"data": cfg.get("data") or {}, "system": cfg.get("system") or {}})
    system.eval()
    if hasattr(system, "read_as_exported"):  # the graph reads greedily, each line alone: verify against that
        off = system.read_as_exported()
        if off:
            log.info("the graph reads greedily, each line alone, and is verified against PyTorch reading so: the "
                     "checkpoint's %s are not part of it", ", ".join(off))
    verify_batches = _verification_batches(datamodule, cfg.verify_batches) if cfg.get("verify", True) else None
    out = Path(cfg.out or Path(cfg.paths.output_dir) / f"model{FORMATS[cfg.format]}")
    writer = export_onnx if cfg.format == "onnx" else export_torchscript
    try:
        meta = writer(system, datamodule.contract, out)
    except TypeError as err:
        raise ExportError(f"{cfg.ckpt_path}: {err}") from None
    log.info("wrote %s (%s, %.1f MB)", out, meta["kind"], out.stat().st_size / 1e6)
    summary = {"ckpt_path": str(Path(cfg.ckpt_path).resolve()), "format": cfg.format, "path": str(out.resolve()),
               "kind": meta["kind"], "fixed_width": meta.get("fixed_width")}
    runner = _onnx_runner if cfg.format == "onnx" else _torchscript_runner
    if verify_batches is not None:
        try:
            summary["verify"] = _verify(system, meta, runner(out), verify_batches, str(out), True)
        except LabError:
            out.unlink(missing_ok=True)
            raise
    if cfg.get("int8"):
        int8 = out.with_name(f"{out.stem}.int8{out.suffix}")
        quantize_int8(out, int8)
        log.info("wrote %s (%.1f MB)", int8, int8.stat().st_size / 1e6)
        summary["int8"] = {"path": str(int8.resolve())}
        if verify_batches is not None:
            summary["int8"]["verify"] = _verify(system, meta, runner(int8), verify_batches, str(int8),
                                                False)
    report = Path(cfg.paths.output_dir) / "export.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="export")
def main(cfg: DictConfig) -> None:
    with reported_errors(log):
        export(cfg)


if __name__ == "__main__":
    main()
