"""Re-evaluate a checkpoint on the test set: ``python -m seq2seq_lab.eval ckpt_path=...``.

The run's data, model and system come from the config stored in the
checkpoint; ``data.*`` and ``system.*`` overrides given here apply on top
(e.g. ``data.batch_size=1000`` or ``system.beam_width=5``).

``trainer.precision=bf16-true`` evaluates with bf16 weights; ``quantize=int8``
quantizes a CRNN's conv stack to int8 first, calibrated on the first
``calibration_batches`` validation batches (see :mod:`seq2seq_lab.precision`).

``breakdown=true`` (the default) adds, for a system that transcribes text lines, the
character accuracy per reference character type and the scores per font
(``test/char_acc/<type>``, ``test/by_font/<font>/...``; see :mod:`seq2seq_lab.eval_breakdown`),
logs the most frequent misreadings, and writes every test line's reading to ``test_lines.tsv``
beside ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from seq2seq_lab.assemble import load_trained
from seq2seq_lab.configs import config_dir
from seq2seq_lab.errors import ConfigError, reported_errors
from seq2seq_lab.eval_breakdown import breakdown_metrics
from seq2seq_lab.precision import calibration_images, check_quantize, quantize_system, resolve_trainer_precision

log = logging.getLogger(__name__)

LINES_FILE = "test_lines.tsv"   # with breakdown: every test line's reading (eval_breakdown.LINE_COLUMNS)


def evaluate_exported(cfg: DictConfig) -> dict[str, float | str | None]:
    """``backend=onnxruntime``: the test metrics of the exported file ``model_path``, on the test split of
    the checkpoint's data config (``ckpt_path``), by the PyTorch system's metric definitions."""
    from seq2seq_lab.deploy.exporting import exported_test_metrics
    from seq2seq_lab.deploy.loading import open_exported

    reader = open_exported(cfg.get("model_path"), cfg.get("threads"))
    datamodule, system = load_trained(cfg.ckpt_path, {"data": cfg.get("data") or {}, "system": cfg.get("system") or {}})
    metrics = exported_test_metrics(system.eval(), reader.meta, lambda x: reader.run(*x), datamodule.test_dataloader())
    return {"ckpt_path": str(Path(cfg.ckpt_path).resolve()), "model_path": str(Path(cfg.model_path).resolve()),
            "backend": "onnxruntime", **metrics}


def evaluate(cfg: DictConfig) -> dict[str, float | str | None]:
    backend = cfg.get("backend", "pytorch")
    if backend not in ("pytorch", "onnxruntime"):
        raise ConfigError(f"backend={backend!r}: must be one of pytorch, onnxruntime")
    if backend == "onnxruntime":
        return _write_metrics(cfg, evaluate_exported(cfg))
    quantize = check_quantize(cfg.get("quantize"))
    if quantize and cfg.trainer.get("accelerator") != "cpu":
        raise ConfigError(f"quantize={quantize} runs on CPU only; trainer.accelerator is "
                          f"{cfg.trainer.get('accelerator')!r} (use trainer=cpu)")
    datamodule, system = load_trained(cfg.ckpt_path, {"data": cfg.get("data") or {}, "system": cfg.get("system") or {}})
    quantize_system(system, quantize, calibration_images(datamodule, cfg.get("calibration_batches", 8)))
    resolve_trainer_precision(cfg.trainer)
    trainer = hydra.utils.instantiate(cfg.trainer, logger=False, callbacks=[])
    results = trainer.test(system, datamodule=datamodule)[0]
    metrics = {"ckpt_path": str(Path(cfg.ckpt_path).resolve()), "precision": str(cfg.trainer.get("precision")),
               "quantize": quantize, **{k: float(v) for k, v in results.items()}}
    if cfg.get("breakdown", True):
        metrics.update(breakdown_metrics(system, datamodule, trainer, Path(cfg.paths.output_dir) / LINES_FILE))
    return _write_metrics(cfg, metrics)


def _write_metrics(cfg: DictConfig, metrics: dict) -> dict:
    out = Path(cfg.paths.output_dir) / "metrics.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    log.info("wrote %s", out)
    return metrics


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
def main(cfg: DictConfig) -> None:
    with reported_errors(log):
        evaluate(cfg)


if __name__ == "__main__":
    main()
