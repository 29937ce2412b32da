"""Inference precision (Lightning's plugins outside a Trainer), metric states under bf16-true, and
int8 quantization of the CRNN conv stack."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.fabric.plugins.precision import HalfPrecision, MixedPrecision, Precision
from torch import nn

from helpers import compose_config
from ocr_fakes import write_text_lines
from seq2seq_lab.assemble import build_datamodule, build_system
from seq2seq_lab.errors import ConfigError
from seq2seq_lab.models.crnn import CRNNEncoder
from seq2seq_lab.models.quantize import QuantizedConvStack, quantize_conv_stack
from seq2seq_lab.precision import calibration_images, precision_plugin, quantize_system
from seq2seq_lab.systems.text_metrics import NormalizedEditSimilarity

pytestmark = pytest.mark.usefixtures("one_thread")


def test_precision_names_are_lightnings_and_a_bad_one_names_its_key():
    assert type(precision_plugin("32-true")) is Precision and type(precision_plugin(32)) is Precision
    assert isinstance(precision_plugin("bf16"), MixedPrecision)
    assert isinstance(precision_plugin("bf16-true"), HalfPrecision)
    with pytest.raises(ConfigError, match=r"bench.infer_precision='16-true': must be one of"):
        precision_plugin("16-true", "bench.infer_precision")


def test_bf16_true_casts_weights_and_float_inputs_once():
    plugin = precision_plugin("bf16-true")
    layer = plugin.convert_module(nn.Linear(3, 2))
    batch = plugin.convert_input({"inputs": torch.ones(2, 3), "targets": torch.ones(2, dtype=torch.long)})
    assert layer.weight.dtype == batch["inputs"].dtype == torch.bfloat16 and batch["targets"].dtype == torch.long
    with plugin.forward_context():
        assert layer(batch["inputs"]).dtype == torch.bfloat16


@pytest.fixture
def toy(tmp_path):
    cfg = compose_config("train", ["experiment=toy_reverse", "data.num_train=64", "data.num_val=32",
                                   "data.num_test=300", "data.batch_size=100"], tmp_path)
    datamodule = build_datamodule(cfg)
    return datamodule, build_system(cfg, datamodule)


def test_metric_sums_stay_float32_when_the_module_is_cast_to_bf16(toy):
    _, system = toy
    system.ned = NormalizedEditSimilarity()
    system.to(torch.bfloat16)  # what Lightning's bf16-true does to the whole module
    for _ in range(600):
        system.ned.update(["abcd"], ["abce"])  # similarity 0.75 per line
    assert system.ned.compute().item() == 1.0  # both bf16 sums stop growing at 256
    system.ned.reset()
    system.keep_metrics_float32()
    for _ in range(600):
        system.ned.update(["abcd"], ["abce"])
    assert system.ned.compute().item() == 0.75
    assert system.losses["test_loss"].mean_value.dtype == torch.float32


def test_a_bf16_true_trainer_tests_with_bf16_weights_and_float32_metric_states(toy):
    datamodule, system = toy
    trainer = L.Trainer(accelerator="cpu", precision="bf16-true", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    results = trainer.test(system, datamodule=datamodule, verbose=False)[0]
    assert next(system.net.parameters()).dtype == torch.bfloat16
    assert system.losses["test_loss"].mean_value.dtype == torch.float32
    assert 0 <= results["test/acc"] <= 1


# --- int8 ------------------------------------------------------------------------------------------
def _randomise_batch_norms(module: nn.Module) -> None:
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(bn.weight, 0.5, 1.5)
            nn.init.uniform_(bn.bias, -0.1, 0.1)


@pytest.mark.parametrize("batch_norm", ["reference", "all"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("reduce_range", [None, True])  # None: 8-bit activations where the CPU has VNNI
@pytest.mark.parametrize("conv_channels", [None, (8, 16, 16, 16, 32, 32, 32)])  # 8 wide: a contiguous first block
def test_int8_conv_stack_folds_batch_norm_and_follows_the_float_stack(batch_norm, channels_last, reduce_range,
                                                                      conv_channels):
    from torch.ao.nn.intrinsic.quantized import ConvReLU2d

    torch.manual_seed(0)
    encoder = CRNNEncoder(3, 32, width_mult=0.25, rnn_hidden=16, batch_norm=batch_norm,
                          channels_last=channels_last, conv_channels=conv_channels).eval()
    _randomise_batch_norms(encoder)
    images = torch.rand(4, 3, 32, 96) * 2 - 1
    with torch.no_grad():
        want = encoder.features(images)  # (B, T', C')
    quantize_conv_stack(encoder, [torch.rand(8, 3, 32, 96) * 2 - 1 for _ in range(2)], reduce_range)

    assert isinstance(encoder.cnn, QuantizedConvStack)
    layers = list(encoder.cnn.modules())
    assert sum(isinstance(m, ConvReLU2d) for m in layers) == 7  # every conv, its BatchNorm folded in
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Conv2d)) for m in layers)
    with torch.no_grad():
        got = encoder.features(images)
        assert got.shape == want.shape and got.dtype == torch.float32
        assert ((got - want).norm() / want.norm()).item() < 0.05
        encoder.to(torch.bfloat16)  # a bf16-true model around the int8 stack
        memory, _, _ = encoder(images.bfloat16())
    assert memory.dtype == torch.bfloat16 and torch.isfinite(memory.float()).all()


def test_quantize_system_checks_the_scheme_and_the_model(toy):
    _, system = toy
    quantize_system(system, None, [])  # nothing asked, nothing done
    with pytest.raises(ConfigError, match=r"bench.quantize='int4': must be null or one of \['int8'\]"):
        quantize_system(system, "int4", [], "bench.quantize")
    with pytest.raises(ConfigError, match="conv stack of CRNN models"):
        quantize_system(system, "int8", [])
    with pytest.raises(ConfigError, match="calibration_batches=0: must be >= 1"):
        next(calibration_images(toy[0], 0))


def test_int8_calibration_without_validation_data_names_the_keys(tmp_path):
    root = write_text_lines(tmp_path, "abc", 2, {"train": 4}, size=(64, 32))
    cfg = compose_config("train", ["experiment=ocr_crnn_ctc", f"data.train={root}/train.txt", "data.val=null",
                                   "data.test=null", f"data.charset={root}/charset.txt", "data.width=64",
                                   "data.max_length=2", "data.num_workers=0", "model.width_mult=0.25"], tmp_path / "run")
    datamodule = build_datamodule(cfg)
    system = build_system(cfg, datamodule)
    with pytest.raises(ConfigError, match=r"validation split, and it has no data: set data.val"):
        quantize_system(system, "int8", calibration_images(datamodule, 2))
