"""Reports render from a small results fixture: a real eval run (8 Quoref questions, needle at 1K/2K) dumped to JSON."""
import json
import os
import subprocess
import sys

import pytest
from conftest import FIXTURES

from longdoc.errors import LongdocError
from longdoc.evaluation.reports import load_results, write_report
from longdoc.evaluation.results_db import Cell, ResultsDB


def _results_file(path, name=None, drop_block=False):
    data = json.loads((FIXTURES / "eval_results.json").read_text())
    with ResultsDB(path) as db:
        for run in data["runs"]:
            run_id = db.start_run(run["record"], {**run["config"], "name": name or run["config"]["name"]})
            db.finish_run(run_id)
        for dataset, info in data["datasets"].items():
            db.set_dataset_info(dataset, run_id, info)
        for dataset, task, mode, attention, k, qid, metrics, detail in data["results"]:
            if drop_block and attention == "block":
                continue
            db.add(Cell(dataset, task, mode, attention, k), qid, run_id, metrics, detail)
    return path, data


def test_a_report_has_every_table_and_plot(tmp_path):
    path, data = _results_file(tmp_path / "r.db")
    written = write_report([path], tmp_path / "report", resamples=500)
    assert {"recall_at_k.png", "qa_0.png", "needle_heatmap.png", "latency.png"} <= set(written)
    import matplotlib.image

    for name, png in written.items():
        if name.endswith(".png"):
            pixels = matplotlib.image.imread(png)
            assert pixels.shape[0] > 200 and pixels.shape[1] > 300 and pixels.std() > 0.01  # not blank
    md = written["markdown"].read_text()
    for heading in ("## Runs", "## Datasets", "## Retrieval", "## Question answering", "## Needle", "## Comparison"):
        assert heading in md
    # The table's means are the fixture's per-question means.
    f1 = [r[6]["f1"] for r in data["results"] if r[1] == "qa" and r[3] == "block"]
    assert f"| block | {len(f1)} | " in md and f"{sum(f1) / len(f1):.3f} [" in md
    found = [r[6]["found"] for r in data["results"] if r[1] == "needle" and r[3] == "full" and r[4] == 2048]
    assert f"| full | 2048 | 3 | {sum(found) / 3:.3f}" in md
    assert "![Needle: depth × length](needle_heatmap.png)" in md
    page = written["html"].read_text()
    assert page.startswith("<!doctype html>") and page.count("<table>") == 6 and "<img src='qa_0.png'" in page
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert {s["task"] for s in summary} == {"retrieval", "qa", "needle"}


def test_two_runs_are_compared_on_their_shared_questions(tmp_path):
    a, _ = _results_file(tmp_path / "a.db", name="baseline")
    b, _ = _results_file(tmp_path / "b.db", name="candidate", drop_block=True)
    files, summaries = load_results([a, b], resamples=300)
    assert [f.label for f in files] == ["baseline", "candidate"]
    assert len({(s.run, s.cell) for s in summaries}) == len(summaries)
    md = write_report([a, b], tmp_path / "both", resamples=300)["markdown"].read_text()
    # The same full-attention answers in both runs: a paired difference of exactly zero.
    assert "| baseline · hybrid · full | candidate · hybrid · full | f1 |" in md
    assert "+0.000 [+0.000, +0.000] | no clear difference |" in md
    assert "| candidate | quoref:quoref_subset.json | hybrid | 3 | block |" not in md


def test_report_inputs_are_checked(tmp_path):
    with pytest.raises(LongdocError, match="missing.db: no such results file"):
        write_report([tmp_path / "missing.db"], tmp_path / "out")
    ResultsDB(tmp_path / "empty.db").close()
    with pytest.raises(LongdocError, match="empty.db: not a longdoc results file"):
        write_report([tmp_path / "empty.db"], tmp_path / "out")


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "longdoc", *map(str, args)], capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", COLUMNS="200"), timeout=120)


def test_cli_report_datasets_and_config_errors(tmp_path):
    path, _ = _results_file(tmp_path / "r.db")
    proc = _cli("eval", "report", path, "--out", tmp_path / "rep", "--resamples", "200")
    assert proc.returncode == 0, proc.stderr
    assert "report.html" in proc.stdout and (tmp_path / "rep" / "needle_heatmap.png").exists()
    proc = _cli("eval", "datasets")
    assert proc.returncode == 0, proc.stderr
    for name in ("quoref", "python-docs-qa", "beir:PATH", "needle"):
        assert name in proc.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('datasets = ["quoref"]\n[qa]\nattention = ["sparse"]\n')
    proc = _cli("eval", "run", bad, "--out", tmp_path / "x.db")
    assert proc.returncode == 1 and "bad.toml: qa.attention: unknown attention backend 'sparse'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "x.db").exists()
