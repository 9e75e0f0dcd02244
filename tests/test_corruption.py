"""Every kind of stored file damaged (truncated, garbled, zeroed, the wrong shape): each case is either
repaired, with search results identical to the undamaged index, or refused with one line that names the
file and the fix. Never a traceback, never a silent wrong result."""
import shutil
import sqlite3

import faiss
import numpy as np
import pytest
from conftest import DOC_FIXTURES
from typer.testing import CliRunner

from longdoc import index_paths, open_index
from longdoc.config import load_settings
from longdoc.errors import IndexDamagedError
from longdoc.indexing.pipeline import remove_documents
from longdoc.cli.app import app

pytestmark = pytest.mark.slow

QUERIES = ["the keeper's log at night", "tides and the moon", "a fog signal in the harbour"]
MODES = ["dense", "multihead", "bm25", "hybrid"]


def _results(idx, embedder) -> dict:
    with open_index(idx) as ix:
        ix._embedder = embedder
        return {(q, m): [(h.chunk_id, round(h.score, 4)) for h in ix.search(q, k=5, mode=m)]
                for q in QUERIES for m in MODES}


@pytest.fixture(scope="module", autouse=True)
def ivf_past_a_few_chunks():
    """Dense search through a saved IVF index, so that its file is among those damaged (below the
    threshold dense search needs no file)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LONGDOC_SEARCH_IVF_THRESHOLD", "10")
        yield


@pytest.fixture(scope="module")
def clean(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("corruption")
    corpus = root / "docs"
    corpus.mkdir()
    for p in DOC_FIXTURES:
        shutil.copy(p, corpus / p.name)
    idx = root / "clean"
    index_paths(idx, [corpus], load_settings().replace(head_vectors=True), progress=False, embedder=embedder)
    assert (idx / "vectors" / "ivf.faiss").exists()
    return idx, _results(idx, embedder)


def _damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[:len(data) // 2]
    elif how == "garbled":  # bytes flipped in the middle: the file may still parse
        rng = np.random.default_rng(0)
        for i in rng.integers(len(data) // 4, len(data), size=max(8, len(data) // 100)):
            data[i] ^= 0xA5
    elif how == "zeroed":
        data = bytearray(len(data))
    elif how == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))


def _cli(*args):
    result = CliRunner().invoke(app, [*map(str, args)])
    assert "Traceback" not in result.output and not isinstance(result.exception, (AssertionError, KeyError)), result.output
    return result


DAMAGES = ["truncated", "garbled", "zeroed", "empty"]
CASES = [(name, how) for name in ["ivf.faiss", "head-11.faiss"] for how in DAMAGES + ["wrong shape"]]


@pytest.mark.parametrize("name,how", CASES + [("manifest.json", how) for how in DAMAGES])
def test_a_damaged_vector_file_is_repaired_with_identical_results(tmp_path, clean, embedder, name, how):
    source, expected = clean
    idx = tmp_path / "index"
    shutil.copytree(source, idx)
    path = idx / "vectors" / name
    if how == "wrong shape":
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(7))
        index.add_with_ids(np.ones((3, 7), np.float32), np.arange(3, dtype=np.int64))
        faiss.write_index(index, str(path))
    else:
        _damage(path, how)
    with open_index(idx) as ix:
        status = ix.status()
    if how in ("truncated", "empty", "wrong shape") or name == "manifest.json":  # seen from sizes alone
        assert not status["vectors_in_sync"] and name in status["vector_files"], status
    assert _results(idx, embedder) == expected  # search repairs in memory
    found = _cli("doctor", "--index", idx)
    assert found.exit_code == 1 and "problem: vector files" in found.output
    assert _cli("doctor", "--index", idx, "--repair").exit_code == 0
    assert _cli("doctor", "--index", idx).exit_code == 0
    assert _results(idx, embedder) == expected


@pytest.mark.parametrize("how", ["empty", "truncated", "zeroed", "header"])
def test_a_damaged_catalog_is_refused_in_one_line_naming_it(tmp_path, clean, how):
    idx = tmp_path / "index"
    shutil.copytree(clean[0], idx)
    catalog = idx / "catalog.sqlite"
    for side in ["catalog.sqlite-wal", "catalog.sqlite-shm"]:
        (idx / side).unlink(missing_ok=True)
    if how == "header":
        data = bytearray(catalog.read_bytes())
        data[:16] = b"this is no db!!!"
        catalog.write_bytes(bytes(data))
    else:
        _damage(catalog, how)
    for args in [("status",), ("search", "fog", "--mode", "bm25"), ("docs", "list"), ("doctor",)]:
        result = _cli(*args, "--index", idx)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
        assert f"{catalog} is damaged" in lines[0] and "run longdoc index on your documents" in lines[0], lines


def test_garbled_catalog_pages_are_found_by_doctor(tmp_path, clean):
    """Damage inside pages a query may never read: doctor's full check finds it."""
    idx = tmp_path / "index"
    shutil.copytree(clean[0], idx)
    catalog = idx / "catalog.sqlite"
    for side in ["catalog.sqlite-wal", "catalog.sqlite-shm"]:
        (idx / side).unlink(missing_ok=True)
    _damage(catalog, "garbled")
    result = _cli("doctor", "--index", idx)
    assert result.exit_code == 1 and "is damaged" in result.output, result.output
    # The service checks the catalog before it serves anything from it.
    from longdoc.service.app import ServiceConfig, create_app

    with pytest.raises(IndexDamagedError, match=f"{catalog} is damaged"):
        create_app(ServiceConfig(index=idx, token=None))


@pytest.mark.parametrize("how", ["intact", "missing", *DAMAGES])
def test_a_damaged_wal_loses_at_most_its_last_commit_and_search_agrees_with_the_catalog(tmp_path, clean, embedder,
                                                                                         how):
    """The WAL holds commits not yet copied into the catalog file; SQLite checks its frames' checksums and
    drops a damaged tail. What is left is the index before that commit or after it, never a mix: the
    vector files (saved after the commit) are brought back to the catalog."""
    source, before = clean
    live = tmp_path / "live"
    shutil.copytree(source, live)
    holder = sqlite3.connect(live / "catalog.sqlite")  # a second reader: the writer's close keeps its WAL
    holder.execute("SELECT COUNT(*) FROM meta").fetchone()
    with open_index(live) as ix:
        gone = ix.documents()[0]["path"]
    assert remove_documents(live, [gone]) == [gone]
    idx = tmp_path / "index"
    shutil.copytree(live, idx)
    holder.close()
    after = _results(live, embedder)
    assert after != before and (idx / "catalog.sqlite-wal").stat().st_size > 0
    (idx / "catalog.sqlite-shm").unlink()  # rebuilt from the WAL, as after a power cut
    wal = idx / "catalog.sqlite-wal"
    if how == "missing":
        wal.unlink()
    elif how != "intact":
        _damage(wal, how)
    got = _results(idx, embedder)
    assert got in (before, after)
    with open_index(idx) as ix:
        rolled_back = gone in {d["path"] for d in ix.documents()}
        assert rolled_back == (got == before)
        # status says so when the catalog went back behind the vector files, and the repair brings them level
        assert ix.status()["vectors_in_sync"] is not rolled_back, how
    assert _cli("doctor", "--repair", "--index", idx).exit_code == 0
    with open_index(idx) as ix:
        assert ix.status()["vectors_in_sync"] and ix.check()["problems"] == []
    assert _results(idx, embedder) == got
    assert rolled_back == (how != "intact")  # each damage here reaches the one commit's frames


def test_a_damaged_kv_entry_is_recomputed_and_the_answer_is_unchanged(tmp_path, clean):
    idx = tmp_path / "index"
    shutil.copytree(clean[0], idx)
    with open_index(idx) as ix:
        hits = ix.search("When were electric lamps installed?", k=2, mode="bm25")
        first = ix.answer_hits("When were electric lamps installed?", hits, "block", max_new_tokens=12)
        entries = sorted((idx / "kv").rglob("*.safetensors"))
    assert entries
    for entry in entries:
        _damage(entry, "garbled")
    checked = _cli("doctor", "--index", idx)
    assert f"{len(entries)} checked, {len(entries)} damaged and deleted" in checked.output.replace("\n", " ")
    for entry in entries:
        assert not entry.exists()
    with open_index(idx) as ix:
        again = ix.answer_hits("When were electric lamps installed?", hits, "block", max_new_tokens=12)
    assert again.text == first.text and again.timings["blocks_computed"] == len(entries) - 1
