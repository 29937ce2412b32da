"""Numeric precision for inference and for loops that run outside a Lightning ``Trainer``
(the bench's plain loops, ``predict``).

``precision_plugin`` returns Lightning's own plugin for a ``precision`` setting,
so a plain loop converts the model once (``convert_module``), converts each batch
(``convert_input``) and runs the forward pass in ``forward_context()``, exactly as
a Trainer would:

- ``32-true``: nothing changes.
- ``bf16-mixed``: fp32 weights, each forward pass under bf16 autocast (weights
  are cast to bf16 on every call).
- ``bf16-true``: weights and float inputs cast to bf16 once. For inference on
  CPUs with bf16 dot products (AVX512-BF16, AMX) this is the fast setting: no
  per-call weight casts.

``precision=auto`` (:func:`resolve_precision`) chooses from what the hardware does
natively: on CPU ``bf16-mixed`` only with bf16 instructions (AVX512_BF16 or AMX;
elsewhere bf16 is emulated and about 12x slower than fp32), else ``32-true``; on
GPU ``bf16-mixed`` where the GPU has bf16, else ``16-mixed`` (the CTC loss is then
computed in fp32: autocast runs ``log_softmax`` and ``ctc_loss`` in fp32, and
``models.ctc.ctc_loss`` casts its input). The choice is logged; an explicit
setting always wins.

``quantize_system`` adds post-training int8 quantization of a CRNN's conv stack
(``quantize=int8``; see :mod:`seq2seq_lab.models.quantize`), calibrated on a few
validation batches (``calibration_images``). It combines with any precision,
which then applies to the rest of the model.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterable, Iterator

import lightning as L
import torch
from lightning.fabric.plugins.precision import HalfPrecision, MixedPrecision, Precision

from seq2seq_lab.errors import ConfigError
from seq2seq_lab.models.crnn import CRNNEncoder
from seq2seq_lab.models.ctc import CTCModel
from seq2seq_lab.models.seq2seq import Seq2Seq
from seq2seq_lab.models.quantize import quantize_conv_stack

__all__ = ["PRECISIONS", "QUANTIZATIONS", "calibration_images", "cpu_has_bf16", "precision_plugin",
           "native_precision", "quantize_system", "resolve_precision", "resolve_trainer_precision",
           "trains_fp32_on_cpu", "uses_gpu"]

log = logging.getLogger(__name__)

# Lightning's names (and their short aliases) that run on CPU.
PRECISIONS = {"32-true": "32-true", "32": "32-true", "bf16-mixed": "bf16-mixed", "bf16": "bf16-mixed",
              "bf16-true": "bf16-true"}
QUANTIZATIONS = ("int8",)


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 dot products (AVX512_BF16 or AMX-BF16)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def uses_gpu(accelerator: str) -> bool:
    """Whether a trainer's ``accelerator`` setting trains on a GPU here (``auto``: where CUDA is available)."""
    return str(accelerator) in ("gpu", "cuda") or (str(accelerator) == "auto" and torch.cuda.is_available())


def native_precision(accelerator: str = "cpu") -> tuple[str, str]:
    """What ``precision=auto`` picks for ``accelerator`` on this machine, and why (module docstring)."""
    if uses_gpu(accelerator):
        chosen = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return chosen, "the GPU has bf16" if chosen == "bf16-mixed" else "the GPU lacks bf16"
    chosen = "bf16-mixed" if cpu_has_bf16() else "32-true"
    return chosen, "the CPU has avx512_bf16/amx_bf16" if chosen == "bf16-mixed" else "the CPU has no native bf16"


def resolve_precision(precision: str | int | None, accelerator: str = "cpu", key: str = "trainer.precision") -> str:
    """``precision`` itself, or for ``auto`` (and None) what this machine runs natively; the choice is logged."""
    if precision is not None and str(precision) != "auto":
        return str(precision)
    chosen, why = native_precision(accelerator)
    log.info("%s=auto: %s (%s)", key, chosen, why)
    return chosen


def trains_fp32_on_cpu(precision: str | int | None, accelerator: str = "cpu") -> bool:
    """Whether a trainer set to ``precision`` and ``accelerator`` trains in fp32 on this machine's CPU
    (``auto`` resolved as :func:`resolve_precision` would, without logging): the case whose time budget
    holds the fewest steps (no bf16 instructions)."""
    if uses_gpu(accelerator):
        return False
    chosen = native_precision(accelerator)[0] if precision is None or str(precision) == "auto" else str(precision)
    return PRECISIONS.get(chosen) == "32-true"


def resolve_trainer_precision(trainer_cfg) -> None:
    """Replace ``auto`` in a trainer config's ``precision`` by the choice for its accelerator (in place)."""
    from omegaconf import open_dict

    with open_dict(trainer_cfg):
        trainer_cfg.precision = resolve_precision(trainer_cfg.get("precision"), trainer_cfg.get("accelerator", "cpu"))


def precision_plugin(precision: str | int, key: str = "precision") -> Precision:
    """Lightning's precision plugin for ``precision`` on CPU; ``key`` names the setting in errors."""
    name = PRECISIONS.get(resolve_precision(precision, "cpu", key))
    if name is None:
        raise ConfigError(f"{key}={precision!r}: must be one of {sorted(PRECISIONS)}")
    if name == "bf16-mixed":
        return MixedPrecision("bf16-mixed", "cpu")
    if name == "bf16-true":
        return HalfPrecision("bf16-true")
    return Precision()


def check_quantize(quantize: str | None, key: str = "quantize") -> str | None:
    """``quantize`` if it is null or a known scheme, else a :class:`ConfigError` naming ``key``."""
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"{key}={quantize!r}: must be null or one of {list(QUANTIZATIONS)}")
    return quantize


def quantize_system(system: L.LightningModule, quantize: str | None, calibration: Iterable[torch.Tensor],
                    key: str = "quantize") -> None:
    """Quantize ``system``'s CRNN conv stack to int8 in place (``quantize="int8"``), calibrated on
    the image batches ``(B, C, H, W)`` of ``calibration``; nothing for ``quantize=None``."""
    if check_quantize(quantize, key) is None:
        return
    net = system.net
    encoder = net.encoder if isinstance(net, (Seq2Seq, CTCModel)) else None
    if not isinstance(encoder, CRNNEncoder):
        raise ConfigError(f"{key}={quantize}: int8 quantization covers the conv stack of CRNN models "
                          f"(CRNNAttention, CRNNCTC); this {type(system).__name__} has none")
    engines = torch.backends.quantized.supported_engines
    if "x86" not in engines:
        raise ConfigError(f"{key}={quantize}: int8 needs PyTorch's x86 quantized engine, which this CPU "
                          f"or build lacks (engines here: {', '.join(engines)}); leave {key} unset")
    system.eval()
    quantize_conv_stack(encoder, calibration)


def calibration_images(datamodule: L.LightningDataModule, batches: int,
                       key: str = "calibration_batches") -> Iterator[torch.Tensor]:
    """The images ``(B, C, H, W)`` of the first ``batches`` validation batches: int8 calibration
    data that looks like the test data without being it. Lazy: the data is read on iteration."""
    if int(batches) < 1:
        raise ConfigError(f"{key}={batches}: must be >= 1")
    seen = 0
    for batch in itertools.islice(datamodule.val_dataloader(), int(batches)):
        seen += 1
        yield batch["inputs"]
    if not seen:
        raise ConfigError("int8 calibration reads the validation split, and it has no data: "
                          "set data.val (or data.val_fraction)")
