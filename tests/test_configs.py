"""Every experiment composes and survives a fast_dev_run; entry points run end to end."""

from __future__ import annotations

import json

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import open_dict

from helpers import EXPERIMENTS, compose_config
from seq2seq_lab.data.synth.fonts import NoFontError
from seq2seq_lab.eval import evaluate
from seq2seq_lab.train import train


@pytest.fixture(autouse=True)
def data_env(fake_data_dir, monkeypatch):
    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))


def test_there_are_experiments():
    assert {"mnist_simple", "mnist_attention", "toy_reverse"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_fast_dev_run(experiment, tmp_path):
    # one thread: a busy shared CPU makes 2-thread RNN steps crawl (each step waits on the other thread)
    cfg = compose_config("train", [f"experiment={experiment}", "debug=fdr", "threads=1"], tmp_path)
    if cfg.get("synth"):  # a tiny corpus in the fake data dir instead of the experiment's
        with open_dict(cfg):
            cfg.synth.update(num_train=8, num_val=4, num_test=4, workers=1)
            if cfg.synth.get("num_test_heldout"):
                cfg.synth.num_test_heldout = 4
    threads = torch.get_num_threads()
    try:
        metrics = train(cfg)
    except NoFontError as err:
        pytest.skip(f"no font draws the synth charset: {err}")
    finally:
        torch.set_num_threads(threads)
    assert "train/loss" in metrics and torch.isfinite(torch.tensor(metrics["train/loss"]))


@pytest.mark.parametrize("attention", ["none", "mlp", "dot", "general", "concat", "position", "location"])
@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_attention_and_cell_groups_compose(attention, cell, tmp_path):
    cfg = compose_config(
        "train",
        ["experiment=mnist_attention", f"model/attention={attention}", f"model/cell={cell}", "model.depth=[1,2]"],
        tmp_path,
    )
    assert cfg.model.cell == cell
    assert cfg.model.attention._target_.endswith("Attention")
    assert list(cfg.model.depth) == [1, 2]


def test_train_writes_metrics_and_eval_reproduces_test_accuracy(tmp_path):
    run = tmp_path / "run"
    cfg = compose_config(
        "train",
        ["experiment=mnist_simple", "trainer.max_epochs=2", "data.batch_size=100",
         "callbacks.progress_bar=null", "callbacks.model_summary=null"],
        run,
    )
    train(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("test/acc", "val/acc_best", "num_params", "epochs", "train_seconds", "samples_per_second", "seed"):
        assert key in metrics, key
    assert metrics["epochs"] == 2 and metrics["num_params"] == 11436 and metrics["seed"] == 42
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    best = next(p for p in (run / "checkpoints").glob("epoch_*.ckpt"))
    eval_cfg = compose_config("eval", [f"ckpt_path={best}"], tmp_path / "eval")
    result = evaluate(eval_cfg)
    assert result["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)


@pytest.mark.parametrize("entry", ["eval", "predict", "export"])
def test_checkpoint_entry_points_take_data_and_system_keys_with_or_without_plus(entry, tmp_path):
    # the docs say `eval ckpt_path=... system.beam_width=5`: the empty nodes take keys they do not hold
    cfg = compose_config(entry, ["ckpt_path=x.ckpt", "system.beam_width=5", "data.test=t.txt", "+data.width=1600",
                                 "++system.ctc_decode_weight=0.5"], tmp_path)
    assert dict(cfg.system) == {"beam_width": 5, "ctc_decode_weight": 0.5}
    assert dict(cfg.data) == {"test": "t.txt", "width": 1600}
    assert dict(compose_config(entry, ["ckpt_path=x.ckpt"], tmp_path).system) == {}
    with pytest.raises(ConfigCompositionException, match="sytem"):  # a misspelt top-level key is still refused
        compose_config(entry, ["ckpt_path=x.ckpt", "sytem.beam_width=5"], tmp_path)


def test_eval_names_a_missing_checkpoint(tmp_path):
    cfg = compose_config("eval", [f"ckpt_path={tmp_path}/nope.ckpt"], tmp_path)
    with pytest.raises(ValueError, match="nope.ckpt: no such checkpoint file"):
        evaluate(cfg)


def test_toy_reverse_learns(tmp_path):
    """The reverse task reaches >= 0.9 sequence accuracy in a short CPU run."""
    cfg = compose_config(
        "train",
        ["experiment=toy_reverse", "data.num_train=6000", "data.min_length=3", "data.max_length=6",
         "trainer.max_epochs=4", "callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=csv"],
        tmp_path,
    )
    metrics = train(cfg)
    assert metrics["test/acc"] >= 0.9, metrics
    # the exposure-bias gap: the same encoding decoded teacher-forced and free-running
    for stage in ("val", "test"):
        assert metrics[f"{stage}/exposure_gap"] == pytest.approx(metrics[f"{stage}/loss_free"] - metrics[f"{stage}/loss"],
                                                                  abs=1e-5)
        assert metrics[f"{stage}/exposure_gap_acc"] == pytest.approx(
            metrics[f"{stage}/token_acc_tf"] - metrics[f"{stage}/token_acc_free"], abs=1e-5)
        assert 0.9 <= metrics[f"{stage}/token_acc_free"] <= metrics[f"{stage}/token_acc_tf"] + 0.02
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert "val/exposure_gap" in written and "test/exposure_gap" in written
    # reversing reads the source backwards: the attention's argmax moves backwards at almost every step
    assert written["test/attn_monotonic"] < 0.3 and 0 <= written["test/attn_entropy"] < 1.0
    assert 0.5 < written["test/attn_coverage"] <= 1.0
