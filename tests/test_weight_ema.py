"""callbacks.ema: the average of the weights is validated, saved, tested after fit and resumed."""

from __future__ import annotations

from typing import ClassVar

import lightning as L
import pytest
import torch

from helpers import compose_config
from seq2seq_lab.checkpoints import load_checkpoint
from seq2seq_lab.train import train

RUN = ["experiment=mnist_simple", "trainer.max_epochs=2", "data.batch_size=50", "data.train_subset=400",
       "data.val_size=100", "model.hidden_dim=16", "trainer.deterministic=true",
       "callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=csv"]
EMA = ["+callbacks.ema._target_=seq2seq_lab.callbacks.WeightEMA", "+callbacks.ema.decay=0.8"]


class WeightsAtTest(L.Callback):
    """Keeps a copy of the weights the automatic test reads."""

    seen: ClassVar[dict[str, torch.Tensor]] = {}

    def on_test_start(self, trainer, pl_module) -> None:
        WeightsAtTest.seen = {k: v.clone() for k, v in pl_module.state_dict().items()}


@pytest.fixture(autouse=True)
def data_env(fake_data_dir, monkeypatch):
    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))


def _differ(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


def test_the_checkpoint_and_the_test_after_fit_hold_the_average(tmp_path):
    probe = [f"+callbacks.probe._target_={__name__}.WeightsAtTest"]
    train(compose_config("train", [*RUN, *EMA, "+callbacks.ema.start_step=3", *probe], tmp_path))
    best = next((tmp_path / "checkpoints").glob("epoch_*.ckpt"))
    checkpoint = load_checkpoint(best)
    average, trained = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert _differ(average, trained)  # 16 steps at decay 0.8: the average lags the trained weights
    # Lightning's own callback would have put the trained weights back for the test
    assert WeightsAtTest.seen.keys() == average.keys() and not _differ(WeightsAtTest.seen, average)


def test_the_average_follows_until_start_step_then_moves_1_minus_decay_and_copies_counters():
    from seq2seq_lab.callbacks import WeightEMA

    ema, zeros, ones, n = WeightEMA(decay=0.75, start_step=2), torch.zeros(2), torch.ones(2), torch.tensor(1)
    assert ema.should_update(step_idx=1) and torch.equal(ema._average(zeros, ones, n), ones)
    assert ema.should_update(step_idx=2) and torch.equal(ema._average(zeros, ones, n), torch.full((2,), 0.25))
    assert torch.equal(ema._average(torch.tensor([3]), torch.tensor([7]), n), torch.tensor([7]))  # num_batches_tracked
    assert not ema.should_update(epoch_idx=0)


def test_a_run_shorter_than_start_step_saves_its_trained_weights(tmp_path):
    train(compose_config("train", [*RUN, *EMA, "+callbacks.ema.start_step=1000", "test=false"], tmp_path))
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert not _differ(checkpoint["state_dict"], checkpoint["current_model_state"])


def test_a_resumed_run_goes_on_from_the_trained_weights_and_the_average(tmp_path):
    args = [*RUN, *EMA, "+callbacks.ema.start_step=3", "test=false", "system.scheduler=null"]  # a schedule spans its run
    train(compose_config("train", args, tmp_path / "whole"))
    train(compose_config("train", [*args, "trainer.max_epochs=1"], tmp_path / "resumed"))
    train(compose_config("train", [*args, f"ckpt_path={tmp_path}/resumed/checkpoints/last.ckpt"], tmp_path / "resumed"))
    whole = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.ckpt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == whole["global_step"] == 16
    for key in ("state_dict", "current_model_state"):
        for name, value in whole[key].items():
            torch.testing.assert_close(resumed[key][name], value, rtol=0, atol=1e-6, msg=f"{key}: {name}")


def test_a_decay_outside_0_1_is_refused():
    from seq2seq_lab.callbacks import WeightEMA

    with pytest.raises(ValueError, match=r"callbacks.ema.decay=1.0: must be in \[0, 1\)"):
        WeightEMA(decay=1.0)
