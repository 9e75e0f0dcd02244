"""A full disk and a read-only index, for real: a small tmpfs in a private mount namespace, and files this
user may not write (root's override of file modes dropped with setpriv)."""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DOC_FIXTURES, unprivileged
from longdoc import index_paths, open_index
from longdoc.indexing.pipeline import remove_documents

pytestmark = pytest.mark.slow
LONGDOC = [sys.executable, "-m", "longdoc"]
MODES = ("bm25", "dense", "hybrid")  # the default index: no head vectors


def _private_mount() -> list[str]:
    """The prefix that runs a command in its own mount namespace, where it may mount a tmpfs."""
    prefix = ["unshare", "--mount", "--propagation", "private"] if os.geteuid() == 0 else \
             ["unshare", "--user", "--map-root-user", "--mount"]
    probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt || mount -t tmpfs tmpfs /tmp"],
                           capture_output=True, text=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip(f"no private mount namespace with a tmpfs here: {probe.stderr.strip()[:200]}")
    return prefix


def _results(index_dir: Path, embedder) -> dict:
    with open_index(index_dir) as ix:
        ix._embedder = embedder
        return {m: [(h.chunk_id, round(h.score, 5)) for h in ix.search("who kept the lighthouse light", k=5, mode=m)]
                for m in MODES}


def _tree_digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_full_disk_stops_indexing_with_one_line_and_leaves_the_index_as_it_was(tmp_path, essays_dir, embedder):
    mount = _private_mount()
    small, big, disk = tmp_path / "small", tmp_path / "big", tmp_path / "disk"
    for d in (small, big, disk):
        d.mkdir()
    for p in DOC_FIXTURES[:3]:
        shutil.copy(p, small / p.name)
    for p in sorted(essays_dir.glob("*.txt"))[:16]:  # ~900 chunks: the catalog outgrows a 1 MB disk first
        shutil.copy(p, big / p.name)
    index = disk / "idx"
    ld = " ".join(LONGDOC)
    script = f"""
        mount -t tmpfs -o size=1m tmpfs {disk}
        {ld} index {small} --index {index} >/dev/null 2>&1 || exit 10
        cp -a {index} {tmp_path}/before
        {ld} index {big} --index {index} >/dev/null 2>{tmp_path}/full.err; echo $? > {tmp_path}/full.rc
        cp -a {index} {tmp_path}/after-full
        mount -o remount,size=64m {disk}
        {ld} index {big} --index {index} >/dev/null 2>{tmp_path}/again.err || exit 11
        cp -a {index} {tmp_path}/after-space
    """
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", COLUMNS="300")
    run = subprocess.run([*mount, "sh", "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr

    # The full disk: exit 1 and one line naming the catalog and the cause, no traceback.
    assert (tmp_path / "full.rc").read_text().strip() == "1"
    errors = [line for line in (tmp_path / "full.err").read_text().splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot write {index}/catalog.sqlite: the disk is full; free some space and run the "
                      f"command again"], (tmp_path / "full.err").read_text()[-2000:]
    assert "Traceback" not in (tmp_path / "full.err").read_text()

    # What was stored before is whole and answers exactly as before.
    with open_index(tmp_path / "after-full") as ix:
        assert ix.check()["problems"] == []
        assert sorted(d["path"].rsplit("/", 1)[1] for d in ix.documents()) == sorted(p.name for p in small.iterdir())
    assert _results(tmp_path / "after-full", embedder) == _results(tmp_path / "before", embedder)
    assert not list((tmp_path / "after-full").rglob("*.tmp"))

    # With space again, the same command completes: the same index as one built on a roomy disk.
    clean = tmp_path / "clean"
    index_paths(clean, [small], progress=False, embedder=embedder)
    index_paths(clean, [big], progress=False, embedder=embedder)
    with open_index(tmp_path / "after-space") as ix:
        assert ix.check()["problems"] == []
        assert len(ix.documents()) == 19
    got, want = _results(tmp_path / "after-space", embedder), _results(clean, embedder)
    for mode in MODES:  # chunk ids differ by the failed attempt's unused ids; texts and scores agree
        assert [s for _, s in got[mode]] == pytest.approx([s for _, s in want[mode]], abs=1e-4), mode


def test_a_read_only_index_searches_and_answers_and_refuses_writes_in_one_line(tmp_path, corpus, embedder):
    prefix = unprivileged()
    index = tmp_path / "idx"
    index_paths(index, [corpus], progress=False, embedder=embedder)
    want = _results(index, embedder)
    before = _tree_digest(index)
    for p in [index, *index.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", COLUMNS="300")

    def longdoc(*args):
        return subprocess.run([*prefix, *LONGDOC, *args, "--index", str(index)], env=env, capture_output=True,
                              text=True, timeout=600)

    try:
        for mode in MODES:
            run = longdoc("search", "who kept the lighthouse light", "-k", "5", "--mode", mode, "--json")
            assert run.returncode == 0, run.stderr[-2000:]
            assert [(h["chunk_id"], round(h["score"], 5)) for h in json.loads(run.stdout)] == want[mode]
        status = longdoc("status", "--json")
        assert status.returncode == 0, status.stderr[-2000:]
        assert json.loads(status.stdout)["vectors_in_sync"] is True and json.loads(status.stdout)["read_only"] is True
        ask = longdoc("ask", "Who kept the lighthouse log?", "--reader", "smollm2-135m-instruct", "--json")
        assert ask.returncode == 0, ask.stderr[-2000:]
        assert json.loads(ask.stdout)["raw"].strip()
        assert ask.stderr.count(f"KV entries are not stored under {index}/kv (permission denied)") == 1, ask.stderr
        write = longdoc("index", str(corpus))
        assert write.returncode == 1
        assert write.stderr.strip() == (f"error: cannot write {index}/write.lock: permission denied; give this user "
                                        f"write access to it, or work on a copy it can write")
        assert _tree_digest(index) == before  # nothing was written, not even a WAL or shared-memory file
    finally:
        for p in [index, *index.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_a_read_only_index_with_commits_still_in_its_wal_is_refused_not_read_stale(tmp_path, corpus, embedder):
    """Without write access to the folder SQLite cannot rebuild the WAL's index (-shm); opening the catalog
    as immutable would then read past the commits in the WAL. It is refused in one line instead."""
    prefix = unprivileged()
    live, index = tmp_path / "live", tmp_path / "idx"
    index_paths(live, [corpus], progress=False, embedder=embedder)
    holder = sqlite3.connect(live / "catalog.sqlite")  # a second reader: the writer's close keeps its WAL
    holder.execute("SELECT COUNT(*) FROM meta").fetchone()
    gone = str(sorted(corpus.iterdir())[0])
    assert remove_documents(live, [gone]) == [gone]
    shutil.copytree(live, index)
    holder.close()
    (index / "catalog.sqlite-shm").unlink()
    assert (index / "catalog.sqlite-wal").stat().st_size > 0
    for p in [index, *index.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        run = subprocess.run([*prefix, *LONGDOC, "search", "fog", "--mode", "bm25", "--index", str(index)],
                             env=dict(os.environ, HF_HUB_OFFLINE="1", COLUMNS="300"), capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 1, run.stdout + run.stderr
        assert run.stderr.strip() == (f"error: cannot read {index}/catalog.sqlite here: its last commits are still in "
                                      f"catalog.sqlite-wal, and this user cannot write the folder to read them; run "
                                      f"any longdoc command on it once with write access")
    finally:
        for p in [index, *index.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    with open_index(index) as ix:  # with write access the WAL's commits are read: the removal holds
        assert gone not in {d["path"] for d in ix.documents()}
