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

``quantize_system`` adds post-training int8 quantization of a CRNN's conv stack
(``quantize=int8``; see :mod:`seq2seq_lab.models.quantize`), calibrated on a few
validation batches (``calibration_images``). It combines with any precision,
which then applies to the rest of the model.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import lightning as L
import torch
from lightning.fabric.plugins.precision import HalfPrecision, MixedPrecision, Precision

from seq2seq_lab.errors import ConfigError
from seq2seq_lab.models.crnn import CRNNEncoder
from seq2seq_lab.models.quantize import quantize_conv_stack

__all__ = ["PRECISIONS", "QUANTIZATIONS", "calibration_images", "precision_plugin", "quantize_system"]

# Lightning's names (and their short aliases) that run on CPU.
PRECISIONS = {"32-true": "32-true", "32": "32-true", "bf16-mixed": "bf16-mixed", "bf16": "bf16-mixed",
              "bf16-true": "bf16-true"}
QUANTIZATIONS = ("int8",)


def precision_plugin(precision: str | int, key: str = "precision") -> Precision:
    """Lightning's precision plugin for ``precision`` on CPU; ``key`` names the setting in errors."""
    name = PRECISIONS.get(str(precision))
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
    encoder = getattr(getattr(system, "net", None), "encoder", None)
    if not isinstance(encoder, CRNNEncoder):
        raise ConfigError(f"{key}={quantize}: int8 quantization covers the conv stack of CRNN models "
                          f"(CRNNAttention, CRNNCTC); this {type(system).__name__} has none")
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
