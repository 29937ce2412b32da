"""Export to ONNX and TorchScript, verified against PyTorch; onnxruntime eval and predict; the torch-free runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import compose_config
from ocr_fakes import write_text_lines
from seq2seq_lab.train import train

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_thread")

QUIET = ["logger=csv", "callbacks.progress_bar=null", "callbacks.model_summary=null", "callbacks.lr_monitor=null"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """24 training lines of 3-5 characters of varied widths, 12 validation and 12 test lines."""
    root = tmp_path_factory.mktemp("corpus")
    for i, (split, n) in enumerate((("train", 24), ("val", 12), ("test", 12))):
        part = write_text_lines(root / f"part{i}", "abcdef", 4, {split: n}, size=(72, 32), seed=i)
        (root / f"{split}.txt").write_text("".join(f"part{i}/{line}\n" for line in
                                                   (part / f"{split}.txt").read_text().splitlines()))
    (root / "charset.txt").write_text("".join(c + "\n" for c in "abcdef"))
    return root


def _train(corpus: Path, run: Path, experiment: str, extra: list[str]) -> Path:
    overrides = [
        f"experiment={experiment}", f"data.train={corpus}/train.txt", f"data.val={corpus}/val.txt",
        f"data.test={corpus}/test.txt", f"data.charset={corpus}/charset.txt", "data.max_length=4", "data.width=96",
        "data.batch_size=8", "data.num_workers=0", "trainer.max_epochs=12", "model.width_mult=0.25",
        "model.rnn_hidden=32", "system.optimizer.lr=0.003", "threads=1", "test=false", *QUIET, *extra,
    ]
    train(compose_config("train", overrides, run))
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def checkpoints(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "attention": _train(corpus, root / "attention", "ocr_crnn_attention",
                            ["model.hidden_dim=32", "model.embed_dim=8", "model.teacher_force=1.0"]),
        # barely trained: a CTC model soon reads only blanks for a while; this one still reads characters
        "ctc": _train(corpus, root / "ctc", "ocr_crnn_ctc", ["trainer.max_epochs=1", "system.optimizer.lr=0.0001"]),
    }


@pytest.mark.parametrize("kind", ["attention", "ctc"])
def test_exported_onnx_reads_the_test_split_as_pytorch_does(kind, corpus, checkpoints, tmp_path):
    from seq2seq_lab.eval import evaluate
    from seq2seq_lab.export import export

    ckpt = checkpoints[kind]
    summary = export(compose_config("export", [f"ckpt_path={ckpt}", "int8=true"], tmp_path / "export"))
    assert summary["kind"] == kind and summary["verify"]["differing"] == 0 and summary["verify"]["lines"] == 12
    assert summary["int8"]["verify"]["lines"] == 12 and Path(summary["int8"]["path"]).is_file()
    meta = json.loads((tmp_path / "export" / "export.json").read_text())
    assert meta["path"] == summary["path"]

    exported = evaluate(compose_config("eval", [f"ckpt_path={ckpt}", "backend=onnxruntime", f"model_path={summary['path']}",
                                                "+data.num_workers=0"], tmp_path / "ort"))
    reference = evaluate(compose_config("eval", [f"ckpt_path={ckpt}", "+data.num_workers=0", "breakdown=false",
                                                 "trainer=cpu"], tmp_path / "torch"))
    for key in ("test/line_acc", "test/cer", "test/ned"):
        assert exported[key] == pytest.approx(reference[key], abs=1e-6), key
    assert reference["test/cer"] > 0  # not all right...

    from seq2seq_lab.deploy.runtime import LineReader

    images = [corpus / line.split()[0] for line in (corpus / "test.txt").read_text().splitlines()]
    assert sum(1 for text, _ in LineReader(summary["path"]).read(images, batch_size=5) if text) >= 6  # ...nor empty


def test_torchscript_export_is_verified_too(checkpoints, tmp_path):
    from seq2seq_lab.export import export

    summary = export(compose_config("export", [f"ckpt_path={checkpoints['attention']}", "format=torchscript"], tmp_path))
    assert summary["path"].endswith("model.pt") and summary["verify"]["differing"] == 0
    module = torch.jit.load(summary["path"])
    assert module(torch.zeros(3, 3, 32, 60), torch.tensor([60, 41, 9]))[0].shape == (3, 5)  # any batch and width


def test_an_export_that_reads_differently_is_refused_and_removed(checkpoints, tmp_path, monkeypatch):
    import seq2seq_lab.deploy.exporting as exporting
    from seq2seq_lab.export import ExportError, export

    real = exporting.decode_outputs
    monkeypatch.setattr(exporting, "decode_outputs", lambda meta, out: [(t + "x", c) for t, c in real(meta, out)])
    with pytest.raises(ExportError, match=r"model.onnx: 12 of 12 validation lines decode differently .*pytorch '.*' vs exported '.*x'"):
        export(compose_config("export", [f"ckpt_path={checkpoints['ctc']}"], tmp_path))
    assert not (tmp_path / "model.onnx").exists()
