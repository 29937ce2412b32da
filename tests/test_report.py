"""python -m seq2seq_lab.report on hand-made sweep dirs: rows, seed groups, failures, plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from seq2seq_lab.report import main, write_report
from seq2seq_lab.reporting import collect_runs, default_axes, group_runs, varying_keys


def make_job(root: Path, job: int, overrides: list[str], metrics: dict | None = None, error: str | None = None):
    job_dir = root / str(job)
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if metrics is not None:
        (job_dir / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (job_dir / "error.txt").write_text(f"Traceback (most recent call last):\n  ...\n{error}\n")
    return job_dir


def ok_metrics(acc: float, seed: int) -> dict:
    return {"status": "ok", "val/acc_best": acc + 0.01, "test/acc": acc, "test/loss": 0.3, "num_params": 11436,
            "seconds_per_epoch": 2.5, "seed": seed}


@pytest.fixture
def sweep(tmp_path) -> Path:
    """attention x cell x seed = 2 x 2 x 2 jobs; job 5 failed, job 6 has no metrics, job 7 was killed in test."""
    root = tmp_path / "multirun"
    job = 0
    for attention in ("none", "dot"):
        for cell in ("lstm", "gru"):
            for seed in (1, 2):
                overrides = ["experiment=mnist_attention", f"model/attention={attention}", f"model/cell={cell}",
                             f"seed={seed}"]
                acc = 0.9 + 0.02 * (attention == "dot") + 0.01 * (cell == "gru") + 0.001 * seed
                if job == 5:
                    make_job(root, job, overrides, {"status": "failed", "error": "RuntimeError: boom"}, "RuntimeError: boom")
                elif job == 6:
                    make_job(root, job, overrides)
                elif job == 7:
                    make_job(root, job, overrides, {"val/acc_best": 0.5, "seed": seed})
                else:
                    make_job(root, job, overrides, ok_metrics(acc, seed))
                job += 1
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_collect_reads_every_job_with_its_status(sweep):
    runs = collect_runs(sweep)
    assert [r.job for r in runs] == [str(i) for i in range(8)]
    assert [r.status for r in runs] == ["ok"] * 5 + ["failed", "missing", "incomplete"]
    assert runs[5].error == "RuntimeError: boom"
    assert varying_keys(runs) == ["model/attention", "model/cell", "seed"]
    assert default_axes(runs) == ("model/attention", "model/cell")


def test_failure_without_status_is_read_from_error_txt(tmp_path):
    make_job(tmp_path, 0, ["seed=1"], error="ValueError: bad value")
    (run,) = collect_runs(tmp_path)
    assert run.status == "failed" and run.error == "ValueError: bad value"


def test_groups_average_ok_runs_over_seeds(sweep):
    groups = {tuple(g.params.values()): g for g in group_runs(collect_runs(sweep))}
    assert set(groups) == {("none", "lstm"), ("none", "gru"), ("dot", "lstm"), ("dot", "gru")}
    mean, std = groups[("none", "lstm")].mean_std("test/acc")
    assert mean == pytest.approx(0.9015) and std == pytest.approx(0.000707, abs=1e-5)
    assert len(groups[("dot", "gru")].ok) == 0  # job 6 missing, job 7 incomplete
    assert groups[("dot", "gru")].mean_std("test/acc") == (None, None)
    assert groups[("dot", "lstm")].mean_std("test/acc")[1] is None  # one ok run of two (job 5 failed)


def test_write_report_files(sweep):
    paths = write_report(sweep)
    assert set(paths) == {"md", "csv", "png"}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with paths["csv"].open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    assert rows[0]["model/attention"] == "none" and rows[0]["seed"] == "1" and rows[0]["num_params"] == "11436"
    assert float(rows[0]["test/acc"]) == pytest.approx(0.901)
    assert rows[0]["seconds_per_epoch"] == "2.500"
    assert [r["status"] for r in rows][5:] == ["failed", "missing", "incomplete"]
    assert "test/loss" not in rows[0]  # losses are not report metrics

    md = paths["md"].read_text()
    assert "8 runs: 1 failed, 1 incomplete, 1 missing, 5 ok." in md
    assert "Shared overrides: `experiment=mnist_attention`" in md
    assert "## Grouped over seeds" in md
    # mean ± std [95% CI over seeds]; against the baseline (the first configuration) paired by seed
    assert "| none | lstm | 2/2 | 0.9115 ± 0.0007 [0.9051, 0.9179] | 0.9015 ± 0.0007 [0.8951, 0.9079] | 2.50 | baseline |" in md
    assert "| dot | lstm | 1/2 | 0.9310 | 0.9210 | 2.50 | +0.0200 [+0.0200, +0.0200] * |" in md  # one shared seed: no p
    assert "| none | gru | 2/2 |" in md and "+0.0100 [+0.0100, +0.0100], p=" in md
    assert "| dot | gru | 0/2 |  |  |  | no shared seeds |" in md
    assert "- job 7 (incomplete): did not finish" in md
    assert "- job 5 (failed): RuntimeError: boom" in md
    assert "![plot](report.png)" in md


def test_paired_comparison_and_intervals():
    from seq2seq_lab.reporting.stats import mean_ci, paired

    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and low == pytest.approx(2 - 4.302653 / 3 ** 0.5) and high == pytest.approx(2 + 4.302653 / 3 ** 0.5)
    a = {"1": 0.90, "2": 0.92, "3": 0.91, "4": 0.93}
    better = paired(a, {s: v + 0.01 + 0.001 * i for i, (s, v) in enumerate(a.items())})
    assert better.significant and better.low > 0 and better.p < 0.01 and better.seeds == 4
    noise = paired(a, {"1": 0.91, "2": 0.91, "3": 0.92, "4": 0.92})
    assert not noise.significant and noise.p > 0.5
    assert paired(a, {"9": 0.5}) is None


def test_the_plot_averages_seeds_only_and_facets_the_other_factors(tmp_path):
    root = tmp_path / "multirun"
    job = 0
    for attention in ("mlp", "dot"):
        for cell in ("lstm", "gru"):
            for depth in (1, 2):
                for seed in (1, 2):
                    acc = 0.9 + 0.05 * (depth == 2) + 0.01 * (attention == "dot") + 0.001 * seed
                    make_job(root, job, [f"model/attention={attention}", f"model/cell={cell}", f"model.depth={depth}",
                                         f"seed={seed}"], ok_metrics(acc, seed))
                    job += 1
    paths = write_report(root, baseline={"model/attention": "mlp", "model/cell": "lstm", "model.depth": "1"})
    md = paths["md"].read_text()
    # depth is a configuration of its own, never noise: eight configurations of two seeds each
    assert md.count("| 2/2 |") == 8 and "| mlp | lstm | 1 | 2/2 |" in md and "| dot | gru | 2 | 2/2 |" in md
    assert "baseline (model/attention=mlp, model/cell=lstm, model.depth=1)" in md
    from PIL import Image

    width, height = Image.open(paths["png"]).size  # attention x cell bars, one panel per depth
    assert width > 1.8 * height
    with pytest.raises(ValueError, match="no such configuration"):
        write_report(root, baseline={"model/attention": "bahdanau"})


def test_no_grouped_table_without_repeated_seeds(tmp_path):
    for i, cell in enumerate(("rnn", "lstm", "gru")):
        make_job(tmp_path, i, [f"model/cell={cell}"], ok_metrics(0.9 + i / 100, 42))
    paths = write_report(tmp_path)
    md = paths["md"].read_text()
    assert "Grouped over seeds" not in md and "| 2 | ok | gru | 11,436 | 0.9300 | 0.9200 | 2.50 |" in md
    assert "png" in paths


def test_sweep_without_metrics_writes_tables_but_no_plot(tmp_path):
    make_job(tmp_path, 0, ["seed=1"])
    make_job(tmp_path, 1, ["seed=2"], error="KeyError: x")
    paths = write_report(tmp_path)
    assert "png" not in paths and not (tmp_path / "report.png").exists()
    assert "2 runs: 1 failed, 1 missing." in paths["md"].read_text()


def test_cli(sweep, tmp_path, capsys):
    assert main([str(sweep), "--metric", "val/acc_best", "--x", "model/cell"]) == 0
    out = capsys.readouterr().out
    assert "# Sweep report" in out and f"wrote {sweep / 'report.png'}" in out
    assert main([str(tmp_path / "nope")]) == 1
    assert "no such sweep directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
