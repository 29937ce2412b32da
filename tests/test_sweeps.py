"""Sweeps: launcher/sweeper presets compose, failed jobs are recorded, joblib and Optuna multiruns run."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import open_dict, read_write

from entry_points import cli_env
from helpers import compose_config
from seq2seq_lab.errors import ConfigError, reported_errors
from seq2seq_lab.report import write_report
from seq2seq_lab.runs import failed_job_value, main_guard, read_metrics
from seq2seq_lab.train import train

TINY = ["experiment=mnist_simple", "trainer.max_epochs=1", "data.train_subset=100", "data.val_size=100",
        "threads=1", "logger=csv"]
QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null"]


def run_train(server, args: list[str], data_dir: Path, cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    """``python -m seq2seq_lab.train *args``, forked from the ``entry_points`` server (tests/entry_points.py)."""
    return server.run(["-m", "seq2seq_lab.train", *args], cwd, cli_env(data_dir, HYDRA_FULL_ERROR="0"), timeout)


def as_multirun(cfg) -> None:
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
    HydraConfig.instance().set_config(cfg)


# -- presets ------------------------------------------------------------------
def test_mnist_table_sweeps_two_models_times_three_seeds(tmp_path):
    cfg = compose_config("train", ["experiment=mnist_table"], tmp_path)
    params = cfg.hydra.sweeper.params
    assert params.model.split(",") == ["simple_seq2seq", "attention_seq2seq"]
    assert params.seed.split(",") == ["1", "2", "3"]
    simple = compose_config("train", ["experiment=mnist_table", "model=simple_seq2seq", "seed=2"], tmp_path)
    assert simple.model._target_.endswith("SimpleSeq2Seq") and simple.model.attention._target_.endswith("NoAttention")
    assert simple.trainer.max_epochs == 25 and simple.data.batch_size == 500 and simple.model.hidden_dim == 32
    assert simple.system.scheduler._target_.endswith("OneCycleLR") and simple.seed == 2


def test_optuna_search_composes(tmp_path):
    cfg = compose_config("train", ["hparams_search=mnist_optuna"], tmp_path)
    assert "optuna" in cfg.hydra.sweeper._target_.lower()
    assert cfg.hydra.sweeper.direction == "maximize" and cfg.hydra.mode == RunMode.MULTIRUN
    assert cfg.optimized_metric == "val/acc_best"
    assert "system.optimizer.lr" in cfg.hydra.sweeper.params


@pytest.mark.parametrize(("preset", "target"), [("local_parallel", "joblib"), ("slurm", "SlurmLauncher")])
def test_launcher_presets_compose(preset, target, tmp_path):
    cfg = compose_config("train", [f"hydra/launcher={preset}"], tmp_path)
    assert target in cfg.hydra.launcher._target_
    if preset == "local_parallel":
        assert cfg.hydra.launcher.n_jobs == 2
    else:
        assert cfg.hydra.launcher.submitit_folder.endswith(".submitit/%j")


def test_ddp_cpu_trainer_uses_gloo(tmp_path):
    cfg = compose_config("train", ["trainer=ddp_cpu"], tmp_path)
    strategy = instantiate(cfg.trainer.strategy)
    assert type(strategy).__name__ == "DDPStrategy" and strategy._process_group_backend == "gloo"
    assert cfg.trainer.devices == 2 and cfg.trainer.accelerator == "cpu"


def test_threads_key_sets_torch_threads(fake_data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        train(compose_config("train", ["experiment=mnist_simple", "debug=fdr", "threads=1"], tmp_path))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


# -- failures -----------------------------------------------------------------
def test_single_run_failure_raises(tmp_path):
    compose_config("train", [], tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        main_guard(lambda: (_ for _ in ()).throw(RuntimeError("boom")), tmp_path)
    assert not (tmp_path / "error.txt").exists()


def test_multirun_failure_is_recorded(tmp_path):
    as_multirun(compose_config("train", [], tmp_path))
    (tmp_path / "metrics.json").write_text(json.dumps({"epochs": 1}))

    def bad_config():
        with reported_errors(__import__("logging").getLogger("t")):
            raise ConfigError("invalid config:\n  data.batch_size=0: must be an integer >= 1")

    assert main_guard(bad_config, tmp_path) is None
    metrics = read_metrics(tmp_path)
    assert metrics["status"] == "failed" and metrics["epochs"] == 1
    assert metrics["error"] == "ConfigError: invalid config: data.batch_size=0: must be an integer >= 1"
    assert "Traceback" in (tmp_path / "error.txt").read_text()


def test_failed_job_value_keeps_an_optuna_study_going(tmp_path):
    as_multirun(compose_config("train", ["hparams_search=mnist_optuna"], tmp_path))
    assert failed_job_value() == float("-inf")  # maximize: the worst value, not NaN (which stops Optuna)
    as_multirun(compose_config("train", [], tmp_path))
    assert failed_job_value() is None


def test_multirun_success_marks_ok(tmp_path):
    as_multirun(compose_config("train", [], tmp_path))
    (tmp_path / "metrics.json").write_text(json.dumps({"test/acc": 0.5}))
    assert main_guard(lambda: {"val/acc_best": 0.5}, tmp_path) == {"val/acc_best": 0.5}
    assert read_metrics(tmp_path)["status"] == "ok"


# -- real multiruns -----------------------------------------------------------
def test_sweep_with_a_failed_job_then_report(fake_data_dir, tmp_path, entry_points):
    """Job 0 fails (a config error), job 1 still runs; the report lists both."""
    sweep = tmp_path / "sweep"
    proc = run_train(entry_points, ["-m", *TINY, *QUIET, "data.batch_size=0,100", f"paths.log_dir={tmp_path}",
                                    f"hydra.sweep.dir={sweep}"], fake_data_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed, ok = read_metrics(sweep / "0"), read_metrics(sweep / "1")
    assert failed["status"] == "failed" and "data.batch_size=0" in failed["error"]
    assert "Traceback" in (sweep / "0" / "error.txt").read_text()
    assert ok["status"] == "ok" and 0.0 <= ok["test/acc"] <= 1.0

    paths = write_report(sweep)
    md = paths["md"].read_text()
    assert "2 runs: 1 failed, 1 ok." in md and "png" in paths


@pytest.mark.skipif(not os.environ.get("S2S_SLOW_TESTS"), reason="slow (~40 s); set S2S_SLOW_TESTS=1")
def test_parallel_joblib_sweep(fake_data_dir, tmp_path, entry_points):
    """hydra/launcher=local_parallel: two worker processes, 1 thread each; a failed job in a worker is recorded."""
    sweep = tmp_path / "sweep"
    proc = run_train(entry_points, ["-m", "hydra/launcher=local_parallel", *TINY, *QUIET, "data.batch_size=0,100",
                                    f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={sweep}"], fake_data_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    assert read_metrics(sweep / "0")["status"] == "failed" and read_metrics(sweep / "1")["status"] == "ok"


def test_optuna_sweep_reports_best_value(fake_data_dir, tmp_path, entry_points):
    sweep = tmp_path / "optuna"
    proc = run_train(entry_points, ["hparams_search=mnist_optuna", "hydra.sweeper.n_trials=2", *TINY, "test=false",
                                    "callbacks=none", f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={sweep}"],
                     fake_data_dir, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert 0.0 <= result["best_value"] <= 1.0
    assert set(result["best_params"]) == {"system.optimizer.lr", "model.hidden_dim", "model/attention", "model/cell"}
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]


def test_the_hparams_tab_starts_with_the_swept_keys_and_leaves_plumbing_out(tmp_path):
    from seq2seq_lab.assemble import flat_hparams, swept_keys

    cfg = compose_config("train", ["experiment=mnist_table"], tmp_path)
    as_multirun(cfg)
    swept = swept_keys()
    assert {"model", "seed"} <= set(swept)
    keys = list(flat_hparams(cfg, ["model.attention", "system.optimizer.lr"]))
    first = [k for k in keys if k.startswith(("model.attention", "system.optimizer.lr"))]
    assert keys[: len(first)] == first and "system.optimizer.lr" in first
    rest = keys[len(first):]
    assert rest[0].startswith("model.") and rest.index(next(k for k in rest if k.startswith("data."))) > max(
        i for i, k in enumerate(rest) if k.startswith(("model.", "system.")))
    assert not {"data.data_dir", "data.download", "data.num_workers"} & set(keys)


def test_two_workers_search_one_optuna_study_in_sqlite(fake_data_dir, tmp_path, entry_points):
    """Two launches on one SQLite storage (as two machines on PostgreSQL would) share the study: no trial lost."""
    optuna = pytest.importorskip("optuna")
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    workers = []
    for worker in (1, 2):  # each its own sampler seed, so their random start-up trials differ
        args = ["hparams_search=mnist_optuna", "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={storage}",
                "hydra.sweeper.study_name=shared", *TINY, f"seed={worker}", "test=false", "callbacks=none",
                f"paths.log_dir={tmp_path}", f"hydra.sweep.dir={tmp_path}/worker{worker}"]
        workers.append(entry_points.start(["-m", "seq2seq_lab.train", *args], tmp_path,
                                          cli_env(fake_data_dir, HYDRA_FULL_ERROR="0")))
        if worker == 1:
            time.sleep(8)  # the first creates the study; the second joins it (load_if_exists)
    for proc in workers:
        assert proc.wait(timeout=300) == 0, "".join(proc.output())[-3000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    states = [t.state for t in study.trials]
    assert len(states) == 4 and all(s == optuna.trial.TrialState.COMPLETE for s in states), states
