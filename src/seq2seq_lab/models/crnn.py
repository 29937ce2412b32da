"""CRNN encoder for text-line images: a 7-layer conv stack, then bidirectional RNN layers.

The conv stack is the classic CRNN one (Shi et al., 2015) used by the PyTorch
seq2seq OCR reference: channels 64-128-256-256-512-512-512 (times
``width_mult``), 3x3 convolutions with a final 2x2, BatchNorm on layers 3, 5 and
7, and pooling that halves the height four times while keeping about a quarter
of the width. A ``32 x W`` image gives ``W // 4 + 1`` columns of features (71
for ``W = 280``), each column a step of the sequence the RNN layers read.
With ``column_stride=8`` the third pooling halves the width too: ``W // 8 + 1``
columns (36 for 280), so the layers after it, the RNN layers and the attention
read half as many steps.

Column ``j`` reads pixels ``4j - 27 .. 4j + 26`` (stride 8: ``8j - 39 .. 8j + 38``).
Given content widths, the conv stack reads each row as if it were alone, cropped to its
width (:func:`~seq2seq_lab.models.masked_conv.run_masked`): every layer's columns past the
row's valid ones are zeroed, as the layers' own padding would show the row's edge, so a
valid column's features do not depend on how wide the batch is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seq2seq_lab.models.cells import check_cell
from seq2seq_lab.models.encoders import lengths_to_mask, run_packed
from seq2seq_lab.models.masked_conv import run_masked
from seq2seq_lab.models.positions import CONCAT_DIM, add_positions, concat_positions

__all__ = ["BATCH_NORM", "COLUMN_STRIDES", "CONV_CHANNELS", "CRNNEncoder", "MaxPool2x2", "NARROW_CHANNELS_LAST",
           "conv_columns", "reverse_valid", "valid_conv_channels"]

CONV_CHANNELS = (64, 128, 256, 256, 512, 512, 512)
BATCH_NORM = {"reference": (2, 4, 6), "all": tuple(range(7))}  # conv layers followed by BatchNorm (0-based)
_RNN = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
COLUMN_STRIDES = (4, 8)  # pixels per feature column
MIN_WIDTH = 4  # the narrowest image the conv stack takes (two 2x2 poolings, then a 2x2 conv)
# channels_last BatchNorm and max pooling on a map of fewer channels than this run about twice as slow as
# on a contiguous one (the CPU kernels vectorise over the channels): training's first block of 8 channels
# at 32 x 280 took 69-76 ms against 38-48 per batch of 64, forward and backward; from 16 channels up
# channels_last is the faster. Training only: without gradients channels_last is as fast throughout
# (docs/ocr_zh.md, "The first block in the contiguous format")
NARROW_CHANNELS_LAST = 16


def conv_columns(width: int | torch.Tensor, stride: int = 4) -> int | torch.Tensor:
    """Feature columns the conv stack makes of ``width`` pixels: ``width // stride + 1``.

    (two 2x2 pools; a pool of stride ``(2, stride // 4)`` and one of stride ``(2, 1)``, each padded
    by one column; a 2x2 valid conv.)
    """
    return width // stride + 1


def valid_conv_channels(value: Any) -> bool:
    """Whether ``value`` is ``None`` or one positive integer per conv layer (``conv_channels``)."""
    if value is None:
        return True
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != len(CONV_CHANNELS):
        return False
    return all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in value)


class MaxPool2x2(nn.MaxPool2d):
    """2x2 max pooling with stride ``(2, stride_w)`` and ``pad_w`` columns of padding on each side,
    as ``nn.MaxPool2d(2, (2, stride_w), (0, pad_w))``.

    When no gradient is needed it takes the elementwise max of the strided
    sub-grids instead: the same values, without the int64 indices that the CPU
    kernel writes (2-3x faster; inference only, since the indices make the
    backward pass cheaper).
    """

    def __init__(self, stride_w: int = 2, pad_w: int = 0):
        super().__init__(2, (2, stride_w), (0, pad_w))
        self.stride_w, self.pad_w = stride_w, pad_w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            return super().forward(x)
        h = x.size(2) // 2 * 2
        rows = torch.maximum(x[:, :, 0:h:2], x[:, :, 1:h:2])  # (B, C, H/2, W)
        if self.pad_w:
            rows = F.pad(rows, (self.pad_w, self.pad_w), value=float("-inf"))
        end = (rows.size(3) - 2) // self.stride_w * self.stride_w + 1  # one past the last window's start
        return torch.maximum(rows[:, :, :, 0:end:self.stride_w], rows[:, :, :, 1 : end + 1 : self.stride_w])


def _conv_stack(channels: int, widths: list[int], batch_norm: tuple[int, ...], stride: int = 4) -> nn.Sequential:
    """``(B, C, H, W) -> (B, widths[-1], H // 16 - 1, W // stride + 1)``; BatchNorm after the convs in
    ``batch_norm``."""
    layers: list[nn.Module] = []
    pools = {0: MaxPool2x2(), 1: MaxPool2x2(), 3: MaxPool2x2(stride // 4, 1), 5: MaxPool2x2(1, 1)}
    sizes = [channels, *widths]
    for i, (c_in, c_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(widths) - 1
        norm = i in batch_norm
        layers.append(nn.Conv2d(c_in, c_out, 2 if last else 3, 1, 0 if last else 1, bias=not norm))
        if norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.ReLU(inplace=True))
        if i in pools:
            layers.append(pools[i])
    return nn.Sequential(*layers)


def _first_block_length(cnn: nn.Sequential) -> int:
    """Modules up to and including the stack's first pooling: its first block."""
    return next(i + 1 for i, module in enumerate(cnn) if isinstance(module, MaxPool2x2))


class _BiRNN(nn.Module):
    """A bidirectional RNN layer followed by a linear map: ``(B, T, I) -> (B, T, O)``.

    The linear map starts variance-preserving (weights ``N(0, 1 / fan_in)``, zero
    bias): with PyTorch's default, which is 3x smaller in variance, each layer
    passes on a fifth of its input's spread, and stacked layers hand the decoder
    an almost constant memory to start from (training then sits on a plateau).
    """

    def __init__(self, cell: str, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        self.rnn = _RNN[check_cell(cell)](input_dim, hidden_dim, bidirectional=True, batch_first=True)
        self.linear = nn.Linear(2 * hidden_dim, output_dim)
        nn.init.normal_(self.linear.weight, std=(2 * hidden_dim) ** -0.5)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``x (B, T, I)``, ``lengths (B,)`` valid steps or None -> ``(B, T, O)``; with lengths,
        each row is read over its valid steps only, so its padding cannot reach them.

        On a GPU the rows are packed. On CPU, where packed sequences train several times
        slower (most under bf16 autocast), they are not: the forward direction reads the rows
        as they are (the padding comes after the valid steps); the backward direction runs
        forward, on its own weights, over each row's valid steps reversed in place
        (:func:`reverse_valid`), and its outputs are put back in order the same way. Values on
        padding steps are left unspecified; the mask hides them.
        """
        if lengths is None or bool((lengths >= x.size(1)).all()):
            return self.linear(self.rnn(x)[0])
        lengths = lengths.clamp(max=x.size(1))
        if x.is_cuda:  # cuDNN reads packed rows fast, from its own flattened weights
            return self.linear(run_packed(self.rnn, x, lengths)[0])
        lengths = lengths.to(x.device)
        ahead = self._one_direction(x, reverse=False)  # (B, T, H)
        back = reverse_valid(self._one_direction(reverse_valid(x, lengths), reverse=True), lengths)
        return self.linear(torch.cat([ahead, back], dim=2))

    def _one_direction(self, x: torch.Tensor, reverse: bool) -> torch.Tensor:
        """``x (B, T, I) -> (B, T, H)``: one direction's weights run forward in time over ``x``."""
        rnn, suffix = self.rnn, "_reverse" if reverse else ""
        weights = [getattr(rnn, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        state = x.new_zeros(1, x.size(0), rnn.hidden_size)
        if isinstance(rnn, nn.LSTM):
            return torch.lstm(x, (state, state), weights, True, 1, 0.0, self.training, False, True)[0]
        run = torch.gru if isinstance(rnn, nn.GRU) else torch.rnn_tanh
        return run(x, state, weights, True, 1, 0.0, self.training, False, True)[0]


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``x (B, T, F)`` with each row's first ``lengths[b]`` steps reversed, the rest left in place."""
    steps = torch.arange(x.size(1), device=x.device).unsqueeze(0)  # (1, T)
    last = lengths.unsqueeze(1) - 1  # (B, 1)
    index = torch.where(steps <= last, last - steps, steps)  # (B, T)
    return x.gather(1, index.unsqueeze(2).expand(-1, -1, x.size(2)))


class CRNNEncoder(nn.Module):
    """Encodes ``images (B, C, H, W)`` into ``memory (B, T', K)``, ``mask (B, T')``, ``summary (B, K)``.

    The same contract as :class:`~seq2seq_lab.models.encoders.SequenceEncoder`:
    ``T' = W // column_stride + 1`` columns (:meth:`columns`), ``K = rnn_hidden``;
    ``summary`` is the mean of the memory over the valid columns.

    Args:
        channels: image channels (1 or 3).
        height: image height; a multiple of 16, at least 32 (the stack leaves
            ``H // 16 - 1`` rows, averaged into one when more than one).
        width_mult: scales the conv channels (1.0: 64...512; 0.25 is a slim CPU size).
        conv_channels: the 7 conv layers' channels outright (``None``: :data:`CONV_CHANNELS`
            times ``width_mult``), e.g. ``(8, 16, 32, 32, 128, 128, 128)``: the first four layers
            run at 2 to 32 times the resolution of the last three, so wide late layers cost far less
            than a wide stack.
        rnn_hidden: units per direction of each bidirectional layer, and its
            linear layer's output size ``K``.
        rnn_layers: bidirectional layers, each followed by a linear layer.
        cell: ``lstm`` | ``gru`` | ``rnn``.
        dropout: dropout on the input of every RNN layer above the first.
        channels_last: keep the conv weights and activations in the
            channels-last memory format (faster oneDNN convolutions on CPU); a first
            layer narrower than :data:`NARROW_CHANNELS_LAST` keeps its block contiguous.
        batch_norm: ``reference`` (BatchNorm on layers 3, 5 and 7, as the
            reference) or ``all`` (on every conv: trains out of the initial plateau
            far sooner; ``5 * 2 * C'`` more parameters).
        positions: add sinusoidal encodings of the column index to the memory
            (``True``; :func:`~seq2seq_lab.models.positions.sinusoid_positions`), so an attention
            decoder can tell the columns apart by place before it can by content; ``"concat"``
            appends them as :data:`~seq2seq_lab.models.positions.CONCAT_DIM` features of their own
            instead (``K = rnn_hidden + CONCAT_DIM``), leaving the BiLSTM's features as they are.
        column_stride: pixels per feature column, 4 (the reference: 71 columns for 280 pixels) or
            8 (36: the third pooling halves the width as well; the layers after it, the RNN
            layers and the attention cost about half).

    ``input_lengths (B,)`` given to :meth:`forward` are content widths in pixels (the
    ``input_lengths`` of the OCR batches). With them the conv stack reads each row as if alone,
    cropped to its width (:meth:`features`), the RNN layers read each row's valid columns only, and
    the mask and summary cover those columns: a row's memory on its valid columns is the same however
    wide its batch is.
    """

    def __init__(
        self,
        channels: int = 3,
        height: int = 32,
        width_mult: float = 1.0,
        rnn_hidden: int = 256,
        rnn_layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.0,
        channels_last: bool = False,
        batch_norm: str = "reference",
        positions: bool | str = False,
        column_stride: int = 4,
        conv_channels: Sequence[int] | None = None,
    ):
        super().__init__()
        if batch_norm not in BATCH_NORM:
            raise ValueError(f"batch_norm must be one of {sorted(BATCH_NORM)}, got {batch_norm!r}")
        if positions not in (True, False, "concat"):  # "auto" is the config's to resolve (assemble.resolve_auto_positions)
            raise ValueError(f"positions must be true, false or 'concat', got {positions!r}")
        if column_stride not in COLUMN_STRIDES:
            raise ValueError(f"column_stride must be one of {COLUMN_STRIDES}, got {column_stride!r}")
        if height < 32 or height % 16:
            raise ValueError(f"height must be a multiple of 16 and >= 32, got {height}")
        if width_mult <= 0 or rnn_hidden < 1 or rnn_layers < 1 or channels < 1:
            raise ValueError("width_mult, rnn_hidden, rnn_layers and channels must be positive")
        if not valid_conv_channels(conv_channels):
            raise ValueError(f"conv_channels must be null or {len(CONV_CHANNELS)} integers >= 1, got {conv_channels!r}")
        widths = list(conv_channels) if conv_channels is not None else [max(8, round(c * width_mult)) for c in CONV_CHANNELS]
        self.channels, self.height = channels, height
        self.conv_channels = widths
        self.column_stride = column_stride
        self.cnn = _conv_stack(channels, widths, BATCH_NORM[batch_norm], column_stride)
        self.channels_last = channels_last
        # layers [0, contiguous_head) run in the contiguous format even with channels_last: the first
        # block (conv, norm, ReLU, pool) of a stack whose first layer is narrow (NARROW_CHANNELS_LAST)
        self.contiguous_head = _first_block_length(self.cnn) if channels_last and widths[0] < NARROW_CHANNELS_LAST else 0
        if channels_last:
            self.cnn[self.contiguous_head:].to(memory_format=torch.channels_last)
        sizes = [widths[-1]] + [rnn_hidden] * rnn_layers
        self.rnns = nn.ModuleList(_BiRNN(cell, i, rnn_hidden, rnn_hidden) for i in sizes[:-1])
        self.dropout = nn.Dropout(dropout)
        self.output_dim = rnn_hidden + (CONCAT_DIM if positions == "concat" else 0)
        self.positions = positions

    def columns(self, width: int | torch.Tensor) -> int | torch.Tensor:
        """Steps ``T'`` of the memory for images ``width`` pixels wide (71 for 280; 36 at stride 8)."""
        return conv_columns(width, self.column_stride)

    def features(self, images: torch.Tensor, widths: torch.Tensor | None = None) -> torch.Tensor:
        """The conv stack: ``(B, C, H, W) -> (B, T', C')`` column features. With ``widths (B,)`` (pixels)
        each row's valid columns are those of the row alone, cropped to its width; a batch whose rows
        all fill it runs the stack as it is (an exported graph masks whatever the widths)."""
        exporting = torch.compiler.is_exporting() or torch.jit.is_tracing()
        if widths is not None and (exporting or bool((widths < images.size(3)).any())):
            maps = self._masked_maps(images, widths)
        else:
            maps = self._maps(images)  # (B, C', H', T')
        maps = maps.mean(2) if maps.size(2) > 1 else maps.squeeze(2)
        return maps.transpose(1, 2).contiguous()

    def _maps(self, images: torch.Tensor) -> torch.Tensor:
        """The conv stack's maps ``(B, C', H', T')`` of ``images (B, C, H, W)``."""
        if not self.channels_last:
            return self.cnn(images)
        if self.contiguous_head and torch.is_grad_enabled() and isinstance(self.cnn, nn.Sequential):
            # training (inference runs channels_last throughout, where the bench read it ~3% faster); a quantized
            # stack (quantize.py) runs whole
            head = self.contiguous_head
            return self.cnn[head:](self.cnn[:head](images).contiguous(memory_format=torch.channels_last))
        return self.cnn(images.contiguous(memory_format=torch.channels_last))

    def _masked_maps(self, images: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
        """The maps ``(B, C', H', T')`` of ``images (B, C, H, W)`` whose rows are ``widths (B,)`` pixels
        wide, each row's as if alone (zero past its valid columns)."""
        if isinstance(self.cnn, nn.Sequential):
            start = None
            if self.channels_last:
                start = self.contiguous_head if self.contiguous_head and torch.is_grad_enabled() else 0
            return run_masked(self.cnn, images, widths, start)[0]
        # a quantized stack (quantize.py) runs whole: each width's rows cropped to it
        maps, widths = None, widths.clamp(max=images.size(3))
        for width in widths.unique().tolist():
            rows = (widths == width).nonzero().squeeze(1)
            part = self._maps(images[rows, :, :, : max(width, MIN_WIDTH)])  # (n, C', H', t)
            if maps is None:
                maps = part.new_zeros(images.size(0), part.size(1), part.size(2), self.columns(images.size(3)))
            maps[rows, :, :, : part.size(3)] = part
        return maps

    def forward(
        self, images: torch.Tensor, input_lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``images (B, C, H, W)``, ``input_lengths (B,)`` pixel widths or None ->
        ``memory (B, T', K)``, ``mask (B, T')``, ``summary (B, K)``."""
        x = self.features(images, input_lengths)
        batch, steps, _ = x.shape
        lengths = None if input_lengths is None else self.columns(input_lengths).clamp(1, steps)
        for i, layer in enumerate(self.rnns):
            x = layer(self.dropout(x) if i else x, lengths)
        if self.positions == "concat":
            x = concat_positions(x)
        elif self.positions:
            x = add_positions(x)
        mask = lengths_to_mask(lengths, batch, steps, x.device)  # (B, T')
        if lengths is None:
            summary = x.mean(1)
        else:
            # summed in fp32 and rounded once, as x.mean(1) is: under bf16 a bf16 sum, rounded and then divided,
            # sent training off on another course from the first step (docs/ocr.md, "Variable widths")
            weights = mask.unsqueeze(2).float()
            summary = ((x * weights).sum(1, dtype=torch.float32) / weights.sum(1)).to(x.dtype)
        return x, mask, summary
