"""Generate (or reuse) a synthetic text-line corpus: ``python -m seq2seq_lab.synth [overrides]``.

The corpus layout and its reuse rules: :mod:`seq2seq_lab.data.synth.corpus`.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from seq2seq_lab.configs import config_dir
from seq2seq_lab.data.synth.corpus import CorpusSpec, generate_corpus
from seq2seq_lab.errors import ConfigError, reported_errors

log = logging.getLogger(__name__)

__all__ = ["main", "spec_from_config"]


def spec_from_config(cfg: DictConfig) -> CorpusSpec:
    """The spec from the ``synth`` config; ``min_length``/``max_length``, when set, win over ``length``."""
    lo = cfg.min_length if cfg.min_length is not None else cfg.length
    hi = cfg.max_length if cfg.max_length is not None else cfg.length
    if lo is None or hi is None:
        raise ConfigError("set length=N, or min_length and max_length")
    return CorpusSpec(
        num_train=cfg.num_train, num_val=cfg.num_val, num_test=cfg.num_test,
        charset=str(cfg.charset), charset_size=cfg.charset_size, min_length=int(lo), max_length=int(hi),
        text_file=cfg.text_file, policy=cfg.policy, zipf=cfg.get("zipf"),
        fonts=[str(f) for f in cfg.fonts or []], seed=cfg.seed,
        format=cfg.format, quality=cfg.quality, lmdb=cfg.lmdb,
        render=OmegaConf.to_container(cfg.render, resolve=True) if cfg.get("render") else {},
        style=cfg.get("style"), num_test_heldout=cfg.get("num_test_heldout"),
        heldout_fonts=[str(f) for f in cfg.heldout_fonts] if cfg.get("heldout_fonts") else None,
        rare_share=cfg.get("rare_share"),
        look=OmegaConf.to_container(cfg.look, resolve=True) if cfg.get("look") else None,
    )


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="synth")
def main(cfg: DictConfig) -> None:
    with reported_errors(log):
        generate_corpus(spec_from_config(cfg), cfg.out_dir, workers=cfg.workers,
                        overwrite=cfg.overwrite, progress=cfg.progress)


if __name__ == "__main__":
    main()
