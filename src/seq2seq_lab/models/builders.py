"""``SimpleSeq2Seq`` and ``AttentionSeq2Seq`` with the Keras seq2seq library's argument names.

Two output modes:

* vector mode (``embed_dim=None``, the Keras behaviour): each step emits an
  ``output_dim`` vector and feeds it back; the top decoder layer has
  ``output_dim`` units and is the output (no projection).
* token mode (``embed_dim`` set): ``output_dim`` is a vocabulary; each step
  emits logits, feeds back the (target or predicted) token through an
  embedding, and ``teacher_force`` is the training ratio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from seq2seq_lab.models.arguments import check_arguments
from seq2seq_lab.models.attention import Attention
from seq2seq_lab.models.decoder import RecurrentDecoder
from seq2seq_lab.models.encoders import SequenceEncoder
from seq2seq_lab.models.feedback import OutputFeedback, TokenFeedback
from seq2seq_lab.models.seq2seq import Seq2Seq


def split_depth(depth: int | Sequence[int]) -> tuple[int, int]:
    """``depth`` as ``(encoder, decoder)`` layers: an int serves both."""
    check_arguments(depth=depth)
    return (depth, depth) if isinstance(depth, int) else tuple(depth)  # type: ignore[return-value]


def _build(
    input_length: int,
    input_dim: int,
    hidden_dim: int,
    output_length: int,
    output_dim: int,
    *,
    depth: int | Sequence[int] = 1,
    dropout: float = 0.0,
    bidirectional: bool,
    peek: bool,
    teacher_force: float | bool = False,
    cell: str = "lstm",
    attention: str | Callable[..., Attention],
    embed_dim: int | None = None,
) -> Seq2Seq:
    """The model of both builders; they differ only in the defaults of ``bidirectional``, ``peek`` and ``attention``."""
    check_arguments(input_length=input_length, input_dim=input_dim, hidden_dim=hidden_dim, output_length=output_length,
                    output_dim=output_dim, embed_dim=embed_dim, teacher_force=teacher_force, dropout=dropout,
                    cell=cell, depth=depth)
    enc_depth, dec_depth = split_depth(depth)
    encoder = SequenceEncoder(input_dim, hidden_dim, cell, enc_depth, dropout, bidirectional)
    if embed_dim is None:
        feedback = OutputFeedback(output_dim)
        hidden_sizes = [hidden_dim] * (dec_depth - 1) + [output_dim]
    else:
        feedback = TokenFeedback(output_dim, embed_dim)
        hidden_sizes = [hidden_dim] * dec_depth
    decoder = RecurrentDecoder(
        feedback,
        memory_dim=encoder.output_dim,
        summary_dim=encoder.output_dim,
        hidden_sizes=hidden_sizes,
        output_dim=output_dim,
        cell=cell,
        attention=attention,
        dropout=dropout,
        peek=peek,
        output_projection=embed_dim is not None,
    )
    return Seq2Seq(encoder, decoder, output_length, float(teacher_force))


def SimpleSeq2Seq(input_length: int, input_dim: int, hidden_dim: int, output_length: int, output_dim: int,
                  **options) -> Seq2Seq:
    """Encoder summary -> decoder, no attention by default.

    ``peek`` (default on) feeds the encoder summary into every decoder step, as
    the Keras model's repeated context vector does. ``(B, input_length,
    input_dim) -> (B, output_length, output_dim)``.

    Options (the Keras names) and their defaults: ``depth=1`` (an int, or ``[encoder, decoder]``),
    ``dropout=0.0``, ``bidirectional=False``, ``peek=True``, ``teacher_force=False``, ``cell="lstm"``,
    ``attention="none"``, ``embed_dim=None`` (see the module docstring).
    """
    options = {"bidirectional": False, "peek": True, "attention": "none", **options}
    return _build(input_length, input_dim, hidden_dim, output_length, output_dim, **options)


def AttentionSeq2Seq(input_length: int, input_dim: int, hidden_dim: int, output_length: int, output_dim: int,
                     **options) -> Seq2Seq:
    """Bidirectional encoder (``hidden_dim`` units per direction) with an attention decoder.

    Options as :func:`SimpleSeq2Seq`'s, with other defaults: ``bidirectional=True``, ``peek=False``,
    ``attention="mlp"`` (Bahdanau).
    """
    options = {"bidirectional": True, "peek": False, "attention": "mlp", **options}
    return _build(input_length, input_dim, hidden_dim, output_length, output_dim, **options)
