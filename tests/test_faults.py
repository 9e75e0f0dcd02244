"""kill -9 in the middle of indexing, and two writers on one index: real subprocesses."""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from longdoc import IndexLockedError, index_paths, open_index

pytestmark = pytest.mark.slow


def _env(**extra):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def _count_docs(catalog) -> int:
    if not catalog.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill_9_mid_run_leaves_a_working_index_that_completes(tmp_path, essays_dir, embedder):
    corpus = tmp_path / "essays"
    shutil.copytree(essays_dir, corpus)
    idx = tmp_path / "index"
    # Flush vectors often so the kill lands with FAISS files on disk that lag the catalog.
    proc = subprocess.Popen([sys.executable, "-m", "longdoc", "index", str(corpus), "--index", str(idx), "--json"],
                            env=_env(LONGDOC_FLUSH_EVERY_DOCS="5", LONGDOC_COMMIT_CHUNKS="64"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (idx / "vectors" / "manifest.json").exists() and _count_docs(idx / "catalog.sqlite") >= 5:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"indexing ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    # Readers are not blocked by the running writer.
    with open_index(idx) as ix:
        ix._embedder = embedder
        assert ix.search("startup ideas", k=3) and ix.search("startup ideas", k=3, mode="bm25")
    assert proc.poll() is None, "the writer must still be running while we searched"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with open_index(idx) as ix:
        assert ix.catalog.db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        committed = {d["path"] for d in ix.documents()}
        assert 5 <= len(committed) < 49
        ix._embedder = embedder
        hits = ix.search("how to get startup ideas", k=10)
        assert hits and all(h.path in committed for h in hits)
        assert {h.path for h in ix.search("startup", k=10, mode="bm25")} <= committed

    report = index_paths(idx, [corpus], progress=False, embedder=embedder)
    assert report.unchanged == len(committed) and report.added == 49 - len(committed)
    with open_index(idx) as ix:
        assert len(ix.documents()) == 49
        conn = ix.catalog.db.conn
        assert conn.execute("SELECT COUNT(*) FROM (SELECT doc_id, ordinal FROM chunks GROUP BY 1, 2 HAVING COUNT(*) > 1)").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == conn.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
        status = ix.status()
        assert status["vectors_in_sync"] and status["chunks"] == ix.vectors.size


def test_second_writer_gets_a_clear_locked_error(tmp_path, corpus, embedder):
    idx = tmp_path / "index"
    index_paths(idx, [corpus / "tides.rst"], progress=False, embedder=embedder)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from longdoc.storage import write_lock\n"
         f"with write_lock({str(idx)!r}):\n    print('locked', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        cli = subprocess.run([sys.executable, "-m", "longdoc", "index", str(corpus), "--index", str(idx)],
                             capture_output=True, text=True, env=_env(), timeout=120)
        assert cli.returncode == 1
        assert "is locked" in cli.stderr and "Traceback" not in cli.stderr
        with pytest.raises(IndexLockedError):
            index_paths(idx, [corpus], progress=False, embedder=embedder)
        with open_index(idx) as ix:  # readers are not blocked, and nothing changed
            assert [d["path"] for d in ix.documents()] == [str(corpus / "tides.rst")]
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the dead holder's lock.
    assert index_paths(idx, [corpus], progress=False, embedder=embedder).added == 5
