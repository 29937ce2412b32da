"""system.compile: the network's forward passes through torch.compile, with checkpoints that keep their keys."""

from __future__ import annotations

import pytest
import torch

from helpers import compose_config
from seq2seq_lab.checkpoints import load_checkpoint
from seq2seq_lab.train import train



@pytest.fixture(scope="module")
def inductor():
    """Skip where torch.compile cannot build CPU kernels (it needs a C++ compiler and Python's headers)."""
    try:
        torch.compile(lambda x: (x * 2).sin())(torch.ones(3))
    except Exception as err:  # noqa: BLE001 - any toolchain failure means: not on this machine
        pytest.skip(f"torch.compile cannot build CPU kernels here: {type(err).__name__}: {str(err)[:200]}")

QUIET = ["callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=csv"]
TINY = ["experiment=mnist_attention", "trainer.max_epochs=1", "data.batch_size=50", "data.train_subset=200",
        "data.val_size=100", "model.hidden_dim=8", "trainer.deterministic=true", "threads=1", *QUIET]


def test_a_compiled_run_trains_like_the_eager_one_and_its_checkpoint_loads_uncompiled(inductor, fake_data_dir, tmp_path,
                                                                                       monkeypatch):
    from seq2seq_lab.assemble import load_trained
    from seq2seq_lab.systems.base import BaseSystem

    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))
    compiled_calls = []
    original = BaseSystem.compile_modules
    monkeypatch.setattr(BaseSystem, "compile_modules", lambda self: (compiled_calls.append(1), original(self)))
    eager = train(compose_config("train", TINY, tmp_path / "eager"))
    assert not compiled_calls
    compiled = train(compose_config("train", [*TINY, "system.compile=true"], tmp_path / "compiled"))
    assert compiled_calls
    for key in ("test/acc", "val/loss", "test/loss"):  # same data order and initial weights: the same numbers
        assert compiled[key] == pytest.approx(eager[key], abs=2e-3), key

    ckpt = tmp_path / "compiled" / "checkpoints" / "last.ckpt"
    assert set(load_checkpoint(ckpt)["state_dict"]) == set(load_checkpoint(tmp_path / "eager" / "checkpoints" / "last.ckpt")["state_dict"])
    _, system = load_trained(str(ckpt), {"system": {"compile": False}})
    assert not system._compiled and all(torch.isfinite(p).all() for p in system.parameters())
