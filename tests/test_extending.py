"""docs/extending.md's attention example works as written: register the class, compose the yaml, train."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import seq2seq_lab.models.attention as attention_module
from helpers import compose_config
from seq2seq_lab.models.attention import ATTENTIONS, build_attention
from seq2seq_lab.train import train

DOC = Path(__file__).parents[1] / "docs" / "extending.md"


def _blocks(section: str, language: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.S)


def test_the_attention_example_registers_composes_and_trains(fake_data_dir, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("S2S_DATA_DIR", str(fake_data_dir))
    monkeypatch.setattr(attention_module, "ATTENTIONS", dict(ATTENTIONS))  # leave the real registry as it was
    namespace = dict(vars(attention_module))
    exec(_blocks("An attention type", "python")[0], namespace)  # noqa: S102 - the documented code
    cls = namespace["ScaledDotAttention"]
    monkeypatch.setattr(attention_module, "ScaledDotAttention", cls, raising=False)
    monkeypatch.setitem(ATTENTIONS, "scaled_dot", cls)

    context, weights = build_attention("scaled_dot", 8, 6)(torch.randn(2, 8), torch.randn(2, 5, 6))
    assert context.shape == (2, 6) and torch.allclose(weights.sum(1), torch.ones(2))

    conf = tmp_path / "conf" / "model" / "attention"
    conf.mkdir(parents=True)
    (conf / "scaled_dot.yaml").write_text(_blocks("An attention type", "yaml")[0], encoding="utf-8")
    cfg = compose_config("train", ["experiment=mnist_attention", "model/attention=scaled_dot", "debug=fdr",
                                   "logger=csv", f"hydra.searchpath=[file://{tmp_path / 'conf'}]"], tmp_path / "run")
    assert cfg.model.attention._target_ == "seq2seq_lab.models.attention.ScaledDotAttention"
    metrics = train(cfg)  # a training step and a validation pass through the new attention
    assert 0.0 <= metrics["val/acc"] <= 1.0


@pytest.mark.parametrize("section, files", [("An attention type", 2), ("A data set", 3), ("A recurrent cell", 2)])
def test_each_walk_through_names_its_files(section, files):
    heading = next(line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith(f"## {section}"))
    assert heading.endswith(f": {files} files")
    body = DOC.read_text(encoding="utf-8").split(heading, 1)[1].split("\n## ", 1)[0]
    assert len(re.findall(r"^\d\. `", body, flags=re.M)) == files  # one numbered step per file
