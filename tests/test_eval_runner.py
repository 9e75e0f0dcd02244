"""The eval runner on real models and a real Quoref subset: the grid, the record, and resuming a killed run."""
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import FIXTURES

from longdoc.evaluation.results_db import Cell, ResultsDB
from longdoc.evaluation.run_config import load_eval_config
from longdoc.evaluation.runner import run_eval

SUBSET = f"quoref:{FIXTURES / 'quoref_subset.json'}"
TIMINGS = {"latency_ms", "ttft_ms", "ms_per_token", "retrieval_ms", "peak_rss_mb"}


@pytest.mark.slow
def test_the_grid_is_scored_per_question_and_a_rerun_skips_it(tmp_path):
    cfg = load_eval_config(None, datasets=[{"name": SUBSET, "limit": 4}], workdir=str(tmp_path / "work"),
                           settings={"answer": {"max_new_tokens": 8}},
                           **{"retrieval.modes": ["dense", "multihead", "bm25", "hybrid"], "retrieval.k": [1, 5],
                              "qa.attention": ["full", "block", "block-r1"], "qa.k": [3]})
    counts = run_eval(cfg, tmp_path / "r.db", ["longdoc", "eval", "run", "test"], progress=False)
    assert counts["scored"] == 4 * 4 + 4 * 3 and counts["skipped"] == 0
    with ResultsDB(tmp_path / "r.db") as db:
        cells = db.cells()
        assert [c.mode for c in cells if c.task == "retrieval"] == ["dense", "multihead", "bm25", "hybrid"]
        for cell in cells:
            rows = db.rows(cell)
            assert len(rows) == 4
            for row in rows.values():
                m = row["metrics"]
                if cell.task == "retrieval":
                    assert 0 <= m["recall@1"] <= m["recall@5"] <= 1 and m["recall@1"] <= m["mrr@10"] <= 1
                    assert m["latency_ms"] > 0 and len(row["detail"]["ranking"]) >= 5
                else:
                    assert 0 <= m["em"] <= m["f1"] + 1e-9 <= 1 + 1e-9 and m["ttft_ms"] > 0
                    assert m["citation_precision"] is not None and m["peak_rss_mb"] > 100
                    assert len(row["detail"]["retrieved"]) == 3 and row["detail"]["citations"]
        hybrid = db.rows(Cell(SUBSET, "retrieval", "hybrid"))
        assert sum(r["metrics"]["recall@5"] for r in hybrid.values()) >= 3
        run = db.runs()[0]
        assert run["git_commit"] and run["versions"]["torch"] and run["command"] == "longdoc eval run test"
        assert run["hardware"]["cpus"] and run["finished"] and run["config"]["seed"] == 0
        assert db.dataset_info()[SUBSET]["documents"] == 12
    again = run_eval(cfg, tmp_path / "r.db", progress=False)
    assert again == {"run_id": 2, "scored": 0, "skipped": 28}


def _rows(path):
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT dataset, task, mode, attention, k, qid, metrics, detail FROM results").fetchall()
    import json

    out, shares = {}, {}
    for *key, metrics, detail in rows:
        m = {k: v for k, v in json.loads(metrics).items() if k not in TIMINGS}
        detail = json.loads(detail)
        # Attention shares are floats from float16 KV computed in other batches: equal to ~1e-4.
        shares[tuple(key)] = [c.pop("attention") for c in detail.get("citations", [])]
        out[tuple(key)] = (m, detail)
    return out, shares, len(rows)


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_results_without_duplicates(tmp_path):
    config = tmp_path / "eval.toml"
    config.write_text(f'datasets = [{{name = "{SUBSET}", limit = 6}}]\n[retrieval]\nmodes = ["dense", "bm25"]\n'
                      f'k = [1, 5]\n[qa]\nattention = ["full", "block"]\nk = [3]\n'
                      f'[settings]\nanswer = {{max_new_tokens = 8}}\n')
    cmd = [sys.executable, "-m", "longdoc", "eval", "run", str(config), "--workdir", str(tmp_path / "work"), "-q"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    total = 6 * 2 + 6 * 2
    ref = subprocess.run(cmd + ["--out", str(tmp_path / "ref.db")], capture_output=True, text=True, env=env, timeout=600)
    assert ref.returncode == 0, ref.stderr
    assert f"{total} results scored now" in ref.stdout

    killed = tmp_path / "killed.db"
    proc = subprocess.Popen(cmd + ["--out", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    stored = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(killed, timeout=1) as db:
                stored = db.execute("SELECT count(*) FROM results WHERE task='qa'").fetchone()[0]
        except sqlite3.Error:
            stored = 0
        if stored >= 3:
            proc.kill()  # SIGKILL: no cleanup, mid-answer
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    *_, partial = _rows(killed)
    assert 0 < partial < total, "the run was not stopped midway"

    resumed = subprocess.run(cmd + ["--out", str(killed)], capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{total - partial} results scored now, {partial} already there" in resumed.stdout
    expected, expected_shares, n_ref = _rows(tmp_path / "ref.db")
    got, got_shares, n_got = _rows(killed)
    assert n_ref == n_got == len(got) == total  # no duplicates
    assert got == expected  # the same scores, answers and citations as the run that was never stopped
    for key, shares in expected_shares.items():
        assert got_shares[key] == pytest.approx(shares, abs=2e-3)
    with ResultsDB(killed) as db:
        runs = db.runs()
        assert len(runs) == 2 and runs[0]["finished"] is None and runs[1]["finished"]
