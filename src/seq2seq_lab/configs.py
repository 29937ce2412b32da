"""Where the Hydra configs live (light: entry points import it before anything heavy)."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> str:
    """The ``conf/`` directory: packaged in the wheel, or the repository's in a source checkout."""
    packaged = Path(__file__).with_name("conf")
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf")
