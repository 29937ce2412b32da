"""Where data lives: the ``S2S_DATA_DIR`` override."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "S2S_DATA_DIR"

__all__ = ["DATA_DIR_ENV", "resolve_data_dir"]


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """Return the data root: ``$S2S_DATA_DIR`` when set and non-empty, else ``data_dir``.

    The result has ``~`` expanded and is absolute (relative paths are taken
    from the current directory; symlinks are kept).

    Raises:
        ValueError: neither ``$S2S_DATA_DIR`` nor ``data_dir`` is given.
    """
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    chosen = env or (os.fspath(data_dir) if data_dir is not None else "")
    if not chosen:
        raise ValueError(f"no data directory given: set {DATA_DIR_ENV} or data.data_dir")
    return Path(chosen).expanduser().absolute()
