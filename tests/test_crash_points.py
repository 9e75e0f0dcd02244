"""kill -9 at each write step an index run reaches, then resume: the result is the clean build's.

A forked child (the embedder already loaded, so each run costs a second) indexes the fixtures with small
commits and frequent vector flushes, counting its write steps at the OS boundary: every SQL COMMIT, every
fsync and every rename (FAISS temp files, their renames, the manifest). At step N it SIGKILLs itself;
N runs over every commit and every step of one whole vector save.
After each kill the index must open and answer in every mode from committed documents only; then an
index run completes it, and every mode must return exactly what a clean build returns."""
import os
import shutil
import signal
import sqlite3

import pytest

from longdoc import IndexNotFoundError, index_paths, load_settings, open_index

from conftest import DOC_FIXTURES

pytestmark = pytest.mark.slow

QUERIES = ["the keeper's log at night", "tides and the moon", "a fog signal in the harbour"]
MODES = ["dense", "multihead", "bm25", "hybrid"]
# Parsed in this process (parse_timeout_s=0): each forked run would otherwise start its own parse child, and
# parsing writes nothing.
SETTINGS = dict(flush_every_docs=2, commit_chunks=8, parse_timeout_s=0, head_vectors=True)


def _step_counter(kill_at: int, tally: str):
    """Wrap the calls that make writes durable; SIGKILL just before the kill_at-th (0: never, count only)."""
    count = 0

    def step(kind: str):
        nonlocal count
        count += 1
        with open(tally, "a") as f:
            f.write(f"{count} {kind}\n")
        if count == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    replace, fsync, connect = os.replace, os.fsync, sqlite3.connect

    def traced_connect(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(lambda sql: step("commit") if sql.strip().upper() == "COMMIT" else None)
        return conn

    os.replace = lambda src, dst, *a, **k: (step(f"rename {os.path.basename(dst)}"), replace(src, dst, *a, **k))[1]
    os.fsync = lambda fd: (step("fsync"), fsync(fd))[1]
    sqlite3.connect = traced_connect


def _run_child(idx, corpus, embedder, kill_at: int, tally) -> int:
    """Index in a forked child that dies at write step kill_at; returns the child's wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            import torch

            torch.set_num_threads(1)
            _step_counter(kill_at, str(tally))
            index_paths(idx, [corpus], load_settings(**SETTINGS), progress=False, embedder=embedder)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


def _results(idx, embedder) -> dict:
    with open_index(idx) as ix:
        ix._embedder = embedder
        return {(q, m): [(os.path.basename(h.path), h.char_start, h.char_end, round(h.score, 4))
                         for h in ix.search(q, k=5, mode=m)] for q in QUERIES for m in MODES}


def _half_built(idx) -> bool:
    """Killed before the first commit: opening says so in one line, and `index` completes it."""
    try:
        with open_index(idx) as ix:
            ix.manifest
    except IndexNotFoundError as e:
        assert "half-built" in str(e) and "run longdoc index again" in str(e)
        return True
    return False


def test_kill_at_every_write_step_then_resume_equals_a_clean_build(tmp_path, embedder):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    for p in DOC_FIXTURES:
        shutil.copy(p, corpus / p.name)
    clean = tmp_path / "clean"
    index_paths(clean, [corpus], load_settings(**SETTINGS), progress=False, embedder=embedder)
    expected = _results(clean, embedder)
    names = {p.name for p in DOC_FIXTURES}

    tally = tmp_path / "count.txt"
    assert _run_child(tmp_path / "counted", corpus, embedder, 0, tally) == 0
    steps = tally.read_text().splitlines()
    kinds = {line.split(" ", 1)[1].split(" ")[0] for line in steps}
    assert len(steps) >= 30 and kinds == {"commit", "fsync", "rename"}, steps

    # Every commit, and every step of one whole vector save in the middle of the run (each FAISS file's
    # fsync and rename, the manifest's, the folder's fsync): later saves repeat the same steps.
    manifests = [i for i, line in enumerate(steps, 1) if line.endswith("rename manifest.json")]
    assert len(manifests) >= 3
    points = sorted({i for i, line in enumerate(steps, 1) if line.endswith("commit")}
                    | set(range(manifests[0] + 1, manifests[1] + 2)) | {len(steps)})
    assert len(points) >= 30
    for n in points:
        idx = tmp_path / f"kill-{n}"
        status = _run_child(idx, corpus, embedder, n, tmp_path / f"tally-{n}.txt")
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"step {n} was not reached"
        where = steps[n - 1]
        if (idx / "catalog.sqlite").exists() and not _half_built(idx):
            with open_index(idx) as ix:
                ix._embedder = embedder
                committed = {os.path.basename(d["path"]) for d in ix.documents()}
                assert committed <= names
                for m in MODES:
                    hits = ix.search(QUERIES[0], k=5, mode=m)
                    assert {os.path.basename(h.path) for h in hits} <= committed, (where, m)
        index_paths(idx, [corpus], load_settings(**SETTINGS), progress=False, embedder=embedder)
        with open_index(idx) as ix:
            conn = ix.catalog.db.conn
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert sorted(os.path.basename(d["path"]) for d in ix.documents()) == sorted(names), where
            assert conn.execute("SELECT COUNT(*) FROM (SELECT doc_id, ordinal FROM chunks "
                                "GROUP BY 1, 2 HAVING COUNT(*) > 1)").fetchone()[0] == 0
            assert ix.status()["vectors_in_sync"], where
            check = ix.check()  # every FAISS file against its checksum
            assert check["vector_files"] == "ok" and not check["problems"], (where, check)
            runs = [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY id")]
            assert runs[-1] == "done" and set(runs[:-1]) <= {"interrupted"}, (where, runs)
        assert not list((idx / "vectors").glob("*.tmp")), where  # the killed save's temp files are gone
        assert _results(idx, embedder) == expected, f"after a kill at step {n} ({where})"
