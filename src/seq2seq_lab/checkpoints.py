"""Reading checkpoints safely: tensors and plain containers only (``weights_only``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

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
