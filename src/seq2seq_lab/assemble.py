"""Builds a run's parts from a Hydra config: data module, system, callbacks, loggers.

The entry points (train, eval, bench, ...) share this so that a model is
assembled one way only. Model and system keys left as ``???`` in the config are
filled from same-named attributes of the data module (``input_dim``,
``output_dim``, ``tokenizer``...), so that data decides what the data decides.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from seq2seq_lab.checkpoints import load_checkpoint


def missing_keys(node: DictConfig) -> list[str]:
    return [k for k in node if OmegaConf.is_missing(node, k)]


def fill_from_data(node: DictConfig, where: str, datamodule: Any, config_values: bool) -> dict[str, Any]:
    """Values for the ``???`` keys of ``node`` from the data module's attributes.

    With ``config_values`` the values are written into ``node`` (so that the
    stored config is complete); otherwise they are returned, for objects such
    as a tokenizer that do not belong in a config.
    """
    found = {}
    for key in missing_keys(node):
        if not hasattr(datamodule, key):
            raise ValueError(
                f"{where}.{key} is not set and {type(datamodule).__name__} does not provide it; "
                f"set it on the command line, e.g. {where}.{key}=..."
            )
        found[key] = getattr(datamodule, key)
    if config_values and found:
        with open_dict(node):
            for key, value in found.items():
                node[key] = value
        return {}
    return found


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    # plain lists and dicts: a data module's saved hyperparameters must load with weights_only
    return instantiate(cfg.data, _convert_="all")


def build_system(cfg: DictConfig, datamodule: L.LightningDataModule) -> L.LightningModule:
    """Model and system; fills the config's ``???`` model and system keys from the data module."""
    fill_from_data(cfg.model, "model", datamodule, config_values=True)
    objects = fill_from_data(cfg.system, "system", datamodule, config_values=False)
    model = instantiate(cfg.model, _convert_="all")
    system = instantiate(cfg.system, model=model, **objects)
    system.run_config = OmegaConf.to_container(cfg, resolve=True)
    return system


def build_callbacks(cfg: DictConfig | None) -> list[L.Callback]:
    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if c is not None and "_target_" in c]


def build_loggers(cfg: DictConfig | None) -> list:
    if not cfg:
        return []
    return [instantiate(c) for c in cfg.values() if c is not None and "_target_" in c]


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """The config as ``{"model.hidden_dim": 32, ...}`` for the logger's hparams tab."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if not str(k).startswith("_"):
                    walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif isinstance(node, (int, float, str, bool)) or node is None:
            out[prefix] = node
        else:
            out[prefix] = str(node)

    walk(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), "")
    return {k: v for k, v in out.items() if k.split(".")[0] in {"data", "model", "system", "trainer", "seed"}}


# ``_target_`` paths of classes that moved since checkpoints were written with them
MOVED_TARGETS = {
    "seq2seq_lab.data.mnist_digits.MNISTDigitsDataModule": "seq2seq_lab.data.mnist.digits.MNISTDigitsDataModule",
}


def upgrade_run_config(run_cfg: dict) -> dict:
    """A stored run config with moved ``_target_`` paths replaced by their new ones (in place)."""
    data = run_cfg.get("data")
    if isinstance(data, dict) and data.get("_target_") in MOVED_TARGETS:
        data["_target_"] = MOVED_TARGETS[data["_target_"]]
    return run_cfg


def load_trained(ckpt_path: str, overrides: dict | None = None) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The data module and system a checkpoint was trained with, weights loaded.

    They are rebuilt from the config stored in the checkpoint, with ``overrides``
    (e.g. ``{"data": {...}, "system": {...}}``) merged on top.
    """
    checkpoint = load_checkpoint(ckpt_path)
    run_cfg = OmegaConf.merge(OmegaConf.create(upgrade_run_config(checkpoint["run_config"])), overrides or {})
    datamodule = build_datamodule(run_cfg)
    system = build_system(run_cfg, datamodule)
    system.load_state_dict(checkpoint["state_dict"])
    return datamodule, system

