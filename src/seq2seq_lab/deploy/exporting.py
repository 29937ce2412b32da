"""Writing a trained system as an ONNX or TorchScript file, with what reading it needs, and checking it.

:func:`export_onnx` writes :func:`~seq2seq_lab.deploy.graphs.inference_graph` with torch's ONNX
exporter (``torch.export``, opset 18): dynamic batch size, and dynamic line width unless the
model is tied to one width (position attention, whose slots are the columns of the maximum
width; its lines are then padded to that width, which gives the same texts). The metadata
(:func:`graph_metadata`) goes into the file under :data:`~seq2seq_lab.deploy.runtime.METADATA_KEY`.
:func:`quantize_int8` makes an int8 copy (onnxruntime's dynamic quantization: int8 weights,
activations quantized on the fly). :func:`export_torchscript` traces the same graph.

:func:`compare` decodes batches with PyTorch and with an exported file and lists every line
whose text (or class) differs.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from seq2seq_lab.data.contract import DataContract
from seq2seq_lab.deploy.graphs import inference_graph
from seq2seq_lab.deploy.runtime import METADATA_KEY, decode_outputs, pad_lines

log = logging.getLogger(__name__)

__all__ = ["compare", "export_onnx", "export_torchscript", "exported_test_metrics", "exported_texts", "graph_metadata",
           "quantize_int8"]

OUTPUT_NAMES = {"attention": ["tokens", "log_probs"], "ctc": ["labels", "log_probs", "lengths"],
                "classifier": ["logits"]}


@contextlib.contextmanager
def _quiet(*names: str | None):
    """Loggers ``names`` (None: the root) at ERROR for the duration."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def graph_metadata(kind: str, contract: DataContract, fixed_width: bool) -> dict:
    """What reading needs besides the graph: kind, charset and special ids, line geometry."""
    meta: dict = {"format": 1, "kind": kind}
    if kind == "classifier":
        meta.update(input_length=contract.input_length, input_dim=contract.input_dim, classes=contract.output_dim)
        return meta
    tok = contract.tokenizer
    meta.update(charset=list(tok.chars), sos=tok.SOS, eos=tok.EOS, pad=tok.PAD, unk=tok.UNK,
                first_char=tok.FIRST_CHAR, blank=tok.SOS, channels=contract.channels, height=contract.height,
                width=contract.width, fixed_width=bool(fixed_width), trim_margins=contract.trim_margins)
    return meta


def example_inputs(kind: str, contract: DataContract, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with: lines of the maximum width (one of them narrower), or sequences."""
    if kind == "classifier":
        return (torch.zeros(batch, contract.input_length, contract.input_dim),)
    width = contract.width
    widths = torch.tensor([width] + [max(8, width // 2)] * (batch - 1), dtype=torch.long)
    return torch.zeros(batch, contract.channels, contract.height, width), widths


def _dynamic_shapes(kind: str, contract: DataContract):
    batch = torch.export.Dim("batch", min=1, max=65536)
    if kind == "classifier":
        return ({0: batch},)
    width = torch.export.Dim("width", min=8, max=max(8192, contract.width))
    return {0: batch, 3: width}, {0: batch}


def export_onnx(system: torch.nn.Module, contract: DataContract, path: str | Path) -> dict:
    """Write ``system`` to ``path`` as ONNX with its metadata; returns the metadata."""
    import onnx

    kind, graph = inference_graph(system)
    args = example_inputs(kind, contract)
    names = ["inputs"] if kind == "classifier" else ["inputs", "widths"]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chatter = ("torch", "torch.onnx._internal.exporter._registration", "onnx_ir", "onnxscript")
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet(*chatter):
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, args, str(path), dynamo=True, opset_version=18, input_names=names,
                          output_names=OUTPUT_NAMES[kind], dynamic_shapes=_dynamic_shapes(kind, contract),
                          external_data=False, verbose=False)
    model = onnx.load(str(path))
    if kind != "classifier":  # a width the exporter had to fix (position attention): pad every batch to it
        dims = model.graph.input[0].type.tensor_type.shape.dim
        fixed_width = contract.fixed_width or dims[3].HasField("dim_value")
    else:
        fixed_width = False
    meta = graph_metadata(kind, contract, fixed_width)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, ensure_ascii=False)
    model.producer_name = "seq2seq_lab"
    onnx.save(model, str(path))
    return meta


def quantize_int8(source: str | Path, target: str | Path) -> None:
    """An int8 copy of an exported ONNX file: weights of the matrix products, RNNs and embeddings
    in int8, activations quantized per batch (onnxruntime's dynamic quantization); metadata kept."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet(None):  # it logs every tensor it leaves alone on the root logger
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Gemm", "LSTM", "GRU", "Gather"])


def export_torchscript(system: torch.nn.Module, contract: DataContract, path: str | Path) -> dict:
    """Write ``system`` to ``path`` as a traced TorchScript module; the metadata goes into its
    extra files (``seq2seq_lab.json``). Returns the metadata."""
    kind, graph = inference_graph(system)
    meta = graph_metadata(kind, contract, contract.fixed_width)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph, example_inputs(kind, contract), check_trace=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(traced, str(path), _extra_files={f"{METADATA_KEY}.json": json.dumps(meta, ensure_ascii=False)})
    return meta


def exported_texts(meta: dict, run: Callable[[Sequence[np.ndarray]], list[np.ndarray]], inputs: torch.Tensor,
                   widths: torch.Tensor | None) -> list[str]:
    """Texts an exported line model reads in a data module's batch: ``inputs (B, C, H, W)``, ``widths (B,)``
    (None: every line ``W`` wide)."""
    if widths is None:
        widths = torch.full((inputs.size(0),), inputs.size(3), dtype=torch.long)
    lines = inputs.float().numpy()
    if meta.get("fixed_width") and lines.shape[3] < meta["width"]:  # a graph of one width: pad to it
        lines = pad_lines(list(lines), meta["width"])
    return [text for text, _ in decode_outputs(meta, run([lines, widths.numpy()]))]


def exported_test_metrics(system: torch.nn.Module, meta: dict, run: Callable[[Sequence[np.ndarray]], list[np.ndarray]],
                          batches: Iterable[dict]) -> dict[str, float]:
    """The test metrics of an exported graph over ``batches``, computed by the PyTorch system's own
    metric definitions: ``test/acc`` for a classifier; ``test/line_acc``, ``test/cer``, ``test/ned``
    for a line model."""
    from torchmetrics.classification import MulticlassAccuracy

    from seq2seq_lab.systems.text_metrics import decode_references, text_metrics

    if meta["kind"] == "classifier":
        accuracy = MulticlassAccuracy(meta["classes"], average="micro")
        for batch in batches:
            accuracy.update(torch.from_numpy(run([batch["inputs"].float().numpy()])[0]), batch["targets"])
        return {"test/acc": float(accuracy.compute())}
    metrics = text_metrics(("test",))["test"]
    for batch in batches:
        texts = exported_texts(meta, run, batch["inputs"], batch.get("input_lengths"))
        refs = decode_references(system.tokenizer, batch["targets"])
        for metric in metrics.values():
            metric.update(texts, refs)
    return {f"test/{name}": float(metric.compute()) for name, metric in metrics.items()}


def compare(system: torch.nn.Module, meta: dict, run: Callable[[Sequence[np.ndarray]], list[np.ndarray]],
            batches: Iterable[dict], limit: int = 10) -> tuple[int, int, list[str]]:
    """Decode ``batches`` with ``system`` and with an exported graph (``run(inputs) -> outputs``,
    numpy arrays): returns the lines compared, the lines that differ, and up to ``limit`` of
    them (``"line 3: pytorch 'x' vs exported 'y'"``)."""
    seen, differing, differences = 0, 0, []
    for batch in batches:
        inputs, widths = batch["inputs"], batch.get("input_lengths")
        with torch.inference_mode():
            if meta["kind"] == "classifier":
                expected = system(inputs)[0].argmax(-1).tolist()
                got = run([inputs.numpy()])[0].argmax(-1).tolist()
            else:
                expected, _ = system.transcribe(inputs, widths)
                got = exported_texts(meta, run, inputs, widths)
        for a, b in zip(expected, got):
            if a != b:
                differing += 1
                if len(differences) < limit:
                    differences.append(f"line {seen}: pytorch {a!r} vs exported {b!r}")
            seen += 1
    return seen, differing, differences
