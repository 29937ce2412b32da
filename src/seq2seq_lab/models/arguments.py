"""The one definition of valid model arguments.

The builders check their arguments with :func:`check_arguments` (a ``ValueError``), and
``validate_config`` checks a run's ``model.<name>`` keys with the same :data:`RULES` (a
``ConfigError`` listing every bad key), so each rule and its wording live here only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from seq2seq_lab.models.cells import CELLS
from seq2seq_lab.models.crnn import BATCH_NORM, COLUMN_STRIDES, CONV_CHANNELS, valid_conv_channels

__all__ = ["RULES", "argument_problems", "check_arguments", "positive_int", "unit_interval"]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def positive_int(v: Any) -> bool:
    return _is_int(v) and v >= 1


def optional_positive_int(v: Any) -> bool:
    return v is None or positive_int(v)


def unit_interval(v: Any) -> bool:
    return isinstance(v, (int, float)) and 0.0 <= float(v) <= 1.0


def rate(v: Any) -> bool:
    """A dropout rate: ``[0, 1)``."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0.0 <= float(v) < 1.0


def depth(v: Any) -> bool:
    """Layers: an int for encoder and decoder, or ``[encoder, decoder]``."""
    if isinstance(v, Sequence) and not isinstance(v, str):
        return len(v) == 2 and all(positive_int(d) for d in v)
    return positive_int(v)


_SIZE = (positive_int, "an integer >= 1")
_OPTIONAL_SIZE = (optional_positive_int, "null or an integer >= 1")

RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "cell": (lambda v: v in CELLS, f"one of {', '.join(CELLS)}"),
    "encoder_cell": (lambda v: v in CELLS, f"one of {', '.join(CELLS)}"),
    "depth": (depth, "an integer >= 1, or [encoder, decoder] integers >= 1"),
    "hidden_dim": _SIZE, "input_dim": _SIZE, "output_dim": _SIZE, "output_length": _SIZE,
    "channels": _SIZE, "height": _SIZE, "width": _SIZE, "rnn_hidden": _SIZE, "rnn_layers": _SIZE,
    "input_length": _OPTIONAL_SIZE, "embed_dim": _OPTIONAL_SIZE,
    "teacher_force": (unit_interval, "a number in [0, 1]"),
    "dropout": (rate, "a number in [0, 1)"),
    "batch_norm": (lambda v: v in BATCH_NORM, f"one of {', '.join(BATCH_NORM)}"),
    "column_stride": (lambda v: v in COLUMN_STRIDES, f"one of {', '.join(map(str, COLUMN_STRIDES))}"),
    "conv_channels": (valid_conv_channels, f"null or a list of {len(CONV_CHANNELS)} integers >= 1"),
}


def argument_problems(args: Mapping[str, Any]) -> list[str]:
    """``"name=value: must be ..."`` for each argument of ``args`` that breaks its rule."""
    problems = []
    for name, value in args.items():
        ok, allowed = RULES[name]
        if not ok(value):
            shown = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
            problems.append(f"{name}={shown!r}: must be {allowed}")
    return problems


def check_arguments(**args: Any) -> None:
    """Raise ``ValueError`` naming every argument that breaks its rule (see :data:`RULES`)."""
    problems = argument_problems(args)
    if problems:
        raise ValueError("; ".join(problems))
