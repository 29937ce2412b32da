"""Generate (or reuse) a synthetic text-line corpus: ``python -m seq2seq_lab.synth [overrides]``.

The corpus layout and its reuse rules: :mod:`seq2seq_lab.data.synth.corpus`.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from seq2seq_lab.configs import config_dir
from seq2seq_lab.data.synth.corpus import generate_corpus, spec_from_config
from seq2seq_lab.errors import reported_errors

log = logging.getLogger(__name__)

__all__ = ["main", "spec_from_config"]


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="synth")
def main(cfg: DictConfig) -> None:
    with reported_errors(log):
        generate_corpus(spec_from_config(cfg), cfg.out_dir, workers=cfg.workers,
                        overwrite=cfg.overwrite, progress=cfg.progress)


if __name__ == "__main__":
    main()
