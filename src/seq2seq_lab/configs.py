"""Where the Hydra configs live, and the config resolvers they use (light: entry points import it
before anything heavy).

``${if_fp32_cpu:A,B}`` is ``A`` where the run trains in fp32 on CPU (``trainer.precision`` 32-true,
or ``auto`` on a CPU without bf16 instructions) and ``B`` elsewhere: a setting sized for the time
budget of the slowest case. An explicit override of the key replaces the interpolation, so it
wins; a run's stored config (the checkpoint's ``run_config``) holds the resolved value.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def config_dir() -> str:
    """The ``conf/`` directory: packaged in the wheel, or the repository's in a source checkout."""
    packaged = Path(__file__).with_name("conf")
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "conf")


@functools.cache
def _log_once(message: str) -> None:
    log.info(message)


def if_fp32_cpu(on_fp32_cpu: Any, otherwise: Any, *, _root_: Any) -> Any:
    """The ``if_fp32_cpu`` resolver: ``on_fp32_cpu`` where the config's trainer trains in fp32 on CPU,
    else ``otherwise`` (module docstring). The choice is logged once per value pair."""
    from seq2seq_lab.precision import trains_fp32_on_cpu

    trainer = _root_.get("trainer") or {}
    fp32_cpu = trains_fp32_on_cpu(trainer.get("precision"), trainer.get("accelerator", "cpu"))
    chosen = on_fp32_cpu if fp32_cpu else otherwise
    why = "training in fp32 on CPU" if fp32_cpu else "not training in fp32 on CPU"
    _log_once(f"${{if_fp32_cpu:{on_fp32_cpu},{otherwise}}}: {chosen} ({why})")
    # a list or dict goes back as a config node, so that resolving in place (--cfg job --resolve) works
    return OmegaConf.create(chosen) if isinstance(chosen, (list, dict)) else chosen


def register_resolvers() -> None:
    """Register the project's resolvers with OmegaConf (once; importing this module does it)."""
    if not OmegaConf.has_resolver("if_fp32_cpu"):
        OmegaConf.register_new_resolver("if_fp32_cpu", if_fp32_cpu)


def register_checkpoint_overrides() -> None:
    """Store the ``checkpoint_overrides`` config: empty ``data`` and ``system`` nodes that take keys
    they do not hold yet. The entry points that read a trained checkpoint (eval, predict, export)
    list it in their defaults and apply these nodes on top of the checkpoint's stored config, so
    ``data.test=...`` or ``system.beam_width=5`` work as their docs say, with or without Hydra's
    ``+``; Hydra's struct mode would otherwise refuse every such key, since the empty nodes hold none.
    A misspelt key outside them (``sytem.beam_width``) is still refused."""
    open_node = {"data": DictConfig({}, flags={"struct": False}), "system": DictConfig({}, flags={"struct": False})}
    ConfigStore.instance().store(name="checkpoint_overrides", node=DictConfig(open_node))


register_resolvers()
register_checkpoint_overrides()
