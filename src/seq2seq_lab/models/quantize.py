"""Post-training static int8 quantization of a CRNN conv stack, for CPU inference.

The conv stack is most of a CRNN's inference time, and on x86 CPUs with VNNI
int8 convolutions run about twice as fast as bf16 ones. :func:`quantize_conv_stack`
folds each BatchNorm into its conv, fuses the ReLUs, observes the activation
ranges on a few calibration batches and swaps ``encoder.cnn`` for the int8 result
(eager-mode ``torch.ao.quantization``, ``x86`` backend). Everything after the
conv stack (RNN layers, decoder) keeps its float weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torch import nn

from seq2seq_lab.models.crnn import CRNNEncoder

__all__ = ["QuantizedConvStack", "has_vnni", "quantize_conv_stack"]


class QuantizedConvStack(nn.Module):
    """An int8 conv stack: ``images (B, C, H, W)`` of any float dtype -> ``maps (B, C', H', T')``
    in the same dtype (quantized on the way in, dequantized on the way out)."""

    def __init__(self, stack: nn.Sequential):
        super().__init__()
        self.stack = stack  # QuantStub, fused int8 layers, DeQuantStub

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.stack(images.float()).to(images.dtype)


def _between_stubs(cnn: nn.Sequential) -> tuple[nn.Sequential, list[list[str]]]:
    """``cnn`` between quant/dequant stubs, with plain pooling layers (the int8 kernels pool
    quantized tensors), and the names of each ``conv [bn] relu`` run to fuse."""
    from torch.ao.quantization import DeQuantStub, QuantStub

    layers = [nn.MaxPool2d(m.kernel_size, m.stride, m.padding) if isinstance(m, nn.MaxPool2d) else m for m in cnn]
    stack = nn.Sequential(QuantStub(), *layers, DeQuantStub())
    names = [str(i) for i in range(len(stack))]
    runs, i = [], 0
    while i < len(stack):
        if isinstance(stack[i], nn.Conv2d):
            run = [names[i]]
            for kind in (nn.BatchNorm2d, nn.ReLU):
                if i + len(run) < len(stack) and isinstance(stack[i + len(run)], kind):
                    run.append(names[i + len(run)])
            runs.append(run)
            i += len(run)
        else:
            i += 1
    return stack, runs


def has_vnni() -> bool:
    """Whether this CPU has int8 dot products (AVX512-VNNI / AVX-VNNI)."""
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    return bool(probe and probe())


@torch.no_grad()
def quantize_conv_stack(encoder: CRNNEncoder, calibration: Iterable[torch.Tensor],
                        reduce_range: bool | None = None) -> None:
    """Replace ``encoder.cnn`` by its int8 version, calibrated on ``calibration`` image batches
    ``(B, C, H, W)`` (a few hundred images that look like the data). In place; the encoder
    should be in eval mode and stays on CPU.

    ``reduce_range`` quantizes activations to 7 bits, which CPUs without VNNI need to
    avoid overflow in their int8 dot products; None: only on such CPUs (8 bits, and
    better accuracy, where VNNI is present).
    """
    try:
        from torch.ao import quantization as tq
    except ImportError as err:  # pragma: no cover - depends on the installed PyTorch
        raise RuntimeError(f"int8 quantization needs torch.ao.quantization, which PyTorch "
                           f"{torch.__version__} lacks") from err
    if "x86" not in torch.backends.quantized.supported_engines:
        raise RuntimeError(f"int8 quantization needs the x86 quantized engine; this PyTorch has "
                           f"{torch.backends.quantized.supported_engines}")
    torch.backends.quantized.engine = "x86"
    stack, runs = _between_stubs(encoder.cnn)
    stack.eval()
    with warnings.catch_warnings():  # eager-mode quantization announces its own deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", "Please use quant_min and quant_max", UserWarning)
        warnings.filterwarnings("ignore", ".*quantized tensor creation functions", UserWarning)
        stack = tq.fuse_modules(stack, runs)
        reduce = (not has_vnni()) if reduce_range is None else reduce_range
        stack.qconfig = tq.QConfig(activation=tq.HistogramObserver.with_args(reduce_range=reduce),
                                   weight=tq.default_per_channel_weight_observer)
        tq.prepare(stack, inplace=True)
        seen = 0
        for images in calibration:
            stack(images.float())
            seen += 1
        if not seen:
            raise ValueError("int8 calibration needs at least one batch of images")
        tq.convert(stack, inplace=True)
    encoder.cnn = QuantizedConvStack(stack)
