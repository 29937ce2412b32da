"""Callbacks that keep a run healthy: a per-epoch reseed and a non-finite-loss stop."""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch

from seq2seq_lab.errors import NonFiniteLossError


def _last_checkpoint(trainer: L.Trainer) -> str | None:
    """Path of the newest ``last.ckpt`` any checkpoint callback wrote."""
    for callback in trainer.checkpoint_callbacks:
        for path in (callback.last_model_path, callback.best_model_path):
            if path and Path(path).name == "last.ckpt" and Path(path).is_file():
                return path
    return None


class ReseedEachEpoch(L.Callback):
    """Seeds python, numpy and torch from ``(seed, epoch)`` at the start of every
    training epoch, so that dropout and teacher-forcing draws after a resume
    equal those of an uninterrupted run.

    A checkpoint also carries the generators' states; a run resumed from a
    mid-epoch checkpoint restores them instead of reseeding, so the rest of
    that epoch draws what it would have drawn.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._resumed: dict | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning skips on_train_epoch_start for the epoch a mid-epoch checkpoint resumes
        resumed, self._resumed = self._resumed, None
        if resumed is not None and resumed["epoch"] == trainer.current_epoch:
            _set_rng_states(resumed["rng"])

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = (self.seed * 1_000_003 + trainer.current_epoch + trainer.global_rank * 7919) % 2**32
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)

    def state_dict(self) -> dict:
        trainer = getattr(self, "_trainer", None)
        return {"epoch": int(trainer.current_epoch) if trainer else -1, "rng": _rng_states()}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def load_state_dict(self, state_dict: dict) -> None:
        if "rng" in state_dict:
            self._resumed = state_dict


def _rng_states() -> dict:
    """python, numpy and torch generator states as tensors and plain containers (``weights_only`` loads them)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {"python": random.getstate(), "torch": torch.get_rng_state(),
              "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class StopOnNonFiniteLoss(L.Callback):
    """Stops the run, before the bad gradients reach the weights, when the loss is NaN or inf.

    Raises :class:`NonFiniteLossError` from ``on_before_backward``; Lightning
    then ends without saving, so ``last.ckpt`` stays the last good checkpoint.
    """

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss).all()):
            ckpt = _last_checkpoint(trainer) or "none yet"
            raise NonFiniteLossError(
                f"train/loss is {loss.item()} at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                f"stopped before the update. Last good checkpoint: {ckpt}. "
                "Try a lower system.optimizer.lr or trainer.gradient_clip_val=1.0."
            )
