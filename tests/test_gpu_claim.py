"""One job per GPU: concurrent jobs claim different GPUs; a released GPU is claimed again."""

from __future__ import annotations

import pytest

from helpers import compose_config
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.gpu_claim import claim_gpu


def test_concurrent_jobs_get_different_gpus_and_wait_when_all_are_busy(tmp_path):
    first, second = claim_gpu(2, tmp_path), claim_gpu(2, tmp_path)
    assert {first.index, second.index} == {0, 1}
    with pytest.raises(ConfigError, match="no GPU of 2 became free"):
        claim_gpu(2, tmp_path, wait_seconds=0.2, poll_seconds=0.05)
    first.release()
    assert claim_gpu(2, tmp_path).index == first.index


def test_no_gpu_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="needs CUDA devices"):
        claim_gpu(0, tmp_path)


def test_the_preset_composes_as_a_joblib_launcher(tmp_path, monkeypatch):
    monkeypatch.setenv("S2S_NUM_GPUS", "4")
    cfg = compose_config("train", ["hydra/launcher=gpu_per_job", "trainer=gpu"], tmp_path)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 4
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "gpu_per_job"
