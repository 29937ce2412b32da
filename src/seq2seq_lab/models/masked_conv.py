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

__all__ = ["column_mask", "layer_widths", "masked_batch_norm", "pooled_columns", "run_masked"]


def _column_geometry(module: nn.Conv2d | nn.MaxPool2d) -> tuple[int, int, int]:
    """Kernel size, stride and padding of ``module`` along the columns."""
    return tuple(v if isinstance(v, int) else v[1] for v in (module.kernel_size, module.stride, module.padding))


def layer_widths(module: nn.Module, widths: torch.Tensor | int) -> torch.Tensor | int:
    """Valid widths ``(B,)`` (or one ``int``) after ``module`` of rows ``widths (B,)`` valid columns wide."""
    if not isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
        return widths
    k, s, p = _column_geometry(module)
    return (widths + 2 * p - k) // s + 1


def pooled_columns(pool: nn.MaxPool2d, widths: torch.Tensor | int) -> torch.Tensor | int | None:
    """How many of each row's ``widths (B,)`` valid input columns ``pool``'s valid windows read, such
    that with the columns from there on zero (and the rest non-negative) its output is zero past each
    row's valid width with no mask of its own; None where windows overlap past them (kernel > stride
    with less than kernel - 1 columns of padding). A window past a row's valid outputs starts at
    ``valid * stride - padding`` or later, and no valid window reads that far when kernel <= stride."""
    k, s, p = _column_geometry(pool)
    if k > s and p < k - 1:
        return None
    limit = layer_widths(pool, widths) * s - p  # where the first window past the valid ones starts
    return torch.minimum(widths, limit) if isinstance(widths, torch.Tensor) else min(widths, limit)


def column_mask(widths: torch.Tensor, columns: int, like: torch.Tensor) -> torch.Tensor:
    """``(B, 1, 1, columns)`` in ``like``'s dtype: 1 on each row's first ``widths[b]`` columns, else 0."""
    steps = torch.arange(columns, device=like.device)
    return (steps.unsqueeze(0) < widths.to(like.device).unsqueeze(1)).to(like.dtype)[:, None, None, :]


class _MaskedBatchNorm(torch.autograd.Function):
    """Batch normalisation of ``x (B, C, H, W)`` with per-channel statistics over the columns where
    ``mask (B, 1, 1, W)`` is 1, applied to every column: ``(x - mean) / sqrt(var + eps) * weight + bias``.
    ``start``: a column before which ``mask`` is 1 in every row (0 when not known), so that only the
    columns from it on are multiplied by the mask.

    The statistics are two masked sums in fp32; the normalisation, and in the backward the gradient
    through it with the parameters' gradients, are PyTorch's own fused batch-norm kernels with those
    statistics held fixed (as in eval mode); the gradient through the statistics is added as one more
    normalisation of ``x``. Every elementwise pass thus runs in ``x``'s dtype with fp32 arithmetic inside;
    the same formula through autograd ran 2.5-8 times slower under bf16 on CPU, mostly in mixed-dtype
    elementwise kernels. The backward is exact for any ``grad``, also on the masked columns.
    """

    @staticmethod
    def forward(ctx, x, mask, start, weight, bias, eps):
        acc = torch.promote_types(x.dtype, torch.float32)  # statistics in fp32 (or x's wider dtype)
        count = mask.sum(dtype=acc) * x.size(2)  # a bf16 count of more than 256 columns would round
        head, tail = x[..., :start], x[..., start:]  # (B, C, H, start): every row's valid columns; the rest
        masked = tail * mask[..., start:]
        mean = (head.sum((0, 2, 3), dtype=acc) + masked.sum((0, 2, 3), dtype=acc)) / count  # (C,)
        # E[x^2] - mean^2, summed in fp32 (each square rounded once in x's dtype)
        squares = (head * head).sum((0, 2, 3), dtype=acc) + (masked * tail).sum((0, 2, 3), dtype=acc)
        var = (squares / count - mean.square()).clamp(min=0)  # (C,), biased
        gamma = torch.ones_like(mean) if weight is None else weight
        ctx.save_for_backward(x, mask, mean, var, gamma, count)
        ctx.eps, ctx.start, ctx.affine = eps, start, (weight is not None, bias is not None)
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
        # mask * (2 d_s2 x + d_s1) = mask * (2 d_s2 / rstd * xhat + 2 d_s2 mean + d_s1): one more normalisation,
        # added in place (d_x is this backward's own), the mask applied from start on
        through_stats = torch.batch_norm(x, 2 * d_s2 / rstd, 2 * d_s2 * mean + d_s1, mean, var,
                                         False, 0.0, ctx.eps, False)
        start = ctx.start
        d_x[..., :start].add_(through_stats[..., :start])
        d_x[..., start:].addcmul_(through_stats[..., start:], mask[..., start:])
        return (d_x, None, None, d_weight if ctx.affine[0] else None, d_bias if ctx.affine[1] else None, None)


def masked_batch_norm(norm: nn.BatchNorm2d, x: torch.Tensor, mask: torch.Tensor, start: int = 0) -> torch.Tensor:
    """``norm`` in training mode over ``x (B, C, H, W)`` with statistics over ``mask (B, 1, 1, W)``'s
    columns only (its running statistics updated from them as ``nn.BatchNorm2d`` would); ``(B, C, H, W)``
    in ``x``'s dtype. The columns outside the mask are normalised too, with those statistics. ``start``:
    a column before which every row is valid (only the columns from it on are masked)."""
    weight, bias = (norm.weight, norm.bias) if norm.affine else (None, None)
    out, mean, var, count = _MaskedBatchNorm.apply(x, mask.to(x.dtype), start, weight, bias, norm.eps)
    if norm.track_running_stats:
        with torch.no_grad():
            norm.num_batches_tracked.add_(1)
            momentum = 1.0 / norm.num_batches_tracked.item() if norm.momentum is None else norm.momentum
            unbiased = var * count / (count - 1).clamp(min=1)
            norm.running_mean.lerp_(mean.to(norm.running_mean.dtype), momentum)
            norm.running_var.lerp_(unbiased.to(norm.running_var.dtype), momentum)
    return out


def _zero_past_(x: torch.Tensor, widths: torch.Tensor, start: int) -> torch.Tensor:
    """Sets the columns of ``x (B, C, H, W)`` past each row's ``widths (B,)`` to zero, in place; only
    columns from ``start`` on are touched (every row is valid before it). Returns ``x``."""
    tail = x[..., start:]  # (B, C, H, W - start), a view
    if tail.size(3):
        tail.mul_(column_mask(widths - start, tail.size(3), tail))
    return x


class _MaskedReLU(torch.autograd.Function):
    """ReLU of ``x (B, C, H, W)`` with the columns past each row's ``widths (B,)`` set to zero.

    The backward is ReLU's own (the gradient where the output is positive): the zeroed columns get
    none, with no second pass for a mask."""

    @staticmethod
    def forward(ctx, x, widths, start):
        out = _zero_past_(torch.relu(x), widths, start)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, out, 0), None, None


def _capturing_graph() -> bool:
    """Whether the stack runs under ``torch.export``, ``torch.jit.trace`` or ``torch.compile``, which
    read each layer's mask as a graph of tensor ops (no Python integer read from the widths)."""
    return torch.compiler.is_exporting() or torch.jit.is_tracing() or torch.compiler.is_compiling()


def run_masked(layers: nn.Sequential, x: torch.Tensor, widths: torch.Tensor, channels_last_from: int | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``layers`` over ``x (B, C, H, W)`` whose rows have ``widths (B,)`` valid columns; returns the maps
    ``(B, C', H', W')``, zero past each row's valid columns, and those valid widths ``(B,)``.

    ``channels_last_from``: the index of the first layer to run in the channels-last format (None: as given).

    In eager mode each layer masks only the columns from the narrowest row's width on (read once from
    ``widths``); a ReLU masks its own output (:class:`_MaskedReLU`), and before a pooling also the
    columns that only its windows past the valid ones read (:func:`pooled_columns`), so the pooling
    needs no mask. A captured graph multiplies each ReLU's and pooling's output by its whole mask.
    """
    capturing = _capturing_graph()
    start = 0 if capturing else max(int(widths.min()), 0)  # every row is valid before this column
    pool_ready = False  # the last ReLU zeroed every column the next pooling's windows past the valid ones read
    x = x * column_mask(widths, x.size(3), x)
    for i, layer in enumerate(layers):
        if i == channels_last_from:
            x = x.contiguous(memory_format=torch.channels_last)
        widths, start = layer_widths(layer, widths), max(layer_widths(layer, start), 0)
        if isinstance(layer, nn.BatchNorm2d) and layer.training:
            x = masked_batch_norm(layer, x, column_mask(widths, x.size(3), x), min(start, x.size(3)))
        elif isinstance(layer, nn.ReLU) and not capturing:
            following = layers[i + 1] if i + 1 < len(layers) else None
            keep_start = pooled_columns(following, start) if isinstance(following, nn.MaxPool2d) else None
            pool_ready = keep_start is not None
            keep, keep_start = (pooled_columns(following, widths), keep_start) if pool_ready else (widths, start)
            x = _MaskedReLU.apply(x, keep, min(max(keep_start, 0), x.size(3)))
        elif isinstance(layer, nn.MaxPool2d) and pool_ready:
            x, pool_ready = layer(x), False  # zero past each row's outputs already
        else:
            x = layer(x)
            if isinstance(layer, (nn.ReLU, nn.MaxPool2d)):  # what the next conv or pooling reads
                x = x * column_mask(widths, x.size(3), x)
    return x, widths
