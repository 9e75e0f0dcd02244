import os
import sqlite3

import faiss
import numpy as np
import pytest

from longdoc.indexing.chunking import Chunk
from longdoc.indexing.document import LoadedDocument, Section
from longdoc.storage import Catalog, VectorStore
from longdoc.storage.migrations import SCHEMA_VERSION

DIM, HEADS, HD = 8, 3, 4


def _doc(path: str, text: str) -> LoadedDocument:
    return LoadedDocument(path, "txt", text, "t", [Section(0, len(text), ("Intro",))])


def _chunks(text: str, n: int) -> list[Chunk]:
    step = len(text) // n
    return [Chunk(i, text[i * step:(i + 1) * step], i * step, (i + 1) * step, 5, ("Intro",)) for i in range(n)]


def _put(cat: Catalog, path: str, n: int, seed: int):
    text = f"document {path} " * 20
    rng = np.random.default_rng(seed)
    dense, heads = rng.normal(size=(n, DIM)).astype(np.float32), rng.normal(size=(n, HEADS, HD)).astype(np.float32)
    with cat.transaction():
        cat.put_document(_doc(path, text), f"sha-{seed}", os.stat(__file__), _chunks(text, n), dense, heads)
    return dense, heads


def test_migrations_wal_and_fts(tmp_path):
    cat = Catalog.open(tmp_path, create=True)
    assert cat.schema_version == SCHEMA_VERSION
    assert cat.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert cat.db.journal_mode == "wal"
    assert {"documents", "chunks", "spans", "vectors", "chunks_fts", "meta", "runs"} <= set(cat.db.table_names())
    _put(cat, "/a.txt", 4, 0)
    assert cat.db.conn.execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH 'document'").fetchone()[0] == 4
    cat.close()
    # Re-opening applies nothing new and keeps the data.
    again = Catalog.open(tmp_path)
    assert again.counts()["chunks"] == 4


def test_open_missing_index_names_it(tmp_path):
    from longdoc.errors import IndexNotFoundError

    with pytest.raises(IndexNotFoundError, match=str(tmp_path / "nope")):
        Catalog.open(tmp_path / "nope")


def test_replace_and_remove_cascade_and_never_reuse_ids(tmp_path):
    cat = Catalog.open(tmp_path, create=True)
    _put(cat, "/a.txt", 3, 0)
    first_ids = set(cat.vector_ids().tolist())
    _put(cat, "/a.txt", 2, 1)  # replace
    second_ids = set(cat.vector_ids().tolist())
    assert len(second_ids) == 2 and not first_ids & second_ids
    assert cat.db.conn.execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH 'document'").fetchone()[0] == 2
    with cat.transaction():
        assert cat.remove_document("/a.txt")
    for table in ("documents", "document_texts", "chunks", "spans", "vectors"):
        assert cat.db.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    assert cat.db.conn.execute("SELECT COUNT(*) FROM chunks_fts WHERE chunks_fts MATCH 'document'").fetchone()[0] == 0


def test_failed_transaction_leaves_nothing_and_keeps_generation(tmp_path):
    cat = Catalog.open(tmp_path, create=True)
    _put(cat, "/a.txt", 3, 0)
    gen = cat.generation
    with pytest.raises(RuntimeError):
        with cat.transaction():
            cat.remove_document("/a.txt")
            raise RuntimeError("crash mid-write")
    assert cat.counts()["chunks"] == 3 and cat.generation == gen


def test_vectors_round_trip_bit_exact(tmp_path):
    cat = Catalog.open(tmp_path, create=True)
    dense, heads = _put(cat, "/a.txt", 5, 3)
    got_dense, got_heads = cat.vectors(cat.vector_ids(), DIM, HEADS, HD)
    assert np.array_equal(got_dense, dense) and np.array_equal(got_heads, heads)


def test_vector_store_syncs_by_id_difference_and_survives_reload(tmp_path):
    cat = Catalog.open(tmp_path, create=True)
    dense_a, heads_a = _put(cat, "/a.txt", 4, 0)
    _put(cat, "/b.txt", 3, 1)
    store = VectorStore(tmp_path, DIM, HEADS, HD).load()
    assert store.sync(cat) == (7, 0)
    store.save()
    with cat.transaction():
        cat.remove_document("/b.txt")
    reloaded = VectorStore(tmp_path, DIM, HEADS, HD).load()
    assert reloaded.size == 7 and reloaded.generation < cat.generation  # stale, and knows it
    assert reloaded.sync(cat) == (0, 3)
    assert sorted(reloaded.ids().tolist()) == sorted(cat.vector_ids().tolist())
    # Search finds a stored vector as its own nearest neighbour, in the dense space and in each head.
    scores, ids = reloaded.search_dense(dense_a[2:3], 1)
    assert ids[0, 0] == cat.vector_ids()[2] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    for h in range(HEADS):
        _, ids = reloaded.search_head(h, heads_a[1:2, h], 1)
        assert ids[0, 0] == cat.vector_ids()[1]


def test_damaged_vector_file_is_rebuilt_from_catalog(tmp_path):
    cat = Catalog.open(tmp_path, create=True)
    _put(cat, "/a.txt", 4, 0)
    store = VectorStore(tmp_path, DIM, HEADS, HD).load()
    store.sync(cat)
    store.save()
    (tmp_path / "vectors" / "head-01.faiss").write_bytes(b"garbage")
    rebuilt = VectorStore(tmp_path, DIM, HEADS, HD).load()
    assert rebuilt.size == 0
    rebuilt.sync(cat)
    assert rebuilt.size == 4 and rebuilt.heads[1].ntotal == 4


def test_ivf_search_past_the_threshold_finds_the_same_neighbours(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 16)).astype(np.float32)
    vecs = (centers[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 16))).astype(np.float32)
    ids = np.arange(1000, 4000, dtype=np.int64)
    flat = VectorStore(tmp_path, 16, 1, 4)
    flat.dense.add_with_ids(vecs / np.linalg.norm(vecs, axis=1, keepdims=True), ids)
    ivf = VectorStore(tmp_path, 16, 1, 4, ivf_threshold=1000, ivf_nprobe=64)
    ivf.dense = flat.dense
    queries = vecs[:50]
    _, exact = flat.search_dense(queries, 10)
    _, approx = ivf.search_dense(queries, 10)
    assert isinstance(ivf.ivf(), faiss.IndexIVFFlat)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.95
    allowed = ids[::7]
    _, filtered = ivf.search_dense(queries[:5], 10, allowed)
    assert set(filtered.ravel()) - {-1} <= set(allowed.tolist())
