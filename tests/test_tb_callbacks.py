"""TensorBoard callbacks: attention, sample and confusion images, lr, and the hparams tab's metrics."""

from __future__ import annotations

import logging
import math
import warnings

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from helpers import compose_config
from seq2seq_lab.assemble import build_datamodule, build_system
from seq2seq_lab.callbacks.figures import CJK_FAMILIES, attention_figure, confusion_figure, samples_figure
from seq2seq_lab.callbacks.inspection import inspect_batch
from seq2seq_lab.callbacks.sample_predictions import markdown_table
from seq2seq_lab.callbacks.tb import head
from seq2seq_lab.train import train

TINY = ["data.train_subset=300", "data.val_size=100", "data.batch_size=100", "threads=1",
        "callbacks.progress_bar=null", "callbacks.model_summary=null"]


@pytest.fixture(autouse=True)
def data_env(fake_data_dir, monkeypatch):
    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def events(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_images_lr_and_hparams_metrics_in_tensorboard(tmp_path):
    cfg = compose_config("train", ["experiment=mnist_attention", "trainer.max_epochs=2",
                                   "callbacks.attention_images.every_n_epochs=1",
                                   "callbacks.attention_images.num_samples=2", *TINY], tmp_path)
    train(cfg)
    acc = events(tmp_path)
    tags = acc.Tags()
    assert {"attention/val", "samples/val", "confusion/val"} <= set(tags["images"])
    assert len(acc.Images("attention/val")) == 2  # every epoch
    assert len(acc.Images("samples/val")) == 1 and len(acc.Images("confusion/val")) == 1  # the last epoch
    assert acc.Images("attention/val")[0].encoded_image_string[:4] == b"\x89PNG"
    assert "samples/val/text_summary" in tags["tensors"]
    assert "lr-Adam" in tags["scalars"]  # LearningRateMonitor

    # the hparams tab lists val/acc_best and test/acc, and their last values are the real ones
    content = acc.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"val/acc_best", "test/acc"}
    assert {h.name for h in experiment.hparam_infos} >= {"model.hidden_dim", "model.cell", "seed"}
    for tag in ("val/acc_best", "test/acc"):
        assert math.isfinite(acc.Scalars(tag)[-1].value)


def test_no_attention_image_for_a_model_without_attention(tmp_path):
    cfg = compose_config("train", ["experiment=mnist_simple", "trainer.max_epochs=1", "test=false",
                                   "callbacks.model_checkpoint=null", *TINY], tmp_path)
    train(cfg)
    images = events(tmp_path).Tags()["images"]
    assert "attention/val" not in images and "samples/val" in images


def test_no_tensorboard_logger_no_images(tmp_path):
    cfg = compose_config("train", ["experiment=mnist_attention", "trainer.max_epochs=1", "test=false",
                                   "logger=csv", *TINY], tmp_path)
    train(cfg)
    assert not (tmp_path / "tensorboard").exists()


def test_inspect_a_seq2seq_system(tmp_path):
    cfg = compose_config("train", ["experiment=toy_reverse", "data.num_train=64", "data.num_val=16",
                                   "data.num_test=16", "data.batch_size=8"], tmp_path)
    datamodule = build_datamodule(cfg)
    system = build_system(cfg, datamodule)
    datamodule.setup("fit")
    batch = head(next(iter(datamodule.val_dataloader())), 3)
    result = inspect_batch(system, batch)
    assert len(result.truths) == len(result.preds) == 3
    assert result.truths[0] == datamodule.tokenizer.decode(batch["targets"][0])
    n, steps, positions = result.attention.shape  # (N, L, T')
    assert n == 3 and positions == batch["inputs"].size(1)
    assert [len(s) for s in result.steps] == [steps] * 3
    assert system.training  # mode restored
    fig = attention_figure(result.inputs, result.attention, result.steps, result.truths)
    assert len(fig.axes) == 6


def test_inspect_a_transcribing_system():
    """A CTC-like system: texts from ``transcribe``, no attention."""
    from seq2seq_lab.data.tokenizer import Tokenizer

    class Transcriber(torch.nn.Module):
        capabilities = frozenset({"transcribe"})

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(1, 1)
            self.tokenizer = Tokenizer("0123456789")

        def transcribe(self, images, input_lengths=None):
            return ["12"] * images.size(0), torch.ones(images.size(0))

    targets, _ = Transcriber().tokenizer.batch_encode(["12", "3"])
    result = inspect_batch(Transcriber(), {"inputs": torch.zeros(2, 1, 32, 100), "targets": targets})
    assert result.truths == ["12", "3"] and result.preds == ["12", "12"] and result.correct == [True, False]
    assert result.attention is None


def test_inspect_unknown_system_is_none():
    class Other(torch.nn.Module):
        capabilities = frozenset()  # declares nothing an inspection can use

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Linear(1, 1)

    assert inspect_batch(Other(), {"inputs": torch.zeros(2, 3, 1), "targets": torch.zeros(2, 4)}) is None


def test_figures_and_text():
    images = torch.rand(3, 1, 32, 128)
    assert len(samples_figure(images, ["12", "34", "5"], ["12", "3", "5"]).axes) == 3
    matrix = torch.tensor([[5, 1], [0, 4]])
    fig = confusion_figure(matrix)
    assert "accuracy 0.9000" in fig.axes[0].get_title()
    table = markdown_table(["12", "34"], ["12", "3"])
    assert "| 1 | `34` | `3` | ✗ |" in table and table.count("\n") == 3


def test_chinese_titles_draw_without_missing_glyphs_or_font_warnings(caplog):
    from matplotlib import font_manager

    if not {f.name for f in font_manager.fontManager.ttflist} & set(CJK_FAMILIES):
        pytest.skip("no CJK font installed (make fonts)")
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="matplotlib.font_manager"):
        warnings.filterwarnings("error", "Glyph", UserWarning)  # "Glyph ... missing from font(s)"
        samples_figure(torch.rand(1, 1, 32, 128), ["复该德"], ["复该"]).canvas.draw()
    assert not [r.getMessage() for r in caplog.records if r.name == "matplotlib.font_manager"]  # e.g. "findfont: ..."
