"""The base system: optimiser and schedule, the train/val/test loop shape, best-metric tracking."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torchmetrics import MaxMetric, MeanMetric, Metric

from seq2seq_lab.models.seq2seq import Seq2Seq
from seq2seq_lab.systems.schedules import seconds


def check_vocabulary(model: torch.nn.Module, tokenizer: Any) -> None:
    """A text model's output size must be its tokenizer's vocabulary size."""
    if model.output_dim != tokenizer.vocab_size:
        raise ValueError(f"model.output_dim={model.output_dim} but the tokenizer has {tokenizer.vocab_size} tokens")


class BaseSystem(L.LightningModule):
    """Shared Lightning plumbing. Subclasses implement:

    * ``compute_loss(batch) -> (loss, outputs)``: plain torch, no logging (the
      benchmark's plain-PyTorch loop calls it too);
    * ``update_metrics(batch, outputs, stage)`` and ``stage_metrics(stage) -> dict``.

    ``val/<monitor>`` is tracked as ``val/<monitor>_best``.

    Args:
        optimizer: factory ``params -> Optimizer`` (a Hydra partial).
        scheduler: optional factory ``optimizer -> LRScheduler``; a ``total_steps``
            argument it leaves open is filled with the run's number of steps, a
            ``max_seconds`` one with ``trainer.max_time`` in seconds (None without one).
        scheduler_interval: ``epoch`` or ``step``.
        monitor: the validation metric whose best value is tracked.
        compile: run the network's forward passes through ``torch.compile`` (in place, so checkpoints
            keep their keys): the network's own forward, or a :class:`Seq2Seq`'s encoder and decoder,
            which the token systems call one by one. RNN layers run eagerly between compiled graphs
            (Dynamo leaves them out); the attention, cells' gates, projections and losses are fused.
    """

    # what callers may ask of it: classify (a label per input), decode (token sequences), transcribe (images -> text)
    capabilities: frozenset[str] = frozenset()

    def __init__(
        self,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        scheduler_interval: str = "epoch",
        monitor: str = "acc",
        compile: bool = False,
    ):
        super().__init__()
        self.compile_net = bool(compile)
        self._compiled = False
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.monitor = monitor
        # keyed by stage; "train" is not a valid ModuleDict key (nn.Module.train)
        self.losses = torch.nn.ModuleDict({f"{s}_loss": MeanMetric() for s in ("train", "val", "test")})
        self.best = MaxMetric()
        self.run_config: dict | None = None  # stored in checkpoints; set by the entry point
        self.tokenizer = None  # text systems set theirs (after this); its charset is stored in checkpoints
        # text systems: (label, reading) of each line of the last test pass, in its loader's order, so that
        # eval's breakdown need not decode the split again (eval_breakdown.recorded_readings)
        self.test_readings: list[tuple[str, str]] = []

    # -- subclass interface -------------------------------------------------
    def compute_loss(self, batch: dict) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def update_metrics(self, batch: dict, outputs: Any, stage: str) -> None:
        raise NotImplementedError

    def stage_metrics(self, stage: str) -> dict[str, Any]:
        """The metric objects of a stage, by log name (``acc``...)."""
        raise NotImplementedError

    def compiled_modules(self) -> list[torch.nn.Module]:
        """The modules whose forward :meth:`compile_modules` compiles."""
        net = self.net
        return [net.encoder, net.decoder] if isinstance(net, Seq2Seq) else [net]

    def compile_modules(self) -> None:
        """Compile :meth:`compiled_modules` in place (``nn.Module.compile``), once."""
        if not self._compiled:
            torch._logging.set_logs(dynamo=logging.ERROR)  # not a warning per data-dependent branch (graph break)
            for module in self.compiled_modules():
                module.compile()
            self._compiled = True

    # -- Lightning hooks ----------------------------------------------------
    def configure_model(self) -> None:
        if self.compile_net:
            self.compile_modules()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, _ = self.compute_loss(batch)
        self.losses["train_loss"].update(loss.detach())  # update, not forward: no per-batch compute
        self.log("train/loss", self.losses["train_loss"], on_step=False, on_epoch=True, prog_bar=True)
        # every trainer.log_every_n_steps: a long run shows its progress before the first epoch ends
        self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False)
        return loss

    def _eval_step(self, batch: dict, stage: str) -> None:
        loss, outputs = self.compute_loss(batch)
        self.losses[f"{stage}_loss"].update(loss)
        self.update_metrics(batch, outputs, stage)
        self.log(f"{stage}/loss", self.losses[f"{stage}_loss"], on_step=False, on_epoch=True, prog_bar=stage == "val")
        for name, metric in self.stage_metrics(stage).items():
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == self.monitor)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_test_epoch_start(self) -> None:
        self.test_readings = []

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int):
        return self(batch["inputs"], batch.get("input_lengths"))

    def on_train_start(self) -> None:
        self.best.reset()  # the sanity check must not count as a best value

    def keep_metrics_float32(self) -> None:
        """Return metric states that a ``*-true`` precision cast (``module.to(bf16)``) to float32.

        Lightning's ``bf16-true`` casts the whole module, metric states included, and
        a bf16 sum stops growing at 256: 1,000 test lines would report a 1-NED of 0.26.
        """
        for metric in self.modules():
            states = metric.metric_state.values() if isinstance(metric, Metric) else ()
            if any(isinstance(s, torch.Tensor) and s.is_floating_point() and s.dtype != torch.float32 for s in states):
                metric.set_dtype(torch.float32)

    def on_fit_start(self) -> None:
        self.keep_metrics_float32()

    def on_validation_start(self) -> None:
        self.keep_metrics_float32()

    def on_test_start(self) -> None:
        self.keep_metrics_float32()

    def on_validation_epoch_end(self) -> None:
        value = self.stage_metrics("val")[self.monitor].compute()
        self.best(value)
        self.log(f"val/{self.monitor}_best", self.best.compute(), prog_bar=True, sync_dist=True)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        kwargs = {}
        wanted = inspect.signature(self.scheduler_factory).parameters
        if "total_steps" in wanted:
            kwargs["total_steps"] = int(self.trainer.estimated_stepping_batches)
        if "max_seconds" in wanted:  # the time budget, for schedules that must end within it
            kwargs["max_seconds"] = seconds(((self.run_config or {}).get("trainer") or {}).get("max_time"))
        scheduler = self.scheduler_factory(optimizer=optimizer, **kwargs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.run_config is not None:
            checkpoint["run_config"] = self.run_config
        if self.tokenizer is not None:
            # the charset travels with the weights: eval/predict need no charset file of the training machine
            checkpoint["charset"] = list(self.tokenizer.chars)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.run_config = checkpoint.get("run_config", self.run_config)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
