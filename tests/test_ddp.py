"""DDP on CPU (2 processes, gloo): one run dir for all ranks, and the metrics of a 1-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict, read_write

from helpers import compose_config
from seq2seq_lab.ddp_hydra import rank_command
from seq2seq_lab.train import train

# the fake task is learnt to ~0.97 in 3 epochs; global batch 100 in both runs
RECIPE = ["experiment=mnist_simple", "trainer.max_epochs=3", "data.train_subset=2000", "data.val_size=200",
          "system.optimizer.lr=0.02", "threads=1", "logger=csv", "callbacks.progress_bar=null",
          "callbacks.model_summary=null"]


def run_train(args: list[str], data_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "S2S_DATA_DIR": str(data_dir)}
    env.pop("LOCAL_RANK", None)
    return subprocess.run([sys.executable, "-m", "seq2seq_lab.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def single_process_metrics(fake_data_dir, monkeypatch, tmp_path) -> dict:
    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))
    threads = torch.get_num_threads()
    try:
        run = tmp_path / "single"
        train(compose_config("train", [*RECIPE, "data.batch_size=100"], run))
        return json.loads((run / "metrics.json").read_text())
    finally:
        torch.set_num_threads(threads)


def test_ddp_cpu_run_makes_one_run_dir_and_matches_one_process(fake_data_dir, tmp_path, single_process_metrics):
    logs = tmp_path / "logs"
    proc = run_train([*RECIPE, "trainer=ddp_cpu", "data.batch_size=50", f"paths.log_dir={logs}"],
                     fake_data_dir, tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in out

    runs = list((logs / "train" / "runs").iterdir())
    assert len(runs) == 1, runs
    assert not (logs / "train" / "multiruns").exists()
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["epochs"] == 3
    assert (runs[0] / ".hydra" / "config.yaml").is_file()
    assert len(list((runs[0] / "checkpoints").glob("epoch_*.ckpt"))) == 1
    # both ranks logged into the one run dir's log file
    assert (runs[0] / "train.log").read_text().count("parameters") == 2

    single = single_process_metrics
    assert single["test/acc"] > 0.8  # learnt, so the comparison means something
    assert metrics["test/acc"] == pytest.approx(single["test/acc"], abs=0.05)
    assert metrics["val/acc_best"] == pytest.approx(single["val/acc_best"], abs=0.05)


def test_rank_command_reruns_only_this_multirun_job(tmp_path):
    """In a multirun, ranks 1.. get the job's overrides in run mode, in the job's dir (not the sweep)."""
    job_dir = tmp_path / "sweep dir" / "3"
    cfg = compose_config("train", ["trainer=ddp_cpu", "seed=7", "hparams_search=mnist_optuna"], job_dir)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.overrides.hydra = ["hydra.mode=MULTIRUN", "hydra.sweep.dir=x", "hydra/launcher=local_parallel",
                                     "hydra.job_logging.root.level=WARNING"]
    HydraConfig.instance().set_config(cfg)
    command, cwd = rank_command("seq2seq_lab.train", 1)
    assert command[:3] == [sys.executable, "-m", "seq2seq_lab.train"]
    assert "-m" not in command[3:] and "--multirun" not in command
    assert ["trainer=ddp_cpu", "seed=7", "hparams_search=mnist_optuna"] == command[3:6]
    assert f"hydra.run.dir='{job_dir}'" in command
    assert "hydra.mode=RUN" in command and "hydra.output_subdir=null" in command
    assert "hydra.job_logging.root.level=WARNING" in command
    assert not any(c.startswith(("hydra.sweep.dir", "hydra/launcher", "hydra.mode=MULTI")) for c in command)
    assert cwd == str(job_dir)


@pytest.mark.skipif(not os.environ.get("S2S_SLOW_TESTS"), reason="slow (~40 s); set S2S_SLOW_TESTS=1")
def test_ddp_in_a_multirun_gives_one_dir_per_job(fake_data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_train(["-m", *RECIPE, "trainer=ddp_cpu", "trainer.max_epochs=1", "data.train_subset=200",
                      "data.batch_size=50", "seed=1,2", f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={sweep}"],
                     fake_data_dir, tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    for job, seed in (("0", 1), ("1", 2)):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["status"] == "ok" and metrics["seed"] == seed
    assert not (tmp_path / "train" / "runs").exists()
