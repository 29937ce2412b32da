"""Resume after a kill, atomic checkpoints, config validation, non-finite losses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from entry_points import cli_env
from helpers import compose_config
from seq2seq_lab.checkpoints import load_checkpoint
from seq2seq_lab.errors import ConfigError, NonFiniteLossError
from seq2seq_lab.train import train

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=csv"]


@pytest.fixture(autouse=True)
def data_env(fake_data_dir, monkeypatch):
    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))


# -- config validation --------------------------------------------------------------------------

BAD_CONFIGS = [
    ("model.cell=lstmx", "model.cell='lstmx': must be one of rnn, lstm, gru"),
    ("model.depth=0", "model.depth=0: must be an integer >= 1"),
    ("model.depth=[1,2,3]", r"model.depth=\[1, 2, 3\]: must be an integer >= 1, or \[encoder, decoder\]"),
    ("model.depth=[0,1]", r"model.depth=\[0, 1\]"),
    ("model.hidden_dim=0", "model.hidden_dim=0: must be an integer >= 1"),
    ("model.hidden_dim=-4", "model.hidden_dim=-4"),
    ("model.teacher_force=1.5", r"model.teacher_force=1.5: must be a number in \[0, 1\]"),
    ("model.teacher_force=-0.1", "model.teacher_force=-0.1"),
    ("model.output_length=0", "model.output_length=0: must be an integer >= 1"),
    ("model.dropout=1.0", r"model.dropout=1.0: must be a number in \[0, 1\)"),
    ("data.batch_size=0", "data.batch_size=0: must be an integer >= 1"),
    ("data.batch_size=-5", "data.batch_size=-5"),
    ("system.optimizer.lr=0", "system.optimizer.lr=0: must be a number > 0"),
    ("+model.batch_norm=some", "model.batch_norm='some': must be one of reference, all"),
    ("+model.column_stride=2", "model.column_stride=2: must be one of 4, 8"),
    ("+model.conv_channels=[8,16,32]", r"model.conv_channels=\[8, 16, 32\]: must be null or a list of 7 integers"),
    ("+system.ctc_weight=1", r"system.ctc_weight=1: must be a number in \[0, 1\)"),
    ("callbacks.ema={_target_:seq2seq_lab.callbacks.WeightEMA,decay:1.5}", r"callbacks.ema.decay=1.5: must be a number in \[0, 1\)"),
    ("callbacks.ema={_target_:seq2seq_lab.callbacks.WeightEMA,start_step:-1}", "callbacks.ema.start_step=-1: must be an integer >= 0"),
    ("model.attention._target_=seq2seq_lab.models.attention.Nope", "model.attention='seq2seq_lab.models.attention.Nope': must be one of none, mlp"),
]


@pytest.mark.parametrize("override,message", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config_fails_at_start_up_naming_the_key(override, message, tmp_path):
    cfg = compose_config("train", ["experiment=mnist_attention", override, *QUIET], tmp_path)
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()  # nothing ran


def test_every_problem_is_listed_at_once(tmp_path):
    cfg = compose_config("train", ["model.cell=x", "model.hidden_dim=0", "data.batch_size=0"], tmp_path)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value).count("\n  ") == 3


def test_missing_data_dir_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("S2S_DATA_DIR")
    cfg = compose_config("train", [f"paths.data_dir={tmp_path}/nowhere", "data.download=false"], tmp_path)
    with pytest.raises(ConfigError, match=f"data.data_dir='{tmp_path}/nowhere': no such directory"):
        train(cfg)


def run_cli(server, args: list[str], env_data: Path, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m seq2seq_lab.train *args``, forked from the ``entry_points`` server (tests/entry_points.py)."""
    return server.run(["-m", "seq2seq_lab.train", *args], cwd, cli_env(env_data, **(env or {})))


@pytest.mark.parametrize(
    "override,message",
    [("model.cell=lstmx", "must be one of rnn, lstm, gru"), ("model/attention=bahdanau", "Could not find 'model/attention/bahdanau'")],
)
def test_cli_reports_bad_config_without_traceback(override, message, fake_data_dir, tmp_path, entry_points):
    result = run_cli(entry_points, [override, f"hydra.run.dir={tmp_path}/run"], fake_data_dir, tmp_path)
    assert result.returncode == 1
    assert message in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


# -- resume after a kill --------------------------------------------------------------------------

RESUME_ARGS = [
    "experiment=mnist_simple", "trainer.max_epochs=8", "trainer.deterministic=true", "data.batch_size=8",
    "data.train_subset=400", "data.val_size=200", "data.eval_batch_size=200", "model.hidden_dim=16",
    "trainer.log_every_n_steps=1", *QUIET,
]


def _last_epoch(run: Path) -> int:
    last = run / "checkpoints" / "last.ckpt"
    try:
        return torch.load(last, map_location="cpu", weights_only=True)["epoch"]
    except Exception:  # noqa: BLE001 - not written yet
        return -1


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_run_resumes_to_the_same_metrics(sig, fake_data_dir, tmp_path, entry_points):
    reference = run_cli(entry_points, [*RESUME_ARGS, f"hydra.run.dir={tmp_path}/reference"], fake_data_dir, tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = json.loads((tmp_path / "reference" / "metrics.json").read_text())

    run = tmp_path / "killed"
    proc = entry_points.start(["-m", "seq2seq_lab.train", *RESUME_ARGS, f"hydra.run.dir={run}"], tmp_path,
                              cli_env(fake_data_dir))
    deadline = time.time() + 240
    while _last_epoch(run) < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.05)  # into the next epoch (an epoch takes about 0.15 s)
    assert proc.poll() is None, "run finished before it could be killed"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert not (run / "metrics.json").exists() or "test/acc" not in json.loads((run / "metrics.json").read_text())
    load_checkpoint(run / "checkpoints" / "last.ckpt")  # readable after the kill

    resumed = run_cli(entry_points, [*RESUME_ARGS, f"hydra.run.dir={run}"], fake_data_dir, tmp_path)  # auto-resume
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr + resumed.stdout
    got = json.loads((run / "metrics.json").read_text())
    for key in ("test/acc", "test/loss", "val/acc_best", "val/loss"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


# a token seq2seq run whose teacher forcing decays per step and is drawn per token: the schedule and its
# draws must continue exactly after the stop (400 lines, batch 8: 50 batches an epoch)
SCHEDULED = [
    "experiment=toy_reverse", "data.num_train=400", "data.num_val=100", "data.num_test=100", "data.batch_size=8",
    "data.max_length=5", "model.hidden_dim=16", "model.embed_dim=8", "trainer.deterministic=true",
    "trainer.log_every_n_steps=1", "system.teacher_forcing={kind:linear,ceiling:1.0,floor:0.2,steps:120}",
    "system.teacher_forcing_draw=token", *QUIET,
]


@pytest.mark.parametrize("args, module", [
    ([*RESUME_ARGS, "model.dropout=0.3"], "MNISTDataModule"),  # dropout: the RNG state must resume too
    (SCHEDULED, "ToyDataModule"),
], ids=["mnist_dropout", "toy_scheduled_sampling"])
def test_sigterm_mid_epoch_saves_and_resumes_from_the_next_batch(args, module, fake_data_dir, tmp_path, entry_points):
    args = [*args, "trainer.max_epochs=3"]
    reference = run_cli(entry_points, [*args, f"hydra.run.dir={tmp_path}/reference"], fake_data_dir, tmp_path)
    assert reference.returncode == 0, reference.stderr[-2000:]
    expected = json.loads((tmp_path / "reference" / "metrics.json").read_text())

    run = tmp_path / "stopped"
    tests_dir = str(Path(__file__).parent)
    stop_at = ["+callbacks.sigterm._target_=helpers.SigtermAtStep", "+callbacks.sigterm.step=75"]  # epoch 1, batch 25 of 50
    env = {"PYTHONPATH": os.pathsep.join([tests_dir, os.environ.get("PYTHONPATH", "")])}
    stopped = run_cli(entry_points, [*args, *stop_at, f"hydra.run.dir={run}"], fake_data_dir, tmp_path, env)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr + stopped.stdout
    status = json.loads((run / "metrics.json").read_text())
    assert status["status"] == "stopped" and status["global_step"] == 75
    checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint[module] == {"epoch": 1, "batches_done": 25}

    resumed = run_cli(entry_points, [*args, f"hydra.run.dir={run}"], fake_data_dir, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    got = json.loads((run / "metrics.json").read_text())
    assert got["status"] == "ok"
    for key in ("test/acc", "test/loss", "val/acc_best", "val/loss"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


def test_the_teacher_forcing_ratio_is_logged_every_step(fake_data_dir, tmp_path, entry_points):
    result = run_cli(entry_points, [*SCHEDULED, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}/run"], fake_data_dir,
                     tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    import csv

    rows = list(csv.DictReader(next((tmp_path / "run").rglob("metrics.csv")).open()))
    ratios = {int(r["step"]): float(r["train/teacher_forcing"]) for r in rows if r.get("train/teacher_forcing")}
    assert ratios[0] == pytest.approx(1.0) and ratios[30] == pytest.approx(1.0 - 0.8 * 30 / 120)


# -- atomic checkpoints -------------------------------------------------------------------------------

def test_interrupted_save_keeps_the_previous_last_ckpt(tmp_path, monkeypatch):
    cfg = compose_config("train", ["experiment=mnist_simple", "trainer.max_epochs=1", "test=false", *QUIET], tmp_path)
    train(cfg)
    last = tmp_path / "checkpoints" / "last.ckpt"
    before = load_checkpoint(last)

    from fsspec.implementations.local import LocalFileOpener

    def write_half_then_die(self, data):
        LocalFileOpener.__dict__["_write"](self, data[: len(data) // 2])
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(LocalFileOpener, "_write", LocalFileOpener.write, raising=False)
    monkeypatch.setattr(LocalFileOpener, "write", write_half_then_die)
    import lightning as L

    trainer = L.Trainer(logger=False, enable_progress_bar=False)
    trainer.strategy.connect(torch.nn.Linear(1, 1))
    with pytest.raises(KeyboardInterrupt):
        trainer.strategy.checkpoint_io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, last)
    after = load_checkpoint(last)
    assert after["epoch"] == before["epoch"]
    torch.testing.assert_close(after["state_dict"], before["state_dict"])


def test_atomic_checkpoint_io_writes_beside_the_target_and_survives_a_kill(tmp_path, monkeypatch):
    from seq2seq_lab.checkpoints import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    last = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, last)
    opened = []
    real_save = torch.save

    def save_half_then_die(obj, fh, *args, **kwargs):
        opened.append(Path(fh.name))
        fh.write(b"partial")
        raise KeyboardInterrupt("killed during save")

    monkeypatch.setattr(torch, "save", save_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, last)
    monkeypatch.setattr(torch, "save", real_save)
    assert opened[0].parent == last.parent  # the temporary file sits beside the target: the rename is atomic
    assert torch.equal(torch.load(last, weights_only=True)["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no temporary file left


# -- non-finite loss ------------------------------------------------------------------------------------

def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from seq2seq_lab.systems.classify import ClassifySystem

    original = ClassifySystem.compute_loss
    calls = {"n": 0}

    def poisoned(self, batch):
        loss, out = original(self, batch)
        calls["n"] += self.training
        return (loss * float("nan") if self.training and calls["n"] > 14 else loss), out

    monkeypatch.setattr(ClassifySystem, "compute_loss", poisoned)
    cfg = compose_config(
        "train", ["experiment=mnist_simple", "trainer.max_epochs=5", "data.batch_size=100", *QUIET], tmp_path
    )
    with pytest.raises(NonFiniteLossError, match=r"train/loss is nan at epoch 2, step 14.*last.ckpt"):
        train(cfg)
    good = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert good["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in good["state_dict"].values() if v.is_floating_point())


def test_error_from_a_dataloader_worker_is_reported_as_its_last_line(caplog):
    import logging

    from seq2seq_lab.data.ocr.sources import BadSampleError
    from seq2seq_lab.errors import reported_errors

    worker_text = (
        "Caught BadSampleError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\nseq2seq_lab.data.ocr.sources.BadSampleError: train.txt:3: cannot read image'
    )
    with caplog.at_level(logging.ERROR), pytest.raises(SystemExit) as exit_info:
        with reported_errors(logging.getLogger("test")):
            raise BadSampleError(worker_text)
    assert exit_info.value.code == 1
    assert caplog.messages[-1] == "seq2seq_lab.data.ocr.sources.BadSampleError: train.txt:3: cannot read image"


# -- warm starts ---------------------------------------------------------------------------------

WARM = ["experiment=mnist_simple", "trainer.max_epochs=1", "data.batch_size=50", "data.train_subset=400",
        "data.val_size=200", "model.hidden_dim=16", "test=false", *QUIET]


def test_init_from_starts_from_the_checkpoints_weights_with_a_fresh_schedule(tmp_path):
    from seq2seq_lab.checkpoints import init_weights_from
    from seq2seq_lab.assemble import build_datamodule, build_system

    train(compose_config("train", WARM, tmp_path / "first"))
    first = load_checkpoint(tmp_path / "first" / "checkpoints" / "last.ckpt")
    cfg = compose_config("train", [*WARM, f"init_from={tmp_path}/first/checkpoints/last.ckpt", "train=false"],
                         tmp_path / "probe")
    system = build_system(cfg, build_datamodule(cfg))
    init_weights_from(system, cfg.init_from)
    for key, value in first["state_dict"].items():
        assert torch.equal(system.state_dict()[key], value), key

    train(compose_config("train", [*WARM, f"init_from={tmp_path}/first/checkpoints/last.ckpt"], tmp_path / "second"))
    second = load_checkpoint(tmp_path / "second" / "checkpoints" / "last.ckpt")
    assert second["epoch"] == 0  # a new run: the epoch count starts afresh
    assert second["global_step"] == first["global_step"]


def test_init_from_a_checkpoint_of_another_size_names_the_tensors(tmp_path):
    from seq2seq_lab.checkpoints import CheckpointError

    train(compose_config("train", WARM, tmp_path / "first"))
    cfg = compose_config("train", [*WARM, "model.hidden_dim=24", f"init_from={tmp_path}/first/checkpoints/last.ckpt"],
                         tmp_path / "second")
    with pytest.raises(CheckpointError, match=r"init_from=.*last.ckpt: its weights do not fit this model \(other shape: net\.seq2seq\."):
        train(cfg)


def test_init_missing_keep_starts_a_location_attention_from_an_mlp_checkpoint(tmp_path):
    """A checkpoint that lacks a module added to its model is refused by default, with the way out named;
    with ``missing="keep"`` the shared tensors come from the checkpoint and the new ones keep their values.
    A tensor of the checkpoint that the model lacks is still refused."""
    from seq2seq_lab.checkpoints import CheckpointError, init_weights_from
    from seq2seq_lab.models import AttentionSeq2Seq

    torch.manual_seed(0)
    trained = AttentionSeq2Seq(7, 5, 8, 4, 6, embed_dim=4, attention="mlp")
    path = _saved(trained, tmp_path / "mlp.ckpt")
    model = AttentionSeq2Seq(7, 5, 8, 4, 6, embed_dim=4, attention="location")
    own = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"missing: decoder\.attention\.location_conv.*init_missing=keep"):
        init_weights_from(model, path)
    kept = init_weights_from(model, path, missing="keep")
    assert kept == ["decoder.attention.location_conv.weight", "decoder.attention.location_proj.weight"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, own[key] if key in kept else trained.state_dict()[key]), key
    with pytest.raises(CheckpointError, match=r"not in this model: decoder\.attention\.location_conv"):
        init_weights_from(trained, _saved(model, tmp_path / "location.ckpt"), missing="keep")


def _saved(model, path):
    """``model``'s weights as a checkpoint file that ``init_weights_from`` reads."""
    torch.save({"state_dict": model.state_dict(), "run_config": {}}, path)
    return path


def test_a_run_ended_by_max_steps_in_mid_epoch_validates_at_its_last_step(tmp_path):
    import csv

    # 400 lines in batches of 50: 8 steps an epoch, so step 12 falls in the middle of the second
    train(compose_config("train", [*WARM, "trainer.max_epochs=3", "+trainer.max_steps=12"], tmp_path))
    rows = list(csv.DictReader(next(tmp_path.rglob("metrics.csv")).open()))
    validated_at = sorted({int(r["step"]) + 1 for r in rows if r.get("val/loss")})
    assert validated_at == [8, 12]
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == 12
