"""Throughput of a configured model, Lightning vs a plain PyTorch loop:
``python -m seq2seq_lab.bench [experiment=...]``.

Both paths train a copy of the same freshly built system on the same
synthetic batches (same optimiser factory, same ``compute_loss``), alternating
``bench.repeats`` times; the medians are reported. The Lightning path is a
``Trainer`` from the run's trainer config with validation, logging,
checkpointing and the progress bar off, so the ratio is the framework's own
cost per training epoch.

Inference is timed in a plain loop, with the system converted to
``bench.infer_precision`` (default: ``trainer.precision``; see
:mod:`seq2seq_lab.precision`) and, with ``bench.quantize=int8``, its CRNN conv
stack quantized to int8.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import statistics
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.fabric.plugins.precision import Precision
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from seq2seq_lab.assemble import build_datamodule, build_system
from seq2seq_lab.configs import config_dir
from seq2seq_lab.errors import ConfigError, reported_errors
from seq2seq_lab.models.seq2seq import Seq2Seq
from seq2seq_lab.precision import check_quantize, precision_plugin, quantize_system, resolve_trainer_precision
from seq2seq_lab.validation import validate_config

log = logging.getLogger(__name__)

_CJK_IDEOGRAPHS = 0x9FFF - 0x4E00 + 1  # the CJK Unified Ideographs block
_NO_EOS = -1  # an id no token has: decoding runs every step


def _identity(batch: dict) -> dict:
    return batch


def as_loader(batches: list[dict]) -> DataLoader:
    """Serve ready batches through a DataLoader, as both training paths see them."""
    return DataLoader(batches, batch_size=None, collate_fn=_identity)


def write_synthetic_charset(size: int, directory: Path) -> Path:
    """A charset file of ``size`` CJK ideographs (U+4E00 onwards), one per line, in ``directory``."""
    if not 0 < size <= _CJK_IDEOGRAPHS:
        raise ValueError(f"bench.charset_size must be in [1, {_CJK_IDEOGRAPHS}], got {size}")
    path = directory / "charset.txt"
    path.write_text("".join(chr(0x4E00 + i) + "\n" for i in range(size)), encoding="utf-8")
    return path


REFERENCE_CHARSET_SIZE = 5990  # the classic Chinese corpus's charset: what a missing charset file is benched as


def bench_charset(cfg: DictConfig) -> None:
    """Point ``data.charset`` at a charset the bench can read: it reads no images, so it needs no corpus.

    ``bench.charset_size`` writes that many CJK ideographs. A charset file that does not exist is
    replaced by :data:`REFERENCE_CHARSET_SIZE` ideographs (the log says so), unless the config's
    ``synth`` block will generate it: the OCR data module then reads the charset from that block.
    """
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = cfg.bench.get("charset_size")
    charset = cfg.data.get("charset")
    if not size and (charset is None or str(charset).startswith("builtin:") or Path(charset).exists()
                     or cfg.get("synth")):
        return
    cfg.data.charset = str(write_synthetic_charset(size or REFERENCE_CHARSET_SIZE, out))
    if not size:
        log.info("data.charset %s does not exist: benching with %d CJK ideographs "
                 "(bench.charset_size=N for another size)", charset, REFERENCE_CHARSET_SIZE)


def synthetic_batches(datamodule, batch_size: int, count: int, seed: int, min_width_share: float | None = None
                      ) -> list[dict]:
    """``count`` random batches shaped as the data module's contract says: images ``(B, C, H, W)``
    of the maximum width with ``input_lengths (B,)`` (text lines), else sequences
    ``(B, input_length, input_dim)``; token targets ``(B, output_length)``, or labels ``(B,)``.

    ``input_lengths`` are all ``W`` without ``min_width_share``; with it each row's is drawn from
    ``[min_width_share * W, W]`` and the first row's is ``W``, as in a batch of lines of natural width
    bucketed by width (the encoder then runs its masked stack)."""
    contract = datamodule.contract
    if min_width_share is not None and not 0 < min_width_share <= 1:
        raise ConfigError(f"bench.min_width_share must be in (0, 1], got {min_width_share}")
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        if contract.task == "lines":
            inputs = torch.rand(batch_size, contract.channels, contract.height, contract.width, generator=gen) * 2 - 1
            widths = torch.full((batch_size,), contract.width)
            if min_width_share is not None:
                low = max(1, math.ceil(min_width_share * contract.width))
                widths = torch.randint(low, contract.width + 1, (batch_size,), generator=gen)
                widths[0] = contract.width
            batch = {"inputs": inputs, "input_lengths": widths}
        else:
            inputs = torch.rand(batch_size, contract.input_length, contract.input_dim, generator=gen)
            batch = {"inputs": inputs}
        tokenizer = contract.tokenizer
        if tokenizer is not None:
            length = contract.output_length
            chars = torch.randint(tokenizer.SOS + 2, tokenizer.PAD, (batch_size, length), generator=gen)
            chars[:, -1] = tokenizer.EOS
            batch.update(targets=chars, target_lengths=torch.full((batch_size,), length))
        else:
            batch["targets"] = torch.randint(0, contract.num_classes, (batch_size,), generator=gen)
        batches.append(batch)
    return batches


def plain_train(system: L.LightningModule, batches: DataLoader, precision: Precision) -> float:
    """Seconds for one pass over ``batches`` in a hand-written loop, at ``precision`` as a Trainer runs it."""
    precision.convert_module(system).train()
    optimizer = system.optimizer_factory(params=system.parameters())
    start = time.perf_counter()
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        with precision.forward_context():
            loss, _ = system.compute_loss(precision.convert_input(batch))
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def lightning_train(system: L.LightningModule, batches: DataLoader, trainer_cfg: DictConfig) -> float:
    """Seconds for one Lightning training epoch over ``batches`` (fit start-up excluded)."""
    trainer = hydra.utils.instantiate(
        trainer_cfg,
        max_epochs=1,
        min_epochs=1,
        limit_val_batches=0,
        logger=False,
        callbacks=[_EpochTimer()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    system.scheduler_factory = None  # same optimiser, no schedule, on both paths
    trainer.fit(system, train_dataloaders=batches)
    return trainer.callbacks[0].seconds


class _EpochTimer(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.seconds = time.perf_counter() - self.start


def infer(system: L.LightningModule, batch: dict):
    """Inference on one batch as the system runs it, except that a token decoder runs all of its
    ``output_length`` steps, as for lines of full length: a random model may emit EOS at any step
    (even the first), and the figure would then be that of a shorter decode."""
    net = system.net
    if isinstance(net, Seq2Seq):
        return net.generate(batch["inputs"], batch.get("input_lengths"), _NO_EOS, beam_width=system.beam_width)
    return system(batch["inputs"], batch.get("input_lengths"))


@torch.inference_mode()
def plain_infer(system: L.LightningModule, batches: DataLoader, precision: Precision) -> float:
    """Seconds to infer ``batches`` with ``system``, already converted to ``precision`` (``convert_module``)."""
    system.eval()
    start = time.perf_counter()
    for batch in batches:
        with precision.forward_context():
            infer(system, precision.convert_input(batch))
    return time.perf_counter() - start


def compiled_comparison(template: L.LightningModule, batches: DataLoader, warmup: DataLoader, precision: Precision,
                        repeats: int, eager_seconds: float) -> dict:
    """The plain loop again with the system's network compiled (``system.compile``): seconds per epoch
    (median of ``repeats``), the one-off compilation (the warm-up batches' time), and eager / compiled."""
    system = copy.deepcopy(template)
    system.compile_modules()
    start = time.perf_counter()
    plain_train(system, warmup, precision)
    compile_s = time.perf_counter() - start
    seconds = statistics.median(plain_train(system, batches, precision) for _ in range(repeats))
    return {"compiled_plain_epoch_seconds": round(seconds, 3), "compile_warmup_seconds": round(compile_s, 1),
            "compiled_over_eager_plain": round(eager_seconds / seconds, 3)}


def onnxruntime_comparison(template: L.LightningModule, contract, batches: list[dict], b: DictConfig,
                           workdir: Path) -> dict:
    """Greedy decoding images/s of PyTorch (fp32, bf16, int8 conv stack) and onnxruntime (fp32, int8)
    on the same ``batches`` with the same intra-op threads; medians over ``b.repeats``.

    The graph is ``template`` exported as :mod:`seq2seq_lab.export` writes it: every decoding step
    runs, as in PyTorch here (:func:`infer`). onnxruntime has no bf16 CPU kernels for these ops.
    """
    from seq2seq_lab.deploy.exporting import export_onnx, quantize_int8
    from seq2seq_lab.deploy.runtime import LineReader

    threads = torch.get_num_threads()
    fp32 = workdir / "bench.onnx"
    export_onnx(template.eval(), contract, fp32)
    int8 = workdir / "bench.int8.onnx"
    quantize_int8(fp32, int8)
    arrays = [[batch["inputs"].numpy()] + ([batch["input_lengths"].numpy()] if "input_lengths" in batch else [])
              for batch in batches]

    def ort_seconds(path: Path) -> float:
        reader = LineReader(path, threads=threads)
        reader.run(*arrays[0])  # warm-up
        times = []
        for _ in range(b.repeats):
            start = time.perf_counter()
            for feed in arrays:
                reader.run(*feed)
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    def torch_seconds(precision: str, quantize: str | None) -> float:
        system = copy.deepcopy(template)
        quantize_system(system, quantize, (batch["inputs"] for batch in batches[:2]), "bench.quantize")
        plugin = precision_plugin(precision, "bench precision")
        plugin.convert_module(system)
        loader = as_loader(batches)
        plain_infer(system, as_loader(batches[:1]), plugin)  # warm-up
        return statistics.median(plain_infer(system, loader, plugin) for _ in range(b.repeats))

    images = sum(batch["inputs"].size(0) for batch in batches)
    seconds = {"pytorch_fp32": torch_seconds("32-true", None), "pytorch_bf16": torch_seconds("bf16-true", None)}
    try:
        seconds["pytorch_int8"] = torch_seconds("32-true", "int8")
    except Exception as err:  # noqa: BLE001 - no x86 engine, or a model without a CRNN conv stack
        log.info("pytorch int8 skipped: %s", err)
    seconds.update(onnxruntime_fp32=ort_seconds(fp32), onnxruntime_int8=ort_seconds(int8))
    result = {f"{name}_samples_per_second": round(images / s, 1) for name, s in seconds.items()}
    result["onnxruntime_over_pytorch_fp32"] = round(seconds["pytorch_fp32"] / seconds["onnxruntime_fp32"], 2)
    result["onnxruntime_threads"] = threads
    return result


def bench(cfg: DictConfig) -> dict:
    L.seed_everything(cfg.seed)
    b = cfg.bench
    check_quantize(b.get("quantize"), "bench.quantize")
    validate_config(cfg, check_paths=False)  # the bench reads no data files
    bench_charset(cfg)
    datamodule = build_datamodule(cfg)
    template = build_system(cfg, datamodule)
    batches = synthetic_batches(datamodule, b.batch_size, max(b.train_batches, b.infer_batches), cfg.seed,
                                b.get("min_width_share"))
    train_batches, infer_batches = as_loader(batches[: b.train_batches]), as_loader(batches[: b.infer_batches])
    resolve_trainer_precision(cfg.trainer)
    precision = str(cfg.trainer.precision)
    train_precision = precision_plugin(precision, "trainer.precision")
    infer_precision = precision_plugin(b.get("infer_precision") or precision, "bench.infer_precision")
    inference_system = copy.deepcopy(template)
    calibration = (batch["inputs"] for batch in batches[: b.get("calibration_batches", 4)])
    quantize_system(inference_system, b.get("quantize"), calibration, "bench.quantize")
    infer_precision.convert_module(inference_system)
    warmup = as_loader(batches[: b.warmup_batches])
    plain_infer(inference_system, warmup, infer_precision)
    result = {
        "model": cfg.model._target_,
        "num_params": template.num_params,
        "batch_size": b.batch_size,
        "train_batches": b.train_batches if b.get("train", True) else 0,
        "precision": precision,
        "infer_precision": str(b.get("infer_precision") or precision),
        "quantize": b.get("quantize"),
        "threads": torch.get_num_threads(),
    }
    infer_s = []
    if b.get("train", True):
        plain_train(copy.deepcopy(template), warmup, train_precision)
        plain_s, lightning_s = [], []
        for _ in range(b.repeats):
            plain_s.append(plain_train(copy.deepcopy(template), train_batches, train_precision))
            lightning_s.append(lightning_train(copy.deepcopy(template), train_batches, cfg.trainer))
            infer_s.append(plain_infer(inference_system, infer_batches, infer_precision))
        samples = b.batch_size * b.train_batches
        result.update(
            plain_epoch_seconds=round(statistics.median(plain_s), 3),
            lightning_epoch_seconds=round(statistics.median(lightning_s), 3),
            plain_train_samples_per_second=round(samples / statistics.median(plain_s), 1),
            lightning_train_samples_per_second=round(samples / statistics.median(lightning_s), 1),
        )
        result["lightning_over_plain"] = round(result["lightning_epoch_seconds"] / result["plain_epoch_seconds"], 3)
    else:
        infer_s = [plain_infer(inference_system, infer_batches, infer_precision) for _ in range(b.repeats)]
    result["infer_samples_per_second"] = round(b.batch_size * b.infer_batches / statistics.median(infer_s), 1)
    if b.get("compile") and b.get("train", True):
        result.update(compiled_comparison(template, train_batches, warmup, train_precision, b.repeats,
                                          statistics.median(plain_s)))
    if b.get("onnxruntime"):
        result.update(onnxruntime_comparison(template, datamodule.contract, batches[: b.infer_batches], b,
                                             Path(cfg.paths.output_dir)))
    return result


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="bench")
def main(cfg: DictConfig) -> None:
    with reported_errors(log):
        result = bench(cfg)
    width = max(map(len, result))
    print("\n".join(f"{k:<{width}}  {v}" for k, v in result.items()))
    out = Path(cfg.paths.output_dir) / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
