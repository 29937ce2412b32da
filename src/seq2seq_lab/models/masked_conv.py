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


class _MaskedBatchNorm(torch.autograd.Function):
    """Batch normalisation of ``x (B, C, H, W)`` with per-channel statistics over the columns where
    ``mask (B, 1, 1, W)`` is 1, applied to every column: ``(x - mean) / sqrt(var + eps) * weight + bias``.

    The statistics are two masked sums in fp32; the normalisation, and in the backward the gradient
    through it with the parameters' gradients, are PyTorch's own fused batch-norm kernels with those
    statistics held fixed (as in eval mode); the gradient through the statistics is added as one more
    normalisation of ``x``. Every elementwise pass thus runs in ``x``'s dtype with fp32 arithmetic inside;
    the same formula through autograd ran 2.5-8 times slower under bf16 on CPU, mostly in mixed-dtype
    elementwise kernels. The backward is exact for any ``grad``, also on the masked columns.
    """

    @staticmethod
    def forward(ctx, x, mask, weight, bias, eps):
        acc = torch.promote_types(x.dtype, torch.float32)  # statistics in fp32 (or x's wider dtype)
        count = mask.sum(dtype=acc) * x.size(2)  # a bf16 count of more than 256 columns would round
        masked = x * mask
        mean = masked.sum((0, 2, 3), dtype=acc) / count  # (C,)
        # E[x^2] - mean^2, summed in fp32 (each square rounded once in x's dtype)
        var = ((masked * x).sum((0, 2, 3), dtype=acc) / count - mean.square()).clamp(min=0)  # (C,), biased
        gamma = torch.ones_like(mean) if weight is None else weight
        ctx.save_for_backward(x, mask, mean, var, gamma, count)
        ctx.eps, ctx.affine = eps, (weight is not None, bias is not None)
        ctx.mark_non_differentiable(mean, var, count)
        return torch.batch_norm(x, gamma, bias, mean, var, False, 0.0, eps, False), mean, var, count

    @staticmethod
    def backward(ctx, grad, _grad_mean, _grad_var, _grad_count):
        x, mask, mean, var, gamma, count = ctx.saved_tensors
        # with the statistics fixed: grad * gamma * rstd, sum(grad * xhat) (the weight's gradient), sum(grad)
        d_x, d_weight, d_bias = torch.ops.aten.native_batch_norm_backward(
            grad, x, gamma, mean, var, None, None, False, ctx.eps, [True, True, True])
        rstd = torch.rsqrt(var + ctx.eps)
        # through the statistics: var = s2 / n - mean^2, mean = s1 / n with s1, s2 the masked sums of x, x^2
        d_var = -0.5 * rstd.square() * gamma.to(rstd.dtype) * d_weight.to(rstd.dtype)
        d_s2 = d_var / count
        d_s1 = (-gamma.to(rstd.dtype) * rstd * d_bias.to(rstd.dtype) - 2 * mean * d_var) / count
        # mask * (2 d_s2 x + d_s1) = mask * (2 d_s2 / rstd * xhat + 2 d_s2 mean + d_s1): one more normalisation
        through_stats = torch.batch_norm(x, 2 * d_s2 / rstd, 2 * d_s2 * mean + d_s1, mean, var,
                                         False, 0.0, ctx.eps, False)
        d_x = d_x + through_stats * mask
        return d_x, None, d_weight if ctx.affine[0] else None, d_bias if ctx.affine[1] else None, None


def masked_batch_norm(norm: nn.BatchNorm2d, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``norm`` in training mode over ``x (B, C, H, W)`` with statistics over ``mask (B, 1, 1, W)``'s
    columns only (its running statistics updated from them as ``nn.BatchNorm2d`` would); ``(B, C, H, W)``
    in ``x``'s dtype. The columns outside the mask are normalised too, with those statistics."""
    weight, bias = (norm.weight, norm.bias) if norm.affine else (None, None)
    out, mean, var, count = _MaskedBatchNorm.apply(x, mask.to(x.dtype), weight, bias, norm.eps)
    if norm.track_running_stats:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = 1.0 / norm.num_batches_tracked.item() if norm.momentum is None else norm.momentum
            unbiased = var * count / (count - 1).clamp(min=1)
            norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
            norm.running_var.lerp_(unbiased.to(norm.running_var.dtype), momentum)
    return out


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
