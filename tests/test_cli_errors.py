"""Every user mistake the entry points know of ends in one message naming the key, file or line: exit 1, no traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
import torch

from entry_points import cli_env
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.predict import collect_inputs


def run_module(module: str, args: list[str], data_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m seq2seq_lab.<module> *args`` in an interpreter of its own."""
    return subprocess.run([sys.executable, "-m", f"seq2seq_lab.{module}", *args, f"hydra.run.dir={cwd}/run"],
                          cwd=cwd, env=cli_env(data_dir), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> Path:
    """Files that are wrong in the ways users' files are."""
    root = tmp_path_factory.mktemp("bad")
    (root / "latin1.txt").write_bytes("images/a.png ok\nimages/caf\xe9.png no\n".encode("latin-1"))
    (root / "lmdb").mkdir()
    (root / "lmdb" / "data.mdb").write_bytes(b"\x00" * 4096)  # not an LMDB database
    Image.new("L", (40, 16), 200).save(root / "line.png")
    return root


QUICK = ["trainer.max_epochs=1", "callbacks.progress_bar=null", "callbacks.model_summary=null", "logger=csv"]

CASES = [
    # (module, args, what the message must name)
    ("train", ["experiment=ocr_crnn_attention", "data.charset=/nope/charset.txt"], "data.charset='/nope/charset.txt'"),
    ("train", ["experiment=ocr_crnn_attention", "data.on_bad_sample=ignore"], "data.on_bad_sample='ignore'"),
    ("train", ["experiment=ocr_crnn_attention", "data.val_fraction=1.5"], "data.val_fraction=1.5"),
    ("train", ["experiment=ocr_crnn_attention", "data.val=null", "data.val_fraction=0.99"], "data.val_fraction=0.99"),
    ("train", ["experiment=ocr_crnn_attention", "data.train={bad}/lmdb"], "{bad}/lmdb: cannot open the LMDB database"),
    ("train", ["experiment=mnist_simple", "data.view=diagonal"], "data.view='diagonal'"),
    ("train", ["experiment=mnist_simple", "data.val_size=6000"], "data.val_size=6000"),
    ("train", ["experiment=toy_reverse", "data.task=rotate"], "data.task='rotate'"),
    ("train", ["experiment=mnist_simple", "model.teacher_force=0.5"], "model.teacher_force=0.5 does nothing for a classifier"),
    ("synth", ["out_dir={tmp}/corpus", "format=gif"], "format must be one of"),
    ("synth", ["out_dir={tmp}/corpus", "length=null", "min_length=5", "max_length=2"], "min_length <= max_length"),
    ("synth", ["out_dir={tmp}/corpus", "text_file=/nope/news.txt"], "text_file='/nope/news.txt'"),
    ("predict", ["ckpt_path=/nope.ckpt", "inputs={bad}/latin1.txt", "batch_size=0"], "batch_size=0"),
    ("predict", ["ckpt_path=/nope.ckpt", "inputs={bad}/latin1.txt"], "{bad}/latin1.txt:2: not UTF-8"),
    ("predict", ["ckpt_path=/nope.ckpt", "inputs={bad}/missing_dir"], "inputs='{bad}/missing_dir'"),
    ("eval", ["ckpt_path=/nope/last.ckpt"], "/nope/last.ckpt: no such checkpoint file"),
    ("eval", ["ckpt_path=/nope/last.ckpt", "backend=tensorrt"], "backend='tensorrt': must be one of pytorch, onnxruntime"),
    ("eval", ["ckpt_path=/nope/last.ckpt", "backend=onnxruntime"], "backend=onnxruntime needs model_path="),
    ("predict", ["inputs={bad}/line.png", "backend=onnxruntime", "model_path={bad}/latin1.txt"],
     "model_path={bad}/latin1.txt: cannot load"),
    ("predict", ["inputs={bad}/latin1.txt", "backend=onnxruntime"], "backend=onnxruntime needs model_path="),
    ("predict", ["inputs={bad}/latin1.txt"], "ckpt_path: the checkpoint to read with is required"),
    ("export", ["ckpt_path=/nope/last.ckpt"], "/nope/last.ckpt: no such checkpoint file"),
    ("export", ["ckpt_path=/nope/last.ckpt", "format=tflite"], "format='tflite': must be one of onnx, torchscript"),
    ("export", ["ckpt_path=/nope/last.ckpt", "bf16=true"], "bf16=true: onnxruntime's CPU kernels"),
]


@pytest.mark.parametrize("module, args, message", CASES, ids=[f"{m}:{a[-1]}" for m, a, _ in CASES])
def test_a_user_error_is_one_message_naming_its_cause(module, args, message, bad_inputs, fake_data_dir, tmp_path,
                                                      entry_points):
    fill = {"bad": str(bad_inputs), "tmp": str(tmp_path)}
    args = [a.format(**fill) for a in args] + (QUICK if module == "train" else []) + [f"hydra.run.dir={tmp_path}/run"]
    result = entry_points.run(["-m", f"seq2seq_lab.{module}", *args], tmp_path, cli_env(fake_data_dir))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert message.format(**fill) in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]


def test_a_forked_run_answers_as_an_interpreter_of_its_own(fake_data_dir, tmp_path, entry_points):
    """The cases above are forked from one process that has done the imports (tests/entry_points.py): the
    same exit status and output as ``python -m`` in an interpreter of its own."""
    args = ["ckpt_path=/nope/last.ckpt", "backend=onnxruntime"]
    own = run_module("eval", args, fake_data_dir, tmp_path)
    forked = entry_points.run(["-m", "seq2seq_lab.eval", *args, f"hydra.run.dir={tmp_path}/run"], tmp_path,
                              cli_env(fake_data_dir))
    stamp = re.compile(r"^\[[0-9-]+ [0-9:,]+\]", re.M)
    assert own.returncode == 1 and "backend=onnxruntime needs model_path=" in own.stderr + own.stdout
    assert (forked.returncode, stamp.sub("", forked.stdout), stamp.sub("", forked.stderr)) == \
        (own.returncode, stamp.sub("", own.stdout), stamp.sub("", own.stderr))


def test_the_bench_needs_no_corpus(tmp_path):
    empty = tmp_path / "no_data"
    empty.mkdir()
    args = ["experiment=ocr_crnn_attention", "model.width_mult=0.25", "model.rnn_hidden=32", "model.hidden_dim=32",
            "bench.batch_size=2", "bench.train_batches=1", "bench.infer_batches=1", "bench.repeats=1",
            "bench.warmup_batches=1", "bench.charset_size=null"]
    result = run_module("bench", args, empty, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "benching with 5990 CJK ideographs" in result.stdout + result.stderr


def test_a_list_file_may_start_with_a_byte_order_mark(tmp_path):
    (tmp_path / "list.txt").write_text("\ufeffimages/a.png label\nimages/b.png\n", encoding="utf-8")
    assert collect_inputs(str(tmp_path / "list.txt")) == [tmp_path / "images/a.png", tmp_path / "images/b.png"]


def test_int8_without_the_x86_engine_is_a_config_error(monkeypatch):
    from seq2seq_lab.data.tokenizer import Tokenizer
    from seq2seq_lab.models import CRNNCTC
    from seq2seq_lab.precision import quantize_system
    from seq2seq_lab.systems import CTCSystem

    tokenizer = Tokenizer("ab")
    system = CTCSystem(CRNNCTC(tokenizer.vocab_size, channels=1, width=64, width_mult=0.25, rnn_hidden=8),
                       tokenizer, optimizer=torch.optim.Adam)
    monkeypatch.setattr(type(torch.backends.quantized), "supported_engines", ["qnnpack", "none"])
    with pytest.raises(ConfigError, match="quantize=int8: int8 needs PyTorch's x86 quantized engine"):
        quantize_system(system, "int8", [])
