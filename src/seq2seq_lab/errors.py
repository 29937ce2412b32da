"""The lab's user-facing errors.

Every error that a user's input can cause (a bad config, file, sample or
checkpoint) derives from :class:`LabError`; entry points print its message
alone, without a traceback, and exit with status 1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class LabError(Exception):
    """An error in the user's input, with a message that names the key, file or line."""


class ConfigError(LabError, ValueError):
    """The config has invalid values; the message lists each key with what is allowed."""


class NonFiniteLossError(LabError, ArithmeticError):
    """The training loss became NaN or infinite."""


def as_lab_error(err: BaseException) -> LabError | None:
    """``err`` itself or the LabError it wraps (Hydra wraps errors raised while instantiating)."""
    while err is not None:
        if isinstance(err, LabError):
            return err
        err = err.__cause__
    return None


@contextmanager
def reported_errors(logger: logging.Logger) -> Iterator[None]:
    """Turn a :class:`LabError` into its message on the log and exit status 1; let bugs raise."""
    try:
        yield
    except Exception as err:
        lab = as_lab_error(err)
        if lab is None:
            raise
        message = str(lab)
        if "Original Traceback" in message:  # re-raised from a DataLoader worker: keep its last line
            message = message.rstrip().splitlines()[-1]
        logger.error("%s", message)
        raise SystemExit(1) from None
