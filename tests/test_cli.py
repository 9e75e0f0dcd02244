"""The `longdoc` command, run as a user would, in a subprocess."""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def longdoc(*args, check=True):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "longdoc", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_index_status_docs_search_remove(tmp_path, corpus):
    idx = tmp_path / "index"
    report = json.loads(longdoc("index", corpus, "--index", idx, "--chunk-tokens", "64", "--json").stdout)
    assert report["added"] == 6 and report["skipped"] == 0

    status = json.loads(longdoc("status", "--index", idx, "--json").stdout)
    assert status["documents"] == 6 and status["chunk_tokens"] == 64 and status["heads"] == 0
    # No head vectors by default, and below search.ivf_threshold no FAISS file at all (the catalog holds
    # the vectors; search builds its flat index from it); multihead search says what to do.
    assert sorted(p.name for p in (idx / "vectors").iterdir()) == ["manifest.json"]
    multihead = longdoc("search", "fog bells", "--index", idx, "--mode", "multihead", check=False)
    assert multihead.returncode == 1 and multihead.stderr.strip() == (
        f"error: index {idx} stores no head vectors, which multihead search (and hybrid's weight_multihead) "
        f"needs; build an index with head_vectors = true")
    assert status["vectors_in_sync"] and status["last_run"]["added"] == 6

    docs = json.loads(longdoc("docs", "list", "--index", idx, "--json").stdout)
    assert {os.path.basename(d["path"]) for d in docs} == {p.name for p in corpus.iterdir()}

    hits = json.loads(longdoc("search", "when were electric lamps installed?", "--index", idx, "-k", "3", "--json").stdout)
    assert "1931" in hits[0]["text"] and hits[0]["section"][-1] == "Lighting"

    table = longdoc("search", "fog bells", "--index", idx, "-k", "2").stdout
    assert "fog_signals.txt" in table

    removed = json.loads(longdoc("docs", "remove", corpus / "tides.rst", "--index", idx, "--json").stdout)
    assert removed["removed"] == [str(corpus / "tides.rst")]
    assert json.loads(longdoc("status", "--index", idx, "--json").stdout)["documents"] == 5

    human = longdoc("index", corpus, "--index", idx).stdout
    assert "1 added" in human and "5 unchanged" in human


def imported(*args) -> tuple[dict, set]:
    """Run the command in a fresh interpreter: (its JSON output, which heavy modules it imported)."""
    code = ("import json, sys; from longdoc.cli.app import app\n"
            "try:\n    app(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'pandas', 'faiss') if m in sys.modules)), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args), "--json"], capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_a_no_op_index_and_a_bm25_search_load_no_model(tmp_path, corpus):
    """What a person at the terminal waits for: an unchanged folder and a BM25 search read the catalog and
    the files' bytes, never torch or a model (and BM25 never FAISS)."""
    idx = tmp_path / "index"
    longdoc("index", corpus, "--index", idx)
    report, modules = imported("index", corpus, "--index", idx)
    assert report["unchanged"] == 6 and report["chunks_embedded"] == 0 and modules <= {"faiss"}
    hits, modules = imported("search", "fog bells", "--mode", "bm25", "--index", idx)
    assert "fog" in hits[0]["text"].lower() and modules == set()
    hits, modules = imported("search", "Fog bells rang. The keeper slept. The tide rose.", "--mode", "bm25", "--index", idx)
    assert hits and modules == set()  # a query searched by its sentences too
    (corpus / "new.txt").write_text("The lamp room was painted white every spring by the keeper.")
    report, modules = imported("index", corpus, "--index", idx)
    assert report["added"] == 1 and report["unchanged"] == 6 and "torch" in modules  # work to do: the embedder


def test_errors_are_one_line_without_traceback(tmp_path):
    proc = longdoc("status", "--index", tmp_path / "missing", check=False)
    assert proc.returncode == 1 and "no longdoc index" in proc.stderr and "Traceback" not in proc.stderr
    proc = longdoc("index", tmp_path / "nothing-here", "--index", tmp_path / "ix", "--json", check=False)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["skipped_files"][0][1] == "no such file or directory"


def test_models_list_json():
    rows = json.loads(longdoc("models", "list", "--json").stdout)
    assert {r["name"] for r in rows} == {"all-MiniLM-L6-v2", "all-mpnet-base-v2", "smollm2-135m-instruct",
                                         "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"}
    mpnet = next(r for r in rows if r["name"] == "all-mpnet-base-v2")
    assert mpnet["kind"] == "embedder" and "part wheels" in mpnet["source"]
