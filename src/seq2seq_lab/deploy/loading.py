"""Opening an exported model for the entry points' ``backend=onnxruntime`` (no torch imported)."""

from __future__ import annotations

from pathlib import Path

from seq2seq_lab.deploy.runtime import LineReader
from seq2seq_lab.errors import ConfigError

__all__ = ["open_exported"]


def open_exported(model_path: str | None, threads: int | None = None):
    """The :class:`~seq2seq_lab.deploy.runtime.LineReader` of ``model_path`` for ``backend=onnxruntime``;
    a missing, foreign or unreadable file is a :class:`ConfigError` naming it."""
    if not model_path:
        raise ConfigError("backend=onnxruntime needs model_path=<the .onnx file> "
                          "(written by python -m seq2seq_lab.export ckpt_path=...)")
    if not Path(model_path).is_file():
        raise ConfigError(f"model_path={model_path}: no such file")
    try:
        return LineReader(model_path, threads=threads)
    except Exception as err:  # noqa: BLE001 - not an ONNX file, or not one of ours
        raise ConfigError(f"model_path={model_path}: cannot load ({type(err).__name__}: {err})") from None
