"""Running a conv stack over a batch of images of different content widths, each row as if alone.

A row of content width ``w`` padded to the batch's ``W`` columns gives, on its valid columns, the
features the stack gives the row cropped to ``w`` columns: after every layer the columns past each
row's valid width are set to zero, which is what the next layer's zero padding (a conv) or its
padding of ``-inf`` (a max pooling of non-negative values, after a ReLU) shows the row alone. In
training, BatchNorm takes its statistics over the valid columns only.

Layers are read from an ``nn.Sequential`` of ``Conv2d``, ``BatchNorm2d``, ``ReLU`` and
``MaxPool2d`` (the CRNN stack); their width arithmetic (``(w + 2p - k) // s + 1``) gives each
layer's valid widths.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["column_mask", "layer_widths", "masked_batch_norm", "run_masked"]


def layer_widths(module: nn.Module, widths: torch.Tensor) -> torch.Tensor:
    """Valid widths ``(B,)`` after ``module`` of rows ``widths (B,)`` valid columns wide."""
    if not isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
        return widths
    k, s, p = (v if isinstance(v, int) else v[1] for v in (module.kernel_size, module.stride, module.padding))
    return torch.div(widths + 2 * p - k, s, rounding_mode="floor") + 1


def column_mask(widths: torch.Tensor, columns: int, like: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 1, columns)`` in ``like``'s dtype: 1 on each row's first ``widths[b]`` columns, else 0."""
    steps = torch.arange(columns, device=like.device)
    return (steps.unsqueeze(0) < widths.to(like.device).unsqueeze(1)).to(like.dtype)[:, None, None, :]


def masked_batch_norm(norm: nn.BatchNorm2d, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``norm`` in training mode over ``x (B, C, H, W)`` with statistics over ``mask (B, 1, 1, W)``'s
    columns only (its running statistics updated from them as ``nn.BatchNorm2d`` would); ``(B, C, H, W)``."""
    values, mask = x.float(), mask.float()  # a bf16 count of more than 256 columns would be rounded
    count = mask.sum() * x.size(2)
    mean = (values * mask).sum((0, 2, 3)) / count  # (C,)
    var = ((values - mean[:, None, None]).square() * mask).sum((0, 2, 3)) / count  # (C,), biased
    if norm.track_running_stats:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = 1.0 / norm.num_batches_tracked.item() if norm.momentum is None else norm.momentum
            unbiased = var * count / (count - 1).clamp(min=1)
            norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
            norm.running_var.lerp_(unbiased.to(norm.running_var.dtype), momentum)
    out = (values - mean[:, None, None]) * torch.rsqrt(var + norm.eps)[:, None, None]
    if norm.affine:
        out = out * norm.weight[:, None, None] + norm.bias[:, None, None]
    return out.to(x.dtype)


def run_masked(layers: nn.Sequential, x: torch.Tensor, widths: torch.Tensor, channels_last_from: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``layers`` over ``x (B, C, H, W)`` whose rows have ``widths (B,)`` valid columns; returns the maps
    ``(B, C', H', W')``, zero past each row's valid columns, and those valid widths ``(B,)``.

    ``channels_last_from``: the index of the first layer to run in the channels-last format (None: as given).
    """
    x = x * column_mask(widths, x.size(3), x)
    for i, layer in enumerate(layers):
        if i == channels_last_from:
            x = x.contiguous(memory_format=torch.channels_last)
        widths = layer_widths(layer, widths)
        if isinstance(layer, nn.BatchNorm2d) and layer.training:
            x = masked_batch_norm(layer, x, column_mask(widths, x.size(3), x))
        else:
            x = layer(x)
        if isinstance(layer, (nn.ReLU, nn.MaxPool2d)):  # what the next conv or pooling reads
            x = x * column_mask(widths, x.size(3), x)
    return x, widths
