"""Reading checkpoints safely: tensors and plain containers only (``weights_only``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from seq2seq_lab.errors import LabError


class CheckpointError(LabError, ValueError):
    """A checkpoint that is missing, unreadable or not one of ours."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint without running pickled code; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file to the user
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    if "run_config" not in checkpoint:
        raise CheckpointError(f"{path}: has no run_config; was it written by seq2seq_lab.train?")
    return checkpoint


def init_weights_from(system: torch.nn.Module, path: str | Path, missing: str = "error") -> list[str]:
    """Start ``system`` from the weights of checkpoint ``path`` (a warm start: the optimiser,
    schedule and epoch count start afresh). Every tensor must match by name and shape; a
    mismatch (another model size, another charset) names the checkpoint and the tensors.

    ``missing="keep"``: tensors of this model that the checkpoint lacks (a module added to a
    trained model, e.g. ``location`` attention's over ``mlp``) keep their fresh initial values;
    tensors of the checkpoint that this model lacks, or of another shape, are still refused.
    Returns the names of the tensors kept."""
    if missing not in ("error", "keep"):
        raise CheckpointError(f"init_missing={missing!r}: choose error or keep")
    state = load_checkpoint(path)["state_dict"]
    own = system.state_dict()
    absent = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    refused = [("missing", [] if missing == "keep" else absent), ("not in this model", unexpected),
               ("other shape", [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in reshaped])]
    if any(keys for _, keys in refused):
        parts = [f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}" for label, keys in refused if keys]
        hint = " (init_missing=keep keeps this model's own values of the missing ones)" if absent and missing == "error" else ""
        raise CheckpointError(f"init_from={path}: its weights do not fit this model ({'; '.join(parts)}){hint}")
    system.load_state_dict(state, strict=not absent)
    return absent


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic on any local filesystem.

    The checkpoint is written to a temporary file beside the target, flushed to disk and
    renamed over it: a kill mid-save leaves the previous file whole. (Lightning's own
    transaction writes the temporary file in ``$TMPDIR``; when that is another filesystem
    the final move is a copy, which a kill can cut short.) Remote paths (``s3://``...)
    go through Lightning's writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
