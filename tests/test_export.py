"""Export to ONNX and TorchScript, verified against PyTorch; onnxruntime eval and predict; the torch-free runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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


@pytest.fixture(scope="module")
def exports(checkpoints, tmp_path_factory):
    """``exports(kind)``: the summary of exporting that checkpoint to ONNX with an int8 copy (once per kind)."""
    from seq2seq_lab.export import export

    done = {}

    def get(kind: str) -> dict:
        if kind not in done:
            run = tmp_path_factory.mktemp(f"export_{kind}")
            done[kind] = export(compose_config("export", [f"ckpt_path={checkpoints[kind]}", "int8=true"], run))
            assert json.loads((run / "export.json").read_text())["path"] == done[kind]["path"]
        return done[kind]

    return get


@pytest.mark.parametrize("kind", ["attention", "ctc"])
def test_exported_onnx_reads_the_test_split_as_pytorch_does(kind, corpus, checkpoints, exports, tmp_path):
    from seq2seq_lab.eval import evaluate

    ckpt = checkpoints[kind]
    summary = exports(kind)
    assert summary["kind"] == kind and summary["verify"]["differing"] == 0 and summary["verify"]["lines"] == 12
    assert summary["int8"]["verify"]["lines"] == 12 and Path(summary["int8"]["path"]).is_file()

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


def test_a_checkpoint_read_with_a_beam_views_and_pieces_exports_verified_against_its_greedy_reading(
        checkpoints, tmp_path, caplog):
    """The graph reads greedily, each line alone: a checkpoint whose config reads otherwise (ocr_zh_cpu's beam,
    language model and views; ocr_zh_cpu_lines' pieces) still exports, verified against PyTorch reading so."""
    import itertools

    from seq2seq_lab.assemble import load_trained
    from seq2seq_lab.export import export

    reading = {"beam_width": 3, "views": [{"right": 2}, {"down": 1}], "piece_chars": 2}
    datamodule, system = load_trained(str(checkpoints["attention"]), {"system": reading})
    system.eval()
    batches = list(itertools.islice(datamodule.val_dataloader(), 2))
    with torch.no_grad():
        configured = [t for b in batches for t in system.transcribe(b["inputs"], b["input_lengths"])[0]]
        assert system.read_as_exported() == ["beam_width=3", "views", "piece_chars=2"]
        greedy = [t for b in batches for t in system.transcribe(b["inputs"], b["input_lengths"])[0]]
    assert configured != greedy, "the configured reading differs from the graph's on some line"
    overrides = ["system.beam_width=3", "system.views=[{right: 2}, {down: 1}]", "system.piece_chars=2"]
    with caplog.at_level("INFO"):
        summary = export(compose_config("export", [f"ckpt_path={checkpoints['attention']}", *overrides], tmp_path))
    assert summary["verify"] == {"lines": 12, "differing": 0, "agreement": 1.0}
    assert "checkpoint's beam_width=3, views, piece_chars=2 are not part of it" in caplog.text


def test_an_export_that_reads_differently_is_refused_and_removed(checkpoints, tmp_path, monkeypatch):
    import seq2seq_lab.deploy.exporting as exporting
    from seq2seq_lab.export import ExportError, export

    real = exporting.decode_outputs
    monkeypatch.setattr(exporting, "decode_outputs", lambda meta, out: [(t + "x", c) for t, c in real(meta, out)])
    with pytest.raises(ExportError, match=r"model.onnx: 12 of 12 validation lines decode differently .*pytorch '.*' vs exported '.*x'"):
        export(compose_config("export", [f"ckpt_path={checkpoints['ctc']}"], tmp_path))
    assert not (tmp_path / "model.onnx").exists()


@pytest.fixture(scope="module")
def exported(exports):
    """The attention model's ONNX file (verified)."""
    return Path(exports("attention")["path"])


def _test_images(corpus: Path) -> list[Path]:
    return [corpus / line.split()[0] for line in (corpus / "test.txt").read_text().splitlines()]


def test_predict_with_onnxruntime_gives_the_rows_of_pytorch(corpus, checkpoints, exported, tmp_path):
    from seq2seq_lab.predict import predict

    torch_rows = predict(compose_config("predict", [f"ckpt_path={checkpoints['attention']}", f"inputs={corpus}/test.txt",
                                                    "batch_size=5"], tmp_path / "torch"))
    ort_rows = predict(compose_config("predict", ["backend=onnxruntime", f"model_path={exported}",
                                                  f"inputs={corpus}/test.txt", "batch_size=5"], tmp_path / "ort"))
    assert [(p, t) for p, t, _ in ort_rows] == [(p, t) for p, t, _ in torch_rows]
    assert [c for *_, c in ort_rows] == pytest.approx([c for *_, c in torch_rows], abs=1e-4)
    header = (tmp_path / "ort" / "predictions.tsv").read_text().splitlines()[0]
    assert header == "path\ttext\tconfidence\terror"


def test_a_model_read_with_trim_margins_exports_it_and_both_backends_cut_loose_lines_alike(corpus, checkpoints, tmp_path):
    from PIL import Image

    from seq2seq_lab.deploy.runtime import LineReader
    from seq2seq_lab.export import export
    from seq2seq_lab.predict import predict

    loose = tmp_path / "loose"
    loose.mkdir()
    for path in _test_images(corpus):  # 30 columns of the line's paper on its left, 50 on its right
        line = Image.open(path)
        canvas = Image.new(line.mode, (line.width + 80, line.height), line.getpixel((0, 0)))
        canvas.paste(line, (30, 0))
        canvas.save(loose / path.name)
    trim = ["data.trim_margins=true"]
    summary = export(compose_config("export", [f"ckpt_path={checkpoints['attention']}", *trim], tmp_path / "export"))
    assert LineReader(summary["path"]).meta["trim_margins"] is True
    torch_rows = predict(compose_config("predict", [f"ckpt_path={checkpoints['attention']}", f"inputs={loose}", *trim],
                                        tmp_path / "torch"))
    ort_rows = predict(compose_config("predict", ["backend=onnxruntime", f"model_path={summary['path']}",
                                                  f"inputs={loose}"], tmp_path / "ort"))
    assert [(p, t) for p, t, _ in ort_rows] == [(p, t) for p, t, _ in torch_rows]
    untrimmed = predict(compose_config("predict", [f"ckpt_path={checkpoints['attention']}", f"inputs={loose}"],
                                       tmp_path / "untrimmed"))
    assert [c for *_, c in untrimmed] != pytest.approx([c for *_, c in torch_rows], abs=1e-4)  # the cut was made


def test_both_backends_count_the_lines_squashed_past_what_the_model_reads(corpus, checkpoints, exported, tmp_path,
                                                                          caplog):
    """A line more than SQUASH_WARN times the model's width (96 here) at its height is read, and counted in a warning."""
    from PIL import Image

    from seq2seq_lab.deploy.runtime import oriented_size
    from seq2seq_lab.predict import SQUASH_WARN, predict

    lines = tmp_path / "lines"
    lines.mkdir()
    line = Image.open(_test_images(corpus)[0]).convert("L")  # 72 x 32
    line.save(lines / "a_fits.png")
    long = Image.new("L", (300, 32), line.getpixel((0, 0)))  # 3.1x the width: the line four times over
    for x in range(0, 300 - 71, 75):
        long.paste(line, (x, 0))
    long.save(lines / "b_long.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored a quarter turn off: read as 300 x 32
    long.transpose(Image.Transpose.ROTATE_90).save(lines / "c_long_turned.jpg", exif=exif)
    long.transpose(Image.Transpose.ROTATE_90).save(lines / "d_tall.png")  # 32 x 300: read narrow, not flagged
    assert oriented_size((lines / "c_long_turned.jpg").read_bytes()) == (300, 32)
    assert oriented_size((lines / "d_tall.png").read_bytes()) == (32, 300)
    assert 300 / 96 > SQUASH_WARN > 72 / 96
    for backend in ([f"ckpt_path={checkpoints['attention']}"], ["backend=onnxruntime", f"model_path={exported}"]):
        caplog.clear()
        rows = predict(compose_config("predict", [*backend, f"inputs={lines}"], tmp_path / backend[0].split("=")[0]))
        assert [Path(p).name for p, *_ in rows] == ["a_fits.png", "b_long.png", "c_long_turned.jpg", "d_tall.png"]
        warned = [r.getMessage() for r in caplog.records if "squashed" in r.getMessage()]
        assert len(warned) == 1 and warned[0].startswith("2 of 4 image(s) are more than 2.6x the 96 pixels")
        assert "b_long.png, 3.1x" in warned[0]
    caplog.clear()
    predict(compose_config("predict", [f"ckpt_path={checkpoints['attention']}", f"inputs={lines / 'a_fits.png'}"],
                           tmp_path / "one"))
    assert not [r for r in caplog.records if "squashed" in r.getMessage()]


def _copy_tree(images: list[Path], target: Path, corrupt: int) -> None:
    target.mkdir()
    for i in range(1000):
        (target / f"{i:04d}.png").write_bytes(images[i % len(images)].read_bytes())
    for i in range(corrupt):
        (target / f"{i * 300 + 7:04d}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def test_onnxruntime_predict_over_1000_images_with_3_corrupt_survives_a_kill_and_resumes(corpus, exported, tmp_path):
    images = tmp_path / "images"
    _copy_tree(_test_images(corpus), images, corrupt=3)
    run = tmp_path / "run"
    args = [sys.executable, "-m", "seq2seq_lab.predict", "backend=onnxruntime", f"model_path={exported}",
            f"inputs={images}", "batch_size=1", "threads=1", f"hydra.run.dir={run}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    table = run / "predictions.tsv"
    while proc.poll() is None and (not table.exists() or table.read_text().count("\n") < 151):  # header + 150
        time.sleep(0.01)
    assert proc.poll() is None, "predict finished before it could be killed"
    proc.kill()
    proc.wait()
    before = table.read_text().count("\n") - 1
    table_before = table.read_text()
    assert 150 <= before < 1000

    resumed = subprocess.run([*args, "resume=true"], capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    logged = resumed.stdout + resumed.stderr
    assert f"resume: {before} of 1000 images already in" in logged
    rows = [line.split("\t") for line in table.read_text().splitlines()[1:]]
    assert sorted(r[0] for r in rows) == sorted(str(p) for p in images.iterdir())  # each image once
    bad = [r for r in rows if r[3]]
    assert sorted(Path(r[0]).name for r in bad) == ["0007.png", "0307.png", "0607.png"]
    assert all("cannot read image" in r[3] and r[1] == "" for r in bad)
    printed = [line for line in resumed.stdout.splitlines() if line.count("\t") == 2 and not line.startswith("[")]
    assert len(printed) == 1000 - before
    met = sum(1 for r in bad if r[0] not in table_before)  # the corrupt images the resumed run read
    assert not met or f"{met} unreadable image(s) (on_bad_image=row)" in logged


def test_the_runtime_reads_lines_in_a_venv_without_torch(corpus, exported, tmp_path):
    """runtime.py and the .onnx, copied to an environment that has numpy, Pillow and onnxruntime only."""
    import onnxruntime
    import seq2seq_lab.deploy.runtime as runtime
    from seq2seq_lab.deploy.runtime import LineReader

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(onnxruntime.__file__).parents[1]  # this environment's site-packages: link the few packages in
    packages = tmp_path / "packages"
    packages.mkdir()
    for name in ("numpy", "numpy.libs", "PIL", "pillow.libs", "onnxruntime", "flatbuffers", "google", "packaging"):
        if (site / name).exists():
            (packages / name).symlink_to(site / name)
    (next(venv.glob("lib/python*/site-packages")) / "deployed.pth").write_text(f"{packages}\n")
    python = venv / "bin" / "python"
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, text=True)
    assert no_torch.returncode != 0 and "No module named 'torch'" in no_torch.stderr

    deployed = tmp_path / "deployed"
    deployed.mkdir()
    (deployed / "runtime.py").write_bytes(Path(runtime.__file__).read_bytes())
    (deployed / "model.onnx").write_bytes(exported.read_bytes())
    images = _test_images(corpus)
    out = subprocess.run([python, "runtime.py", "model.onnx", *map(str, images), "--batch-size", "4"], cwd=deployed,
                         capture_output=True, text=True, env={"PATH": os.environ["PATH"], "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = [line.split("\t") for line in out.stdout.splitlines()]
    expected = LineReader(exported).read(images, batch_size=4)
    assert [(p, t) for p, t, _ in got] == [(str(p), t) for p, (t, _) in zip(images, expected)]
    assert any(t for _, t, _ in got)


def test_an_mnist_classifier_exports_and_evaluates_alike(fake_data_dir, tmp_path, monkeypatch):
    from seq2seq_lab.eval import evaluate
    from seq2seq_lab.export import export

    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))
    train(compose_config("train", ["experiment=mnist_attention", "trainer.max_epochs=1", "data.batch_size=50",
                                   "data.train_subset=300", "data.val_size=100", "model.hidden_dim=16", "test=false",
                                   *QUIET], tmp_path / "run"))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    summary = export(compose_config("export", [f"ckpt_path={ckpt}", "int8=true"], tmp_path / "export"))
    assert summary["kind"] == "classifier" and summary["verify"] == {"lines": 100, "differing": 0, "agreement": 1.0}
    exported = evaluate(compose_config("eval", [f"ckpt_path={ckpt}", "backend=onnxruntime",
                                                f"model_path={summary['path']}"], tmp_path / "ort"))
    reference = evaluate(compose_config("eval", [f"ckpt_path={ckpt}", "trainer=cpu"], tmp_path / "torch"))
    assert exported["test/acc"] == pytest.approx(reference["test/acc"], abs=1e-6)


def test_predict_with_onnxruntime_never_imports_torch(corpus, exported, tmp_path):
    code = ("import sys\n"
            f"sys.argv = ['predict', 'backend=onnxruntime', 'model_path={exported}', 'inputs={corpus}/test.txt',\n"
            f"            'hydra.run.dir={tmp_path}']\n"
            "from seq2seq_lab.predict import main\n"
            "main()\n"
            "print('torch imported:', 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch imported: False" in out.stdout
    assert (tmp_path / "predictions.tsv").read_text().count("\n") == 13  # header + 12


def test_export_without_validation_lines_names_them_and_keeps_nothing(checkpoints, tmp_path, monkeypatch):
    """The validation lines are read before the export, so their absence is reported at once."""
    import seq2seq_lab.export as export_module
    from seq2seq_lab.errors import ConfigError
    from seq2seq_lab.export import export

    with monkeypatch.context() as patch:
        patch.setattr(export_module, "export_onnx", lambda *a, **k: pytest.fail("exported before reading the lines"))
        with pytest.raises(ConfigError, match=r"verify reads 2 validation batches: /nope/val.txt: no such list file.*"
                                              r"verify=false"):
            export(compose_config("export", [f"ckpt_path={checkpoints['ctc']}", "+data.val=/nope/val.txt"], tmp_path))
    assert not (tmp_path / "model.onnx").exists()
    summary = export(compose_config("export", [f"ckpt_path={checkpoints['ctc']}", "+data.val=/nope/val.txt",
                                               "verify=false"], tmp_path))
    assert "verify" not in summary and Path(summary["path"]).is_file()


_EXPORT_AT_ANY_WIDTH = """
import sys, numpy as np, onnxruntime as ort, torch
from seq2seq_lab.data.contract import DataContract
from seq2seq_lab.data.tokenizer import Tokenizer
from seq2seq_lab.deploy.exporting import export_onnx, export_torchscript
from seq2seq_lab.deploy.graphs import inference_graph
from seq2seq_lab.models.ocr_builders import CRNNAttention
from seq2seq_lab.systems import OCRSystem

torch.manual_seed(0)
out, positions, stride, attention = sys.argv[1], {"true": True, "concat": "concat"}[sys.argv[2]], int(sys.argv[3]), sys.argv[4]
tokenizer = Tokenizer("abcdefgh")
model = CRNNAttention(6, tokenizer.vocab_size, channels=1, width=200, hidden_dim=32, embed_dim=8,
                      attention=attention, positions=positions, width_mult=0.25, rnn_hidden=32, column_stride=stride)
if attention == "location":  # its location term starts at zero: make it count
    torch.nn.init.normal_(model.decoder.attention.location_proj.weight, std=0.5)
system = OCRSystem(model, tokenizer, optimizer=torch.optim.Adam).eval()
contract = DataContract("lines", tokenizer.vocab_size, 6, channels=1, height=32, width=200, tokenizer=tokenizer)
meta = export_onnx(system, contract, out + "/model.onnx")
export_torchscript(system, contract, out + "/model.pt")  # a second export from the same system
assert not meta["fixed_width"], "the ONNX graph fixed the width"
assert type(system.net.encoder.rnns[0]).__name__ == "_BiRNN", "exporting swapped the system's encoder"
inputs, widths = torch.rand(3, 1, 32, 120) * 2 - 1, torch.tensor([120, 80, 60])  # narrower than traced
with torch.no_grad():
    tokens, log_probs = inference_graph(system)[1](inputs, widths)
    traced = torch.jit.load(out + "/model.pt")(inputs, widths)
onnx_tokens, onnx_log_probs = ort.InferenceSession(out + "/model.onnx").run(
    None, {"inputs": inputs.numpy(), "widths": widths.numpy()})
assert torch.equal(traced[0], tokens) and np.array_equal(onnx_tokens, tokens.numpy()), "tokens differ"
assert np.abs(onnx_log_probs - log_probs.numpy()).max() < 1e-4, "log-probabilities differ"
"""


@pytest.mark.parametrize("positions, stride, attention", [("true", 4, "mlp"), ("concat", 8, "mlp"), ("true", 4, "location")])
def test_column_encodings_export_for_any_width(positions, stride, attention, tmp_path, entry_points):
    """ocr_zh_cpu's memory carries column encodings (added, or appended as on a CPU without bf16; the
    second case with a column per 8 pixels, model.column_stride=8); ONNX and TorchScript exports make
    them for each batch's width. Exporting twice from one system
    works: an export leaves the system's encoder alone.
    In a process that has exported nothing, as ``python -m seq2seq_lab.export`` runs (forked from one that has
    only imported the package): after an MNIST export in the same process, torch.export fixes the width of
    an mlp-attention CRNN, with or without the encodings. A location attention's history (the weights of the
    steps before) exports with the decoding loop."""
    done = entry_points.run(["-c", _EXPORT_AT_ANY_WIDTH, str(tmp_path), positions, str(stride), attention], tmp_path,
                            dict(os.environ), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
