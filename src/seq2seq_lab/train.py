"""Train (and test) a system: ``python -m seq2seq_lab.train [overrides]``."""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, open_dict

from seq2seq_lab.assemble import (
    build_callbacks,
    build_datamodule,
    build_loggers,
    build_system,
    flat_hparams,
    swept_keys,
)
from seq2seq_lab.checkpoints import AtomicCheckpointIO, init_weights_from
from seq2seq_lab.configs import config_dir
from seq2seq_lab.ddp_hydra import ddp_ranks_share_job_dir
from seq2seq_lab.errors import reported_errors
from seq2seq_lab.gpu_claim import claim_gpu
from seq2seq_lab.runs import STOPPED_EXIT_CODE, failed_job_value, main_guard
from seq2seq_lab.precision import resolve_trainer_precision
from seq2seq_lab.validation import validate_config

log = logging.getLogger(__name__)


def resolve_ckpt_path(ckpt_path: str | None, output_dir: str, auto_resume: bool) -> str | None:
    """The checkpoint to resume from.

    ``last`` means this run dir's ``checkpoints/last.ckpt``; with ``auto_resume``
    that file is also used when no ``ckpt_path`` is given (a run restarted in its
    own run dir continues). None when there is nothing to resume.
    """
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    if ckpt_path == "last" or (ckpt_path is None and auto_resume):
        if last.is_file():
            log.info("resuming from %s", last)
            return str(last)
        if ckpt_path == "last":
            log.info("ckpt_path=last but %s does not exist yet: starting afresh", last)
        return None
    return ckpt_path


def log_hyperparams(loggers: list, params: dict, metric_names: list[str]) -> None:
    """Record the config; TensorBoard also gets the metrics its hparams tab should show."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(params, {name: float("nan") for name in metric_names})
        else:
            logger.log_hyperparams(params)


def launcher_choice() -> str | None:
    """The ``hydra/launcher`` option this job runs under (None outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.choices.get("hydra/launcher") if HydraConfig.initialized() else None


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit and test as the config says; returns the final logged metrics."""
    validate_config(cfg)  # a typo or a missing file is reported before any corpus is drawn
    if launcher_choice() == "gpu_per_job":  # this job's own GPU, held until it ends
        claim = claim_gpu(torch.cuda.device_count())
        with open_dict(cfg):
            cfg.trainer.accelerator, cfg.trainer.devices = "gpu", [claim.index]
        try:
            return _train(cfg)
        finally:
            claim.release()
    return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, float]:
    resolve_trainer_precision(cfg.trainer)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    if cfg.get("prepare_only"):  # draw (or find) the corpus now; a later run trains its whole budget
        datamodule.prepare_data()
        log.info("prepare_only: the data is ready (%s); nothing trained",
                 getattr(datamodule, "corpus_dir", None) or "nothing to draw")
        return {}
    system = build_system(cfg, datamodule)
    if cfg.get("init_from") and cfg.get("train"):
        kept = init_weights_from(system, cfg.init_from, cfg.get("init_missing", "error"))
        log.info("weights from %s (optimiser and schedule start afresh)", cfg.init_from)
        if kept:
            log.info("init_missing=keep: %d tensors not in it keep their initial values: %s", len(kept), ", ".join(kept))
    callbacks = build_callbacks(cfg.get("callbacks"))
    loggers = build_loggers(cfg.get("logger"))
    trainer: L.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False,
                                                 plugins=[AtomicCheckpointIO()])
    log_hyperparams(loggers, flat_hparams(cfg, swept_keys()), [f"val/{system.monitor}_best", f"test/{system.monitor}"])
    log.info("model: %s, %d parameters", cfg.model._target_, system.num_params)

    if cfg.get("train"):
        try:
            trainer.fit(
                system,
                datamodule=datamodule,
                ckpt_path=resolve_ckpt_path(cfg.get("ckpt_path"), cfg.paths.output_dir, cfg.get("auto_resume", False)),
                weights_only=True,
            )
        except SIGTERMException:  # GracefulStop has saved last.ckpt; the same command resumes
            raise SystemExit(STOPPED_EXIT_CODE) from None
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    if cfg.get("test"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("no best checkpoint: testing the current weights")
        trainer.test(system, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items()})
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
def main(cfg: DictConfig) -> float | None:
    """In a multirun a failed job is recorded in its dir (``error.txt``) and the sweep goes on."""

    def run() -> dict[str, float]:
        with reported_errors(log), ddp_ranks_share_job_dir(__spec__.name if __spec__ else "seq2seq_lab.train"):
            return train(cfg)

    metrics = main_guard(run, cfg.paths.output_dir)
    return failed_job_value() if metrics is None else metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
