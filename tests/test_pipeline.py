"""Incremental indexing with the real embedder over real files."""
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import FIXTURES

from longdoc import index_paths, open_index
from longdoc.config import Settings
from longdoc.errors import IndexMismatchError, SkippedFile
from longdoc.indexing.head_weights import head_means
from longdoc.indexing.chunking import Chunker
from longdoc.indexing.parse_worker import ParseWorker

pytestmark = pytest.mark.slow
SETTINGS = Settings().replace(chunk_tokens=64, chunk_overlap=8)


def _chunk_ids(ix) -> dict[str, list[int]]:
    return {d["path"]: [c["id"] for c in ix.chunks(d["id"])] for d in ix.documents()}


def test_index_then_touch_change_delete(tmp_path, corpus, embedder):
    idx = tmp_path / "index"
    first = index_paths(idx, [corpus], SETTINGS, progress=False, embedder=embedder)
    assert first.added == 6 and first.skipped == 0 and first.chunks_embedded > 6
    with open_index(idx) as ix:
        before = _chunk_ids(ix)
        assert ix.status()["vectors_in_sync"]
        for d in ix.documents():
            text = ix.document_text(d["id"])
            for c in ix.chunks(d["id"]):
                assert text[c["char_start"]:c["char_end"]] == c["text"]

    # Unchanged tree: no embedding work at all.
    again = index_paths(idx, [corpus], progress=False, embedder=embedder)
    assert (again.unchanged, again.added, again.updated, again.chunks_embedded) == (6, 0, 0, 0)

    # Touch (new mtime, same bytes): still unchanged.
    os.utime(corpus / "tides.rst", (1, 1))
    touched = index_paths(idx, [corpus], progress=False, embedder=embedder)
    assert touched.unchanged == 6 and touched.chunks_embedded == 0

    # Change one file: only it is re-embedded; every other document keeps its chunk ids.
    md = corpus / "lighthouses.md"
    md.write_text(md.read_text() + "\n## Visitors\n\nThe museum at Carrow Point opens every Sunday in summer.\n")
    changed = index_paths(idx, [corpus], progress=False, embedder=embedder)
    assert (changed.updated, changed.unchanged, changed.added) == (1, 5, 0)
    with open_index(idx) as ix:
        after = _chunk_ids(ix)
        assert changed.chunks_embedded == len(after[str(md)])
        for path, ids in before.items():
            if path != str(md):
                assert after[path] == ids
        assert not set(after[str(md)]) & set(before[str(md)])
        hits = ix.search("When is the museum open?", k=3)
        assert "Sunday" in hits[0].text and hits[0].section[-1] == "Visitors"

    # Delete a file: kept without --prune, removed with it.
    (corpus / "fog_signals.txt").unlink()
    kept = index_paths(idx, [corpus], progress=False, embedder=embedder)
    assert kept.removed == 0
    pruned = index_paths(idx, [corpus], prune=True, progress=False, embedder=embedder)
    assert pruned.removed == 1
    with open_index(idx) as ix:
        assert str(corpus / "fog_signals.txt") not in _chunk_ids(ix)
        assert all(not h.path.endswith("fog_signals.txt") for h in ix.search("diaphone fog signal", k=5))
        assert ix.status()["vectors_in_sync"]


def test_bad_files_are_skipped_and_stored_documents_untouched(tmp_path, corpus, embedder):
    idx = tmp_path / "index"
    index_paths(idx, [corpus], SETTINGS, progress=False, embedder=embedder)
    with open_index(idx) as ix:
        before = _chunk_ids(ix)
    # A previously good file turns corrupt, and new bad files appear beside it.
    pdf = corpus / "lighthouse_log.pdf"
    pdf.write_bytes(pdf.read_bytes()[:500])
    (corpus / "empty.txt").write_text("")
    (corpus / "binary.md").write_bytes(b"\x00\x01\x02" * 1000)
    (corpus / "nonsense.txt").write_bytes(bytes(range(128, 256)) * 30)
    os.symlink(corpus / "nowhere.txt", corpus / "dangling.txt")
    shutil.copy(FIXTURES / "fog_signals.txt", corpus / "new_fog.txt")
    report = index_paths(idx, [corpus], progress=False, embedder=embedder)
    reasons = dict(report.skipped_files)
    assert set(reasons) == {str(corpus / n) for n in ["lighthouse_log.pdf", "empty.txt", "binary.md", "nonsense.txt", "dangling.txt"]}
    assert "PDF" in reasons[str(pdf)] and "empty" in reasons[str(corpus / "empty.txt")]
    assert report.added == 1 and report.unchanged == 5
    with open_index(idx) as ix:
        after = _chunk_ids(ix)
        assert after[str(pdf)] == before[str(pdf)], "the stored version of the now-corrupt pdf is kept"
        assert len(after) == 7
        skipped = ix.catalog.db.conn.execute("SELECT COUNT(*) FROM skipped_files WHERE run_id = ?", (report.run_id,)).fetchone()[0]
        assert skipped == 5


def test_pipes_devices_sockets_and_endless_files_are_skipped_without_hanging(tmp_path, corpus, embedder):
    """A FIFO named x.txt (in a folder and named on the command line), symlinks to /dev/zero and
    /dev/urandom, a socket: each skipped with one line, within seconds, and the good files indexed."""
    import signal
    import socket

    os.mkfifo(corpus / "pipe.txt")
    os.symlink("/dev/zero", corpus / "zeros.txt")
    os.symlink("/dev/urandom", corpus / "random.md")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(corpus / "socket.txt"))
    fifo = tmp_path / "named.txt"
    os.mkfifo(fifo)

    def hung(*_):
        raise TimeoutError("indexing hung on a special file")

    signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        report = index_paths(tmp_path / "index", [corpus, fifo], SETTINGS, progress=False, embedder=embedder)
    finally:
        signal.alarm(0)
        sock.close()
    reasons = dict(report.skipped_files)
    assert reasons == {str(corpus / "pipe.txt"): "not a regular file: a named pipe (FIFO)",
                       str(fifo): "not a regular file: a named pipe (FIFO)",
                       str(corpus / "zeros.txt"): "not a regular file: a character device",
                       str(corpus / "random.md"): "not a regular file: a character device",
                       str(corpus / "socket.txt"): "not a regular file: a socket"}, reasons
    assert report.added == 6


def test_a_file_name_that_is_not_utf8_is_indexed_kept_apart_and_shown_escaped(tmp_path, embedder):
    """`badname\xff.txt` once made a whole folder unindexable. Its bytes are kept exactly, a file whose
    name is the escaped text itself stays a separate document, and re-runs and pruning match them."""
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(FIXTURES / "fog_signals.txt", folder / "plain.txt")
    odd = os.path.join(os.fsencode(folder), b"badname\xff.txt")
    with open(odd, "wb") as f:
        f.write(b"The odd lighthouse keeper logged every passing ship by lantern light.\n")
    (folder / "badname\\xff.txt").write_text("A file whose name is the escaped form, written out literally.\n")
    idx = tmp_path / "index"
    report = index_paths(idx, [folder], SETTINGS, progress=False, embedder=embedder)
    assert report.added == 3 and report.skipped == 0
    assert index_paths(idx, [folder], SETTINGS, progress=False, embedder=embedder).unchanged == 3
    shown = str(folder / "badname\\xff.txt")
    with open_index(idx) as ix:
        ix._embedder = embedder
        paths = sorted(d["path"] for d in ix.documents())
        assert paths.count(shown) == 2 and len(paths) == 3
        hits = ix.search("lighthouse keeper logged passing ships by lantern", k=1)
        assert hits[0].path == shown and "lantern" in hits[0].text
    os.unlink(odd)
    report = index_paths(idx, [folder], SETTINGS, prune=True, progress=False, embedder=embedder)
    assert report.removed == 1 and report.unchanged == 2
    with open_index(idx) as ix:
        assert [d["title"] for d in ix.documents() if d["path"] == shown] == ["badname\\xff"]


def test_the_python_api_refuses_bad_arguments_with_longdoc_errors(tmp_path, corpus, embedder):
    """A single path is one path (a string once went through its characters: indexing "/"); wrong
    types and values are LongdocErrors that say what was expected."""
    from longdoc import LongdocError

    idx = tmp_path / "index"
    report = index_paths(idx, str(corpus / "tides.rst"), SETTINGS, progress=False, embedder=embedder)
    assert report.added == 1
    with pytest.raises(LongdocError, match="roots must be a path or a list of paths"):
        index_paths(idx, 5, SETTINGS, progress=False, embedder=embedder)
    for bad in (None, 5, ""):
        with pytest.raises(LongdocError, match="index_dir must be a path, got"):
            index_paths(bad, [corpus], SETTINGS, progress=False, embedder=embedder)
        with pytest.raises(LongdocError, match="index must be a path, got"):
            open_index(bad)
    with open_index(idx) as ix:
        ix._embedder = embedder
        for kwargs, message in [({"k": "5"}, "whole numbers"), ({"k": True}, "whole numbers"), ({"k": 0}, "at least 1"),
                                ({"context": -1}, "at least 0"), ({"mode": "fuzzy"}, "unknown search mode"),
                                ({"filters": {"folder": "x"}}, "unknown filter 'folder'"), ({"per": "page"}, "grouping"),
                                ({"filters": [1]}, "filters must be a Filters or a dict"),
                                ({"filters": {"documents": "a.txt"}}, "documents must be a list of document paths"),
                                ({"filters": {"section": 7}}, "section must be a string")]:
            with pytest.raises(LongdocError, match=message):
                ix.search("tides", **kwargs)
        with pytest.raises(LongdocError, match="the query must be text, got 5"):
            ix.search(5)
        with pytest.raises(LongdocError, match="at least 1"):
            ix.ask("tides?", k=0)
        with pytest.raises(LongdocError, match="paths must be a path or a list of paths"):
            ix.remove(5)
        assert ix.remove(str(corpus / "tides.rst")) == [str(corpus / "tides.rst")]


def test_index_built_with_other_settings_is_refused(tmp_path, corpus, embedder):
    idx = tmp_path / "index"
    index_paths(idx, [corpus / "tides.rst"], SETTINGS, progress=False, embedder=embedder)
    with pytest.raises(IndexMismatchError, match="chunked with tokens=64"):
        index_paths(idx, [corpus], SETTINGS.replace(chunk_tokens=128), progress=False, embedder=embedder)
    with pytest.raises(IndexMismatchError, match="embedder"):
        index_paths(idx, [corpus], SETTINGS.replace(embedder="sentence-transformers/paraphrase-MiniLM-L3-v2"),
                    progress=False, embedder=embedder)
    with pytest.raises(IndexMismatchError, match="built without head vectors"):
        index_paths(idx, [corpus], SETTINGS.replace(head_vectors=True), progress=False, embedder=embedder)
    with open_index(idx) as ix:
        assert len(ix.documents()) == 1


def test_head_vectors_are_kept_by_an_index_built_with_them(tmp_path, corpus, embedder):
    """An index built with head vectors keeps storing them when later runs ask for nothing in particular
    (the setting's default is off), so its per-head files never fall behind its dense one."""
    idx = tmp_path / "index"
    index_paths(idx, [corpus / "tides.rst"], SETTINGS.replace(head_vectors=True), progress=False, embedder=embedder)
    with open_index(idx) as ix:  # the first commit fixed the heads' means, from its own chunks
        first = ix.catalog.vector_ids()
        manifest = ix.manifest
        assert manifest["head_pooling"] == "mean,max,first" and manifest["heads"] == 36
        stored = ix.catalog.vectors(first, 0, 36, 32)[1]
        np.testing.assert_allclose(manifest["head_means"], head_means(stored), atol=2e-3)
    index_paths(idx, [corpus], SETTINGS, progress=False, embedder=embedder)
    with open_index(idx) as ix:
        ix._embedder = embedder
        chunks = ix.catalog.counts()["chunks"]
        assert ix.manifest["head_means"] == manifest["head_means"]  # fixed: later commits leave them
        status = ix.status()
        assert (status["heads"], status["head_pooling"], status["head_centred"]) == (36, "mean,max,first", True)
        store = ix.vectors
        assert store.n_heads == 36 and all(h.ntotal == chunks for h in store.heads)
        # each head file holds the stored head vector less that head's mean, unit length
        some = ix.catalog.vector_ids()[-3:]
        raw = ix.catalog.vectors(some, 0, 36, 32)[1]
        for h in (0, 20, 35):
            centred = raw[:, h] - np.asarray(manifest["head_means"], np.float32)[h]
            expected = centred / np.linalg.norm(centred, axis=1, keepdims=True)
            np.testing.assert_allclose([store.heads[h].reconstruct(int(i)) for i in some], expected, atol=1e-5)
        assert ix.search("how loud was the diaphone?", k=3, mode="multihead")[0].path.endswith("fog_signals.txt")


def test_head_pooling_is_kept_by_an_index_and_another_is_refused(tmp_path, corpus, embedder):
    from longdoc.indexing.embedder import MultiHeadEmbedder

    idx = tmp_path / "index"
    by_mean = MultiHeadEmbedder("all-MiniLM-L6-v2", device="cpu", pooling="mean")
    index_paths(idx, [corpus / "tides.rst"], SETTINGS.replace(head_vectors=True, head_pooling="mean"),
                progress=False, embedder=by_mean)
    with pytest.raises(IndexMismatchError, match="pools its head vectors by 'mean', not 'max'"):
        index_paths(idx, [corpus], SETTINGS.replace(head_pooling="max"), progress=False, embedder=by_mean)
    with pytest.raises(IndexMismatchError, match="pools its head vectors by 'mean', but the embedder given"):
        index_paths(idx, [corpus], SETTINGS, progress=False, embedder=embedder)
    index_paths(idx, [corpus], SETTINGS, progress=False)  # the default pooling asked: the index keeps its own
    with open_index(idx) as ix:
        assert ix.manifest["head_pooling"] == "mean" and ix.vectors.n_heads == 12
        assert ix.embedder.pooling == ("mean",)
        assert ix.search("how loud was the diaphone?", k=3, mode="multihead")[0].path.endswith("fog_signals.txt")


def test_search_modes_and_bad_queries(tmp_path, corpus, embedder):
    from longdoc.errors import LongdocError

    idx = tmp_path / "index"
    index_paths(idx, [corpus], SETTINGS, progress=False, embedder=embedder)
    with open_index(idx) as ix:
        ix._embedder = embedder
        dense = ix.search("how loud was the diaphone?", k=3, mode="dense")
        assert dense[0].path.endswith("fog_signals.txt") and dense[0].ranks == {"dense": 1}
        bm25 = ix.search("Fresnel lens prisms", k=3, mode="bm25")
        assert bm25[0].path.endswith("lighthouses.md") and bm25[0].section[-1] == "Lighting"
        pdf_hit = ix.search("inspector visited the station", k=1, mode="dense")[0]
        assert pdf_hit.path.endswith(".pdf") and "inspector" in pdf_hit.text
        assert pdf_hit.page <= 3 and pdf_hit.page_end == 3
        for bad, msg in [("", "empty"), ("x" * 10_000, "limit"), ]:
            with pytest.raises(LongdocError, match=msg):
                ix.search(bad)
        with pytest.raises(LongdocError, match="unknown search mode"):
            ix.search("fog", mode="telepathy")


def test_a_file_over_the_parse_time_limit_is_skipped_and_the_rest_indexed(tmp_path, corpus, embedder):
    """The limit is real: a 12 MB text takes seconds to chunk, past a 0.3 s limit, so its child process
    is killed, the file skipped with one line, and the files after it parsed by a fresh child."""
    big = corpus / "big.txt"
    paragraph = (FIXTURES / "fog_signals.txt").read_text()
    big.write_text("\n\n".join(f"{i}. {paragraph}" for i in range(12 * 2**20 // len(paragraph))))
    settings = Settings().replace(parse_timeout_s=0.3)
    report = index_paths(tmp_path / "index", [corpus], settings, progress=False, embedder=embedder)
    assert report.skipped_files == [(str(big), "took over 0.3 s to load and chunk; skipped (the limit is the "
                                               "parse_timeout_s setting)")]
    assert report.added == len(list(corpus.iterdir())) - 1
    worker = ParseWorker(Chunker(embedder.tokenizer, settings.chunk), timeout_s=60)
    killer = threading.Timer(1.0, lambda: os.kill(worker._proc.pid, signal.SIGKILL))
    try:
        worker.parse(str(corpus / "fog_signals.txt"), (corpus / "fog_signals.txt").read_bytes())  # started, warm
        killer.start()
        with pytest.raises(SkippedFile, match=r"its parser crashed \(exit code -9\); skipped"):
            worker.parse(str(big), big.read_bytes())
        doc, chunks = worker.parse(str(corpus / "fog_signals.txt"), (corpus / "fog_signals.txt").read_bytes())
        assert chunks and doc.text == (corpus / "fog_signals.txt").read_text()
    finally:
        killer.cancel()
        worker.close()


def test_a_script_without_a_main_guard_indexes_once(tmp_path, corpus):
    """The parse child is a fresh interpreter running only its own module: multiprocessing's spawn would
    re-run the caller's script in the child, and a script without `if __name__ == "__main__"` would
    index again from inside it (and find the index locked)."""
    marker = tmp_path / "runs.txt"
    script = tmp_path / "index_my_docs.py"
    script.write_text(f"from longdoc import index_paths\n"
                      f"open({str(marker)!r}, 'a').write('ran\\n')\n"
                      f"report = index_paths({str(tmp_path / 'index')!r}, [{str(corpus)!r}], progress=False)\n"
                      f"print(report.added, report.skipped)\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == [str(len(list(corpus.iterdir()))), "0"]
    assert marker.read_text() == "ran\n"


def test_a_big_file_comes_back_as_its_text_once_and_its_parse_child_is_then_retired(tmp_path, embedder):
    """A 9 MB text: its chunks come back from the child as offsets into the document's text, which is
    pickled once. The child that parsed it is ended (it would keep the memory the file took beside the
    indexer), and the next file starts a fresh one."""
    big = tmp_path / "big.txt"
    paragraph = (FIXTURES / "fog_signals.txt").read_text()
    big.write_text("\n\n".join(f"{i}. {paragraph}" for i in range(9 * 2**20 // len(paragraph))))
    small = FIXTURES / "fog_signals.txt"
    worker = ParseWorker(Chunker(embedder.tokenizer, Settings().chunk), timeout_s=120)
    try:
        worker.parse(str(small), small.read_bytes())
        assert worker._proc is not None  # a small file keeps its child
        doc, chunks = worker.parse(str(big), big.read_bytes())
        assert worker._proc is None
        # The text once (twice would be ~19 MB), and a few integers per chunk.
        assert len(chunks) > 10_000 and len(pickle.dumps((doc, chunks))) < big.stat().st_size + 64 * len(chunks)
        for i in (0, len(chunks) // 2, -1):
            c = chunks[i]
            assert c.text == doc.text[c.char_start:c.char_end] and c.ordinal == i % len(chunks)
        assert chunks[:2] == [chunks[0], chunks[1]]
        worker.parse(str(small), small.read_bytes())
        assert worker._proc is not None
    finally:
        worker.close()


def test_the_writer_saves_the_ivf_index_a_search_then_loads(tmp_path, corpus, embedder):
    """Past search.ivf_threshold chunks `index` writes vectors/ivf.faiss; a search process reads it (no
    k-means at start) and, probing every cell, ranks as exact search does."""
    from longdoc.storage import VectorStore
    from longdoc.storage.ivf import is_ivf

    idx = tmp_path / "index"
    settings = SETTINGS.replace(search_ivf_threshold=20, search_ivf_nprobe=10_000)
    index_paths(idx, [corpus], settings, progress=False, embedder=embedder)
    assert (idx / "vectors" / "ivf.faiss").exists()
    # An index written before (or with a higher threshold) gets the file from the next run, even a no-op.
    (idx / "vectors" / "ivf.faiss").unlink()
    manifest = json.loads((idx / "vectors" / "manifest.json").read_text())
    del manifest["files"]["ivf.faiss"]
    (idx / "vectors" / "manifest.json").write_text(json.dumps(manifest))
    assert index_paths(idx, [corpus], settings, progress=False, embedder=embedder).unchanged == 6
    assert (idx / "vectors" / "ivf.faiss").exists()
    with open_index(idx, settings=settings) as ix:
        ix._embedder = embedder
        store = ix.vectors
        assert store.size >= 20 and is_ivf(store.dense) and store.saved_generation == store.generation
        query = embedder.encode(["how loud was the diaphone?"])[0]
        flat = VectorStore.for_manifest(idx, ix.manifest)  # no threshold: exact, built from the catalog
        flat.sync(ix.catalog)
        assert store.search_dense(query, 3)[1].tolist() == flat.search_dense(query, 3)[1].tolist()


def test_the_bm25_index_follows_changes_and_a_reader_rebuilds_one_that_is_behind(tmp_path, corpus, embedder):
    """Incremental adds, changes and removals give the BM25 hits a fresh build gives; without a saved
    index in step (deleted here) search builds one in memory, doctor says so, and the next run saves it."""
    import shutil as sh

    def hits(idx):
        with open_index(idx) as ix:
            return [[(os.path.basename(h.path), h.text) for h in ix.search(q, k=5, mode="bm25")]
                    for q in ("fog signal diaphone", "lamp keeper night", "spring tides moon")]

    idx, fresh = tmp_path / "index", tmp_path / "fresh"
    index_paths(idx, [corpus], SETTINGS, progress=False, embedder=embedder)
    (corpus / "tides.rst").write_text((corpus / "tides.rst").read_text().replace("moon", "Moon and the sun"))
    (corpus / "extra.txt").write_text("A diaphone fog signal sounded at night while the keeper trimmed the lamp.")
    (corpus / "fog_signals.txt").unlink()
    index_paths(idx, [corpus], SETTINGS, prune=True, progress=False, embedder=embedder)
    index_paths(fresh, [corpus], SETTINGS, progress=False, embedder=embedder)
    assert hits(idx) == hits(fresh)

    sh.rmtree(idx / "bm25")
    with open_index(idx) as ix:
        assert ix.text_index.checks == [] and [h.text for h in ix.search("diaphone", k=1, mode="bm25")]
        assert any("BM25 index" in p for p in ix.check()["problems"])
    assert hits(idx) == hits(fresh)
    index_paths(idx, [corpus], SETTINGS, progress=False, embedder=embedder)  # nothing changed: saved again
    with open_index(idx) as ix:
        assert ix.check()["problems"] == []
