"""OCR models over a :class:`CRNNEncoder`: ``CRNNAttention`` (the one recurrent decoder) and ``CRNNCTC``.

Argument names follow the MNIST builders (:mod:`builders`). At the reference
size (``width_mult=1``, ``rnn_hidden=256``, ``hidden_dim=embed_dim=256``,
position attention, ``output_context=False``) a 280 x 32 RGB model with a
vocabulary of ``V`` tokens has ``9,118,919 + 513 V`` parameters: 12,193,841 for the
5,990-character Chinese charset (``V = 5994``; the reference: 12.08M).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from seq2seq_lab.models.attention import Attention, PositionAttention
from seq2seq_lab.models.arguments import check_arguments
from seq2seq_lab.models.crnn import CRNNEncoder
from seq2seq_lab.models.ctc import CTCModel
from seq2seq_lab.models.decoder import RecurrentDecoder
from seq2seq_lab.models.feedback import TokenFeedback
from seq2seq_lab.models.heads import CTCHead
from seq2seq_lab.models.seq2seq import Seq2Seq

__all__ = ["CRNNAttention", "CRNNCTC"]


def _with_slots(
    attention: str | Callable[..., Attention], columns: int, input_length: int | None
) -> str | Callable[..., Attention]:
    """Give position attention ``input_length`` (default: ``columns``) slots unless its factory set them."""
    slots = input_length or columns
    if attention == "position":
        attention = functools.partial(PositionAttention, max_positions=slots)
    elif isinstance(attention, functools.partial) and attention.func is PositionAttention:
        if attention.keywords.get("max_positions") is None:
            attention = functools.partial(attention, max_positions=slots)
    else:
        return attention
    if attention.keywords["max_positions"] < columns:
        raise ValueError(
            f"position attention has {attention.keywords['max_positions']} slots but {columns} encoder "
            f"columns; set input_length (model.input_length) to {columns} = width // column_stride + 1"
        )
    return attention


def _encoder(channels, height, width, width_mult, rnn_hidden, rnn_layers, encoder_cell, dropout,
             channels_last, batch_norm, column_stride, conv_channels, positions=False) -> CRNNEncoder:
    check_arguments(channels=channels, height=height, width=width, rnn_hidden=rnn_hidden, rnn_layers=rnn_layers,
                    dropout=dropout, encoder_cell=encoder_cell, batch_norm=batch_norm, column_stride=column_stride,
                    conv_channels=conv_channels)
    return CRNNEncoder(channels, height, width_mult, rnn_hidden, rnn_layers, encoder_cell, dropout, channels_last,
                       batch_norm, positions, column_stride, conv_channels)


def CRNNAttention(
    output_length: int,
    output_dim: int,
    channels: int = 3,
    height: int = 32,
    width: int = 280,
    input_length: int | None = None,
    hidden_dim: int = 256,
    embed_dim: int = 256,
    depth: int = 1,
    cell: str = "gru",
    attention: str | Callable[..., Attention] = "position",
    dropout: float = 0.0,
    teacher_force: float | bool = 1.0,
    width_mult: float = 1.0,
    rnn_hidden: int = 256,
    rnn_layers: int = 2,
    encoder_cell: str = "lstm",
    output_context: bool = False,
    channels_last: bool = False,
    batch_norm: str = "reference",
    ctc_head: bool = False,
    positions: bool | str = False,
    column_stride: int = 4,
    conv_channels: Sequence[int] | None = None,
) -> Seq2Seq:
    """CRNN encoder + the :class:`RecurrentDecoder` in token mode:
    ``images (B, channels, height, width) -> logits (B, output_length, output_dim)``.

    Args:
        output_length: decoding steps (max characters + EOS).
        output_dim: vocabulary size (the tokenizer's, SOS/EOS/PAD/UNK included).
        channels, height, width: the input images.
        input_length: encoder columns the position attention has slots for
            (default and minimum: ``width // column_stride + 1``); other attentions ignore it.
        hidden_dim: decoder units per layer; ``depth`` decoder layers of ``cell``.
        embed_dim: token embedding size.
        attention: a registered name or a factory (``mlp``, ``dot``, ``general``,
            ``concat``, ``position``, ``none``).
        dropout: in the encoder's RNN stack and between decoder layers.
        teacher_force: training teacher forcing ratio.
        width_mult, conv_channels, rnn_hidden, rnn_layers, encoder_cell, channels_last, batch_norm,
            column_stride: see :class:`CRNNEncoder`.
        output_context: project ``[h; context]`` (Luong) instead of ``h`` alone (the reference).
        ctc_head: add a :class:`CTCHead` on the encoder memory (``(K + 1) V`` parameters) for
            the OCR system's auxiliary CTC loss (``system.ctc_weight``).
        positions: add sinusoidal column encodings to the encoder memory (``True``, see
            :class:`CRNNEncoder`), or ``"keys"``: only to the keys the attention scores, so the
            context the decoder reads holds no encodings (see :class:`RecurrentDecoder`), or
            ``"concat"``: appended to the memory as features of their own (see :class:`CRNNEncoder`).
    """
    check_arguments(output_length=output_length, output_dim=output_dim, hidden_dim=hidden_dim, embed_dim=embed_dim,
                    depth=depth, teacher_force=teacher_force, cell=cell)
    if positions not in (True, False, "keys", "concat"):  # "auto" is the config's to resolve (assemble.resolve_auto_positions)
        raise ValueError(f"positions must be true, false, 'keys' or 'concat', got {positions!r}")
    encoder = _encoder(channels, height, width, width_mult, rnn_hidden, rnn_layers, encoder_cell, dropout,
                       channels_last, batch_norm, column_stride, conv_channels,
                       positions if positions in (True, "concat") else False)
    columns = encoder.columns(width)
    decoder = RecurrentDecoder(
        TokenFeedback(output_dim, embed_dim),
        memory_dim=encoder.output_dim,
        summary_dim=encoder.output_dim,
        hidden_sizes=[hidden_dim] * depth,
        output_dim=output_dim,
        cell=cell,
        attention=_with_slots(attention, columns, input_length),
        dropout=dropout,
        output_context=output_context,
        key_positions=positions == "keys",
    )
    head = CTCHead(encoder.output_dim, output_dim) if ctc_head else None
    return Seq2Seq(encoder, decoder, output_length, float(teacher_force), ctc_head=head)


def CRNNCTC(
    output_dim: int,
    channels: int = 3,
    height: int = 32,
    width: int = 280,
    dropout: float = 0.0,
    width_mult: float = 1.0,
    rnn_hidden: int = 256,
    rnn_layers: int = 2,
    encoder_cell: str = "lstm",
    channels_last: bool = False,
    batch_norm: str = "reference",
    column_stride: int = 4,
    conv_channels: Sequence[int] | None = None,
) -> CTCModel:
    """CRNN encoder + a CTC head: ``images (B, C, H, W) -> log_probs (B, width // column_stride + 1, output_dim)``.

    ``output_dim`` is the tokenizer's vocabulary; the blank is id 0 (SOS), see
    :class:`~seq2seq_lab.systems.ctc.CTCSystem`. Other arguments as :func:`CRNNAttention`.
    """
    check_arguments(output_dim=output_dim)
    encoder = _encoder(channels, height, width, width_mult, rnn_hidden, rnn_layers, encoder_cell, dropout,
                       channels_last, batch_norm, column_stride, conv_channels)
    model = CTCModel(encoder, output_dim, dropout)
    return model
