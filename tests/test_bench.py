"""The throughput bench: it runs an experiment's model on synthetic batches, OCR included without a corpus."""

from __future__ import annotations

import pytest
import torch

from helpers import compose_config
from seq2seq_lab.bench import bench
from seq2seq_lab.errors import ConfigError


pytestmark = pytest.mark.usefixtures("one_thread")


def test_bench_measures_the_full_size_ocr_model_with_a_synthetic_charset(tmp_path):
    overrides = ["experiment=ocr_crnn_attention", "bench.charset_size=30", "bench.batch_size=2",
                 "bench.train_batches=2", "bench.infer_batches=1", "bench.repeats=1", "bench.warmup_batches=1",
                 "trainer.precision=bf16-mixed", "bench.infer_precision=bf16-true", "bench.quantize=int8",
                 "bench.calibration_batches=1"]
    result = bench(compose_config("bench", overrides, tmp_path))
    charset = (tmp_path / "charset.txt").read_text(encoding="utf-8").splitlines()
    assert len(charset) == 30 and charset[0] == "\u4e00" and len(set(charset)) == 30
    assert result["num_params"] == 9_118_919 + 513 * (30 + 4)  # the reference-size formula, V = chars + 4
    assert result["batch_size"] == 2 and result["precision"] == "bf16-mixed"
    assert result["infer_precision"] == "bf16-true" and result["quantize"] == "int8"
    assert result["plain_train_samples_per_second"] > 0 and result["infer_samples_per_second"] > 0

    with pytest.raises(ValueError, match="charset_size must be in"):
        bench(compose_config("bench", [*overrides[:1], "bench.charset_size=30000"], tmp_path / "bad"))
    with pytest.raises(ConfigError, match="bench.quantize=int8: int8 quantization covers the conv stack of CRNN"):
        bench(compose_config("bench", ["experiment=mnist_attention", "bench.quantize=int8"], tmp_path / "mnist"))


def test_bench_inference_decodes_every_step_even_when_the_model_says_eos_at_once(tmp_path):
    from seq2seq_lab.assemble import build_datamodule, build_system
    from seq2seq_lab.bench import infer, synthetic_batches

    cfg = compose_config("bench", ["experiment=ocr_crnn_attention", "bench.charset_size=12", "model.width_mult=0.25",
                                   "model.rnn_hidden=16", "model.hidden_dim=16", "model.embed_dim=8"], tmp_path)
    cfg.data.charset = str(tmp_path / "charset.txt")
    (tmp_path / "charset.txt").write_text("".join(f"{c}\n" for c in "abcdefghijkl"), encoding="utf-8")
    datamodule = build_datamodule(cfg)
    system = build_system(cfg, datamodule).eval()
    with torch.no_grad():
        system.net.decoder.output.bias[datamodule.tokenizer.EOS] = 100.0  # EOS at the first step
    batch = synthetic_batches(datamodule, 2, 1, seed=0)[0]
    with torch.no_grad():
        assert system(batch["inputs"])[0].shape == (2, 1)  # the system stops at EOS
        assert infer(system, batch)[0].shape == (2, datamodule.output_length)  # the bench does not


def test_bench_batches_of_padded_rows_run_the_masked_stack(tmp_path):
    """bench.min_width_share gives rows narrower than the batch (one row full), as width-bucketed lines are."""
    from seq2seq_lab.assemble import build_datamodule
    from seq2seq_lab.bench import synthetic_batches

    cfg = compose_config("bench", ["experiment=ocr_crnn_attention", "bench.charset_size=12"], tmp_path)
    cfg.data.charset = str(tmp_path / "charset.txt")
    (tmp_path / "charset.txt").write_text("".join(f"{c}\n" for c in "abcdefghijkl"), encoding="utf-8")
    datamodule = build_datamodule(cfg)
    width = datamodule.contract.width
    full = synthetic_batches(datamodule, 16, 1, seed=0)[0]["input_lengths"]
    assert full.tolist() == [width] * 16
    padded = synthetic_batches(datamodule, 16, 2, seed=0, min_width_share=0.5)
    for batch in padded:
        widths = batch["input_lengths"]
        assert widths[0] == width and bool((widths >= width // 2).all()) and bool((widths < width).any())
    with pytest.raises(ConfigError, match="bench.min_width_share must be in"):
        synthetic_batches(datamodule, 2, 1, seed=0, min_width_share=1.5)
