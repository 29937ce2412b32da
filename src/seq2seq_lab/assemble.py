"""Builds a run's parts from a Hydra config: data module, system, callbacks, loggers.

The entry points (train, eval, bench, ...) share this so that a model is
assembled one way only. Model and system keys left as ``???`` in the config are
filled from the data module's contract (:class:`~seq2seq_lab.data.contract.DataContract`:
``input_dim``, ``output_dim``, ``tokenizer``...), so that data decides what the data decides.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from seq2seq_lab.checkpoints import load_checkpoint
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.precision import resolve_precision, trains_fp32_on_cpu, uses_gpu
from seq2seq_lab.validation import validate_config

log = logging.getLogger(__name__)


def missing_keys(node: DictConfig) -> list[str]:
    return [k for k in node if OmegaConf.is_missing(node, k)]


def fill_from_data(node: DictConfig, where: str, datamodule: Any, config_values: bool) -> dict[str, Any]:
    """Values for the ``???`` keys of ``node`` from the data module's :class:`DataContract`.

    With ``config_values`` the values are written into ``node`` (so that the
    stored config is complete); otherwise they are returned, for objects such
    as a tokenizer that do not belong in a config.
    """
    known = datamodule.contract.values()
    found = {}
    for key in missing_keys(node):
        if key not in known:
            raise ConfigError(
                f"{where}.{key} is not set and {type(datamodule).__name__} does not provide it "
                f"(it provides {', '.join(sorted(known))}); set it on the command line, e.g. {where}.{key}=..."
            )
        found[key] = known[key]
    if config_values and found:
        with open_dict(node):
            for key, value in found.items():
                node[key] = value
        return {}
    return found


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    # plain lists and dicts: a data module's saved hyperparameters must load with weights_only
    return instantiate(cfg.data, _convert_="all")


def resolve_auto_positions(cfg: DictConfig) -> None:
    """Replace ``model.positions=auto`` by what this machine's training budget calls for (in place).

    Column encodings (:mod:`seq2seq_lab.models.positions`) let an attention decoder leave the
    initial plateau in fewer steps; a long run gains nothing from them. ``auto`` appends them to
    the memory (``"concat"``) where the run trains in fp32 on CPU (``trainer.precision`` as ``auto``
    resolves it on a CPU without bf16 instructions), whose time budget holds less than half the
    steps of bf16; ``False`` elsewhere. The choice is logged and, being written into the config,
    stored in the checkpoint's ``run_config``, so the model rebuilds alike on any machine.
    """
    if str(cfg.model.get("positions")) != "auto":
        return
    accelerator = cfg.trainer.get("accelerator", "cpu")
    precision = resolve_precision(cfg.trainer.get("precision"), accelerator)
    chosen = "concat" if trains_fp32_on_cpu(precision, accelerator) else False
    log.info("model.positions=auto: %s (training in %s on %s)", str(chosen).lower(), precision,
             "GPU" if uses_gpu(accelerator) else "CPU")
    with open_dict(cfg.model):
        cfg.model.positions = chosen


def build_system(cfg: DictConfig, datamodule: L.LightningDataModule) -> L.LightningModule:
    """Model and system; fills the config's ``???`` model and system keys from the data module."""
    resolve_auto_positions(cfg)
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


# config leaves that say where things are or how fast they load, not what was trained: left out of the hparams tab
_NOT_HPARAMS = ("data.data_dir", "data.download", "data.num_workers", "data.pin_memory", "data.train", "data.val",
                "data.test", "data.charset", "data.synth", "trainer.default_root_dir", "trainer.enable_model_summary",
                "trainer.log_every_n_steps", "trainer.accelerator", "trainer.devices")


def _leaves(node: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if not str(k).startswith("_"):
                _leaves(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(node, (int, float, str, bool)) or node is None:
        out[prefix] = node
    else:
        out[prefix] = str(node)


def flat_hparams(cfg: DictConfig, swept: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The config as ``{"model.hidden_dim": 32, ...}`` for the logger's hparams tab, in the order it shows them.

    First the ``swept`` keys (the ones a multirun varies), then the model and system knobs,
    then data, trainer and seed; paths, worker counts and other plumbing are left out.
    """
    leaves: dict[str, Any] = {}
    _leaves(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), "", leaves)
    kept = {k: v for k, v in leaves.items()
            if k.split(".")[0] in {"data", "model", "system", "trainer", "seed"}
            and not any(k == x or k.startswith(x + ".") for x in _NOT_HPARAMS)}
    first = [k for k in kept if any(k == s or k.startswith(s + ".") for s in swept)]
    rank = {"model": 0, "system": 1, "data": 2, "trainer": 3, "seed": 4}
    rest = sorted((k for k in kept if k not in first), key=lambda k: rank[k.split(".")[0]])  # stable: config order within
    return {k: kept[k] for k in first + rest}


def swept_keys() -> list[str]:
    """The config keys a Hydra multirun varies in this job (from its task overrides); [] outside a multirun."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    hydra_cfg = HydraConfig.get()
    sweep = hydra_cfg.get("sweeper", {}).get("params") or {}
    keys = [str(k).lstrip("+~").replace("/", ".") for k in sweep]
    if str(hydra_cfg.mode) == "RunMode.MULTIRUN":
        keys += [o.split("=", 1)[0].lstrip("+~").replace("/", ".") for o in hydra_cfg.overrides.task
                 if "," in o.split("=", 1)[-1] or "(" in o.split("=", 1)[-1]]
    return list(dict.fromkeys(keys))


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


def _names_a_file(charset: Any) -> bool:
    """A ``data.charset`` that names a charset file (a path or ``builtin:NAME``), not the characters themselves."""
    return isinstance(charset, str) and (charset.startswith("builtin:") or os.sep in charset
                                         or charset.endswith(".txt"))


def carried_charset_file(chars: list[str]) -> str:
    """A charset file with ``chars`` (one per line), in a cache named by its content; written once."""
    text = "".join(c + "\n" for c in chars)
    path = Path(tempfile.gettempdir()) / "seq2seq_lab" / f"charset-{hashlib.sha1(text.encode()).hexdigest()[:16]}.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return str(path)


def load_trained(ckpt_path: str, overrides: dict | None = None) -> tuple[L.LightningDataModule, L.LightningModule]:
    """The data module and system a checkpoint was trained with, weights loaded.

    They are rebuilt from the config stored in the checkpoint, with ``overrides``
    (e.g. ``{"data": {...}, "system": {...}}``) merged on top. A text model's charset
    comes from the checkpoint (where it is stored since the charset travels with it),
    so the checkpoint can move to a machine without the training corpus.
    """
    checkpoint = load_checkpoint(ckpt_path)
    run_cfg = OmegaConf.merge(OmegaConf.create(upgrade_run_config(checkpoint["run_config"])), overrides or {})
    validate_config(run_cfg, check_paths=False)
    stored = run_cfg.get("data", {}).get("charset")
    if "charset" in checkpoint and _names_a_file(stored):
        # the training charset, not whatever file its old path names now (or no file at all)
        run_cfg.data.charset = carried_charset_file(checkpoint["charset"])
    if run_cfg.get("data", {}).get("synth") is not None:  # a trained model's data is read, never drawn again
        run_cfg.data.synth, run_cfg.data.on_the_fly = None, False
    datamodule = build_datamodule(run_cfg)
    system = build_system(run_cfg, datamodule)
    system.load_state_dict(checkpoint["state_dict"])
    return datamodule, system

