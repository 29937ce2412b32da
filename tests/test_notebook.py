"""notebooks/inspect_run.ipynb runs on a tiny finished run, and is committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from helpers import compose_config
from seq2seq_lab.train import train

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "inspect_run.ipynb"


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.fixture
def tiny_run(fake_data_dir, monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))
    threads = torch.get_num_threads()
    run = tmp_path / "run"
    try:
        train(compose_config("train", [
            "experiment=mnist_attention", "trainer.max_epochs=1", "data.train_subset=200", "data.val_size=100",
            "data.batch_size=100", "threads=1", "callbacks.progress_bar=null", "callbacks.model_summary=null",
        ], run))
    finally:
        torch.set_num_threads(threads)
    return run


def test_notebook_executes_on_a_run(tiny_run, monkeypatch, tmp_path):
    monkeypatch.setenv("S2S_RUN_DIR", str(tiny_run))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # kernel "python3" is the one installed with ipykernel in this environment: it runs sys.executable
    client = NotebookClient(nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    text = "\n".join(  # stdout only: stderr (e.g. a font warning) may arrive between the writes of one print
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
        if out.get("name") != "stderr"
    )
    assert "test/acc" in text and "val/acc_best" in text  # metrics.json
    assert "scalar tags:" in text and "train/loss" in text  # TensorBoard scalars
    assert "parameters, epoch" in text  # the checkpoint
    assert "attention (4, 10, 28)" in text  # (samples, decoder steps, input rows)
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # curves, samples, attention
