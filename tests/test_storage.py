import os

import faiss
import numpy as np
import pytest

from longdoc.indexing.chunking import Chunk
from longdoc.indexing.document import LoadedDocument, Section
from longdoc.storage import Catalog, VectorStore
from longdoc.storage.migrations import SCHEMA_VERSION
from longdoc.storage.vectors import index_ids

DIM, HEADS, HD = 8, 3, 4


def _doc(path: str, text: str) -> LoadedDocument:
    return LoadedDocument(path, "txt", text, "t", [Section(0, len(text), ("Intro",))])


def _chunks(text: str, n: int) -> list[Chunk]:
    step = len(text) // n
    return [Chunk(i, text[i * step:(i + 1) * step], i * step, (i + 1) * step, 5, ("Intro",)) for i in range(n)]


def _put(cat: Catalog, path: str, n: int, seed: int):
    text = f"document {path} " * 20
    rng = np.random.default_rng(seed)
    # Values float16 holds exactly: the catalog stores its copy of the vectors in float16.
    dense = rng.normal(size=(n, DIM)).astype(np.float16).astype(np.float32)
    heads = rng.normal(size=(n, HEADS, HD)).astype(np.float16).astype(np.float32)
    with cat.transaction():
        doc_id = cat.put_document(_doc(path, text), f"sha-{seed}", os.stat(__file__), n)
        cat.put_chunks(doc_id, _chunks(text, n), dense, heads)
    return dense, heads


def test_migrations_wal_and_fts(tmp_path):
    cat = Catalog.open(tmp_path, create=True)
    assert cat.schema_version == SCHEMA_VERSION
    assert cat.db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert cat.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in cat.db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"documents", "chunks", "spans", "vectors", "meta", "runs"} <= tables and "chunks_fts" not in tables
    _put(cat, "/a.txt", 4, 0)
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
    from longdoc.storage.text_index import TextIndex

    _put(cat, "/a.txt", 3, 0)
    first_ids = set(cat.vector_ids().tolist())
    TextIndex(tmp_path).refresh(cat)
    _put(cat, "/a.txt", 2, 1)  # replace
    second_ids = set(cat.vector_ids().tolist())
    assert len(second_ids) == 2 and not first_ids & second_ids
    TextIndex(tmp_path).refresh(cat)  # patched: the old chunks deleted, the new ones added
    assert {cid for cid, _ in TextIndex(tmp_path).sync(cat).search(["document"], 10)} == second_ids
    with cat.transaction():
        assert cat.remove_document("/a.txt")
    for table in ("documents", "document_texts", "chunks", "spans", "vectors"):
        assert cat.db.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
    TextIndex(tmp_path).refresh(cat)
    reader = TextIndex(tmp_path).sync(cat)
    assert reader.checks == [] and reader.search(["document"], 10) == []


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
    stored = cat.db.conn.execute("SELECT dense, heads FROM vectors LIMIT 1").fetchone()
    assert (len(stored[0]), len(stored[1])) == (2 * DIM, 2 * HEADS * HD)  # float16


def test_float32_vectors_of_older_indexes_still_read(tmp_path):
    cat = Catalog.open(tmp_path, create=True)
    rng = np.random.default_rng(0)
    dense, heads = rng.normal(size=(3, DIM)).astype(np.float32), rng.normal(size=(3, HEADS, HD)).astype(np.float32)
    text = "an older index " * 10
    with cat.transaction():
        doc_id = cat.put_document(_doc("/old.txt", text), "sha", os.stat(__file__), 3)
        cat.put_chunks(doc_id, _chunks(text, 3), dense, heads, dtype="float32")
    got_dense, got_heads = cat.vectors(cat.vector_ids(), DIM, HEADS, HD)
    assert np.array_equal(got_dense, dense) and np.array_equal(got_heads, heads)


def test_vector_store_syncs_by_id_difference_and_survives_reload(tmp_path):
    cat = Catalog.open(tmp_path, create=True)
    dense_a, heads_a = _put(cat, "/a.txt", 4, 0)
    _put(cat, "/b.txt", 3, 1)
    assert VectorStore(tmp_path, DIM, HEADS, HD).refresh(cat) == (7, 0)
    with cat.transaction():
        cat.remove_document("/b.txt")
    reloaded = VectorStore(tmp_path, DIM, HEADS, HD).load()
    # The head files hold the 7 saved; the flat dense index is filled from the catalog by sync.
    assert reloaded.heads[0].ntotal == 7 and reloaded.size == 0 and reloaded.generation < cat.generation
    assert reloaded.sync(cat) == (4, 3)
    assert sorted(p.name for p in (tmp_path / "vectors").iterdir()) == [
        "head-00.faiss", "head-01.faiss", "head-02.faiss", "manifest.json"]  # no file for flat dense search
    assert sorted(reloaded.ids().tolist()) == sorted(cat.vector_ids().tolist())
    # Search finds a stored vector as its own nearest neighbour, in the dense space and in each head.
    scores, ids = reloaded.search_dense(dense_a[2:3], 1)
    assert ids[0, 0] == cat.vector_ids()[2] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    for h in range(HEADS):
        _, ids = reloaded.search_head(h, heads_a[1:2, h], 1)
        assert ids[0, 0] == cat.vector_ids()[1]


def _same_as_catalog(store, cat) -> bool:
    want = sorted(cat.vector_ids().tolist())
    return all(sorted(index_ids(ix).tolist()) == want for ix in [store.dense, *store.heads])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped byte", "zeroed", "missing", "wrong dimension"])
def test_a_damaged_vector_file_alone_is_rebuilt_from_the_catalog(tmp_path, damage):
    cat = Catalog.open(tmp_path, create=True)
    dense, heads = _put(cat, "/a.txt", 4, 0)
    VectorStore(tmp_path, DIM, HEADS, HD).refresh(cat)
    path = tmp_path / "vectors" / "head-01.faiss"
    data = bytearray(path.read_bytes())
    if damage == "garbage":
        path.write_bytes(b"garbage")
    elif damage == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif damage == "flipped byte":  # still a readable FAISS file, with one vector silently wrong
        data[-20] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "zeroed":
        path.write_bytes(bytes(len(data)))
    elif damage == "missing":
        path.unlink()
    else:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(HD * 2))
        index.add_with_ids(np.ones((4, HD * 2), np.float32), cat.vector_ids())
        faiss.write_index(index, str(path))
    reopened = VectorStore(tmp_path, DIM, HEADS, HD).load()
    assert [line.split(":")[0] for line in reopened.checks] == ["head-01.faiss"]
    assert reopened.heads[1].ntotal == 0 and reopened.heads[0].ntotal == 4
    reopened.sync(cat)
    assert _same_as_catalog(reopened, cat)
    _, ids = reopened.search_head(1, heads[2:3, 1], 1)
    assert ids[0, 0] == cat.vector_ids()[2]


def test_a_save_cut_short_leaves_files_the_next_open_repairs(tmp_path):
    """The reported crash: a save killed after writing head-00.faiss; the manifest and
    the later head files are still the previous save's. Each file is brought to the catalog."""
    cat = Catalog.open(tmp_path, create=True)
    _put(cat, "/a.txt", 4, 0)
    VectorStore(tmp_path, DIM, HEADS, HD).refresh(cat)
    folder = tmp_path / "vectors"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with cat.transaction():
        cat.remove_document("/a.txt")
    _put(cat, "/b.txt", 3, 1)
    VectorStore(tmp_path, DIM, HEADS, HD).refresh(cat)
    for name in ["head-01.faiss", "head-02.faiss", "manifest.json"]:  # what the kill never reached
        (folder / name).write_bytes(before[name])
    reopened = VectorStore(tmp_path, DIM, HEADS, HD).load()
    assert reopened.generation == -1  # not every file matches the manifest: sync compares every id
    assert reopened.heads[1].ntotal == 4 and reopened.heads[0].ntotal == 0  # old, and dropped (newer than the manifest)
    reopened.sync(cat)
    assert _same_as_catalog(reopened, cat) and reopened.size == 3
    writer = VectorStore(tmp_path, DIM, HEADS, HD)
    assert writer.refresh(cat) == (3, 4)
    assert [line.split(":")[0] for line in writer.checks] == ["head-00.faiss"]
    again = VectorStore(tmp_path, DIM, HEADS, HD).load()
    assert again.checks == [] and again.saved_generation == cat.generation
    assert again.sync(cat) == (3, 0) and _same_as_catalog(again, cat)  # only the flat dense index filled


def test_refresh_rewrites_only_the_files_that_are_damaged_or_behind(tmp_path):
    """The writer's refresh reads, patches and writes a group of files at a time; a sound file in step
    with the catalog keeps its bytes and its inode (it is not rewritten)."""
    cat = Catalog.open(tmp_path, create=True)
    _put(cat, "/a.txt", 4, 0)
    assert VectorStore(tmp_path, DIM, HEADS, HD).refresh(cat) == (4, 0)
    folder = tmp_path / "vectors"
    before = {p.name: (p.read_bytes(), p.stat().st_ino) for p in folder.glob("*.faiss")}
    (folder / "head-02.faiss").write_bytes(b"garbage")
    writer = VectorStore(tmp_path, DIM, HEADS, HD)
    assert writer.refresh(cat) == (4, 0)  # head 2's four vectors, again
    assert writer.checks == ["head-02.faiss: contents differ from the manifest's checksum; rebuilt from the catalog"]
    after = {p.name: (p.read_bytes(), p.stat().st_ino) for p in folder.glob("*.faiss")}
    assert after == before or {n for n in after if after[n] != before[n]} == {"head-02.faiss"}
    assert after["head-02.faiss"][0] == before["head-02.faiss"][0]  # rebuilt to the same bytes
    _put(cat, "/b.txt", 2, 1)
    assert VectorStore(tmp_path, DIM, HEADS, HD).refresh(cat) == (2, 0)
    reopened = VectorStore(tmp_path, DIM, HEADS, HD).load()
    assert reopened.checks == [] and reopened.saved_generation == cat.generation
    reopened.sync(cat)
    assert _same_as_catalog(reopened, cat)


def _clustered(cat: Catalog, n: int, seed: int, dim: int):
    """n vectors around 20 centres, stored as one document: a set IVF cells fit."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, dim))
    dense = (centers[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float16).astype(np.float32)
    text = "clustered " * n
    with cat.transaction():
        doc_id = cat.put_document(_doc(f"/c{seed}.txt", text), f"sha-c{seed}", os.stat(__file__), n)
        cat.put_chunks(doc_id, _chunks(text, n), dense, None)
    return dense


def test_exact_neighbours_over_batches_equal_one_exact_search_without_the_query_itself():
    from longdoc.storage.ivf import ExactNeighbours

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 8)).astype(np.float32)
    ids = np.arange(100, 600, dtype=np.int64)
    exact = ExactNeighbours(vectors[:7], ids[:7])
    for start in range(0, 500, 64):  # batches that do not divide the set
        exact.add(vectors[start:start + 64], ids[start:start + 64])
    scores = vectors[:7] @ vectors.T
    scores[np.arange(7), np.arange(7)] = -np.inf  # itself left out
    assert exact.ids.tolist() == ids[np.argsort(-scores, axis=1)[:, :10]].tolist()


def test_past_the_threshold_dense_search_goes_through_ivf_with_a_calibrated_nprobe(tmp_path):
    """The reader's store trains IVF cells in memory when no file is saved; the nprobe calibrated on the
    index's own vectors probes a fraction of the cells and finds what exact search finds; filters hold."""
    from longdoc.storage.ivf import is_ivf

    cat = Catalog.open(tmp_path, create=True)
    dense = _clustered(cat, 3000, 0, 32)  # 32 dimensions: 8 give the 8-bit codes too many near-ties
    flat, ivf = VectorStore(tmp_path, 32, 0, HD), VectorStore(tmp_path, 32, 0, HD, ivf_threshold=1000)
    flat.sync(cat)
    ivf.sync(cat)
    assert not is_ivf(flat.dense) and is_ivf(ivf.dense) and ivf.size == 3000
    assert 8 <= ivf.nprobe < ivf.dense.nlist
    queries = dense[:50] + 0.1
    _, exact = flat.search_dense(queries, 10)
    _, approx = ivf.search_dense(queries, 10)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]) >= 0.95
    allowed = cat.vector_ids()[::7]
    _, filtered = ivf.search_dense(queries[:5], 10, allowed)
    assert set(filtered.ravel()) - {-1} <= set(allowed.tolist())
    with cat.transaction():  # below the threshold again: flat, exact
        cat.remove_document("/c0.txt")
    _clustered(cat, 5, 1, 32)
    assert ivf.sync(cat) == (5, 0) and not is_ivf(ivf.dense) and ivf.size == 5


def test_the_ivf_index_is_saved_patched_and_trained_again_only_when_the_count_doubles(tmp_path, monkeypatch):
    """Past ivf_threshold the writer saves an IVF index, so a search process loads it instead of running
    k-means at every start; changes patch it, and its cells are trained (and nprobe calibrated) again only
    when the count halves or doubles. An index saved before the flat index left disk loses its dense.faiss."""
    import json

    from longdoc.storage import vectors as vectors_module
    from longdoc.storage.ivf import is_ivf

    def manifest():
        return json.loads((tmp_path / "vectors" / "manifest.json").read_text())["files"]

    def reader():
        return VectorStore(tmp_path, DIM, HEADS, HD, ivf_threshold=100, ivf_nprobe=10_000).load()

    def exact(store, cat, query):  # every cell probed: each stored vector finds itself first, as in exact search
        flat = VectorStore(tmp_path, DIM, 0, HD)
        flat.sync(cat)
        store.sync(cat)
        return store.search_dense(query, 1)[1].tolist() == flat.search_dense(query, 1)[1].tolist()

    cat = Catalog.open(tmp_path, create=True)
    dense_a, _ = _put(cat, "/a.txt", 300, 0)
    (tmp_path / "vectors").mkdir()
    (tmp_path / "vectors" / "dense.faiss").write_bytes(b"an older layout's flat file")
    writer = VectorStore(tmp_path, DIM, HEADS, HD, ivf_threshold=100)
    writer.refresh(cat)
    assert manifest()["ivf.faiss"]["trained_on"] == 300 and manifest()["ivf.faiss"]["count"] == 300
    assert manifest()["ivf.faiss"]["nprobe"] >= 1 and not (tmp_path / "vectors" / "dense.faiss").exists()

    real_build = vectors_module.build_ivf
    monkeypatch.setattr(vectors_module, "build_ivf", lambda *a: pytest.fail("a reader trained IVF cells"))
    loaded = reader()
    assert loaded.checks == [] and loaded.generation == cat.generation and is_ivf(loaded.dense)
    assert exact(loaded, cat, dense_a[:5])

    monkeypatch.setattr(vectors_module, "build_ivf", lambda *a: pytest.fail("patching trained the cells again"))
    dense_b, _ = _put(cat, "/b.txt", 200, 1)  # 500 < 2 x 300: patched
    with cat.transaction():
        cat.remove_document("/a.txt")  # 200 left, not below 300 / 2
    assert writer.refresh(cat) == (200, 300)
    assert manifest()["ivf.faiss"]["trained_on"] == 300 and manifest()["ivf.faiss"]["count"] == 200
    patched = reader()
    assert sorted(patched.ids().tolist()) == sorted(cat.vector_ids().tolist())
    assert exact(patched, cat, dense_b[:5])

    monkeypatch.setattr(vectors_module, "build_ivf", real_build)
    _put(cat, "/c.txt", 500, 2)  # 700 > 2 x 300: trained again
    writer.refresh(cat)
    assert manifest()["ivf.faiss"]["trained_on"] == 700

    # A damaged IVF file is reported and not used; search builds one in memory and answers the same.
    (tmp_path / "vectors" / "ivf.faiss").write_bytes(b"garbage")
    damaged = reader()
    assert [line.split(":")[0] for line in damaged.checks] == ["ivf.faiss"] and exact(damaged, cat, dense_b[:5])
    writer.refresh(cat)  # the writer (doctor --repair, the next index run) rewrites it
    assert reader().checks == []

    with cat.transaction():  # below the threshold: the file is dropped
        cat.remove_document("/b.txt")
        cat.remove_document("/c.txt")
    writer.refresh(cat)
    assert "ivf.faiss" not in manifest() and not (tmp_path / "vectors" / "ivf.faiss").exists()


def test_vector_files_an_older_longdoc_wrote_are_reported_then_replaced(tmp_path):
    """Older indexes kept a float32 flat copy (dense.faiss) and an IVF file with float32 codes searched
    at a fixed nprobe: status names both, and the next refresh drops the one and trains the other again."""
    import json

    cat = Catalog.open(tmp_path, create=True)
    _put(cat, "/a.txt", 300, 0)
    VectorStore(tmp_path, DIM, HEADS, HD, ivf_threshold=100).refresh(cat)
    path = tmp_path / "vectors" / "manifest.json"
    manifest = json.loads(path.read_text())
    (tmp_path / "vectors" / "dense.faiss").write_bytes(b"flat")
    manifest["files"]["dense.faiss"] = {"sha256": "0" * 64, "count": 300, "bytes": 4}
    del manifest["files"]["ivf.faiss"]["nprobe"]
    path.write_text(json.dumps(manifest))
    writer = VectorStore(tmp_path, DIM, HEADS, HD, ivf_threshold=100)
    generation, problems = writer.glance()
    assert generation == cat.generation and [p.split(":")[0] for p in problems] == ["dense.faiss", "ivf.faiss"]
    writer.refresh(cat)
    files = json.loads(path.read_text())["files"]
    assert "dense.faiss" not in files and "nprobe" in files["ivf.faiss"] and writer.glance() == (cat.generation, [])
    assert not (tmp_path / "vectors" / "dense.faiss").exists()


def test_a_version_1_catalog_drops_fts5_and_its_chunks_are_found_by_bm25(tmp_path):
    import sqlite3

    from longdoc.storage.migrations import MIGRATIONS
    from longdoc.storage.text_index import TextIndex

    conn = sqlite3.connect(tmp_path / "catalog.sqlite")
    conn.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    conn.execute("INSERT INTO documents(id, path, sha256, format, n_chunks, indexed_at) VALUES (1, '/a', '', 'txt', 1, '')")
    conn.execute("INSERT INTO chunks(id, doc_id, ordinal, text, char_start, char_end, token_count) "
                 "VALUES (7, 1, 0, 'the lighthouse keepers', 0, 22, 3)")
    conn.commit()
    conn.close()
    cat = Catalog.open(tmp_path)
    tables = {r[0] for r in cat.db.conn.execute("SELECT name FROM sqlite_master")}
    assert cat.schema_version == 2 and not {t for t in tables if t.startswith("chunks_fts")}
    assert [cid for cid, _ in TextIndex(tmp_path).sync(cat).search(["keeper"], 5)] == [7]  # stemmed, in memory


def test_a_reader_uses_a_saved_bm25_index_that_is_behind_until_the_writer_refreshes_it(tmp_path):
    """The service searches while its own indexing job commits: it keeps the saved index (no rebuild in
    memory at every commit), and finds the new chunks once the writer has refreshed it."""
    from longdoc.storage.text_index import TextIndex

    cat = Catalog.open(tmp_path, create=True)
    _put(cat, "/a.txt", 2, 0)
    TextIndex(tmp_path).refresh(cat)
    old = set(cat.chunk_ids().tolist())
    _put(cat, "/b.txt", 2, 1)
    reader = TextIndex(tmp_path).sync(cat)
    assert [line.split(":")[0] for line in reader.checks] == ["bm25"] and "behind" in reader.checks[0]
    assert {cid for cid, _ in reader.search(["document"], 10)} == old
    assert reader.sync(cat) is reader and {cid for cid, _ in reader.search(["document"], 10)} == old  # kept
    TextIndex(tmp_path).refresh(cat)  # the same catalog generation: the reader sees the new state
    assert reader.sync(cat).checks == [] and {cid for cid, _ in reader.search(["document"], 10)} == \
        set(cat.chunk_ids().tolist())


def test_head_files_and_queries_are_centred_by_the_manifests_head_means(tmp_path):
    """An index's head vectors are searched less each head's mean (head_means in the catalog's manifest),
    in the saved files and in memory alike; a manifest without them (an older index) centres nothing."""
    from longdoc.indexing.head_weights import head_means

    cat = Catalog.open(tmp_path, create=True)
    _, heads = _put(cat, "/a.txt", 6, 0)
    heads += 3.0  # a direction every stored vector shares, as real head vectors have
    with cat.transaction():
        cat.remove_document("/a.txt")
        doc_id = cat.put_document(_doc("/a.txt", "shared " * 40), "sha-2", os.stat(__file__), 6)
        cat.put_chunks(doc_id, _chunks("shared " * 40, 6), np.ones((6, DIM), np.float32), heads)
    ids = cat.vector_ids()
    heads = cat.vectors(ids, 0, HEADS, HD)[1]  # as the catalog keeps them (float16)
    means = head_means(heads)
    np.testing.assert_allclose(means, heads.mean(0) * 6 / 56, rtol=1e-5)  # shrunk by N / (N + 50)
    manifest = {"dim": DIM, "heads": HEADS, "head_dim": HD, "head_means": means.tolist()}
    VectorStore.for_manifest(tmp_path, manifest).refresh(cat)
    for store in (VectorStore.for_manifest(tmp_path, manifest).load(),  # the saved files
                  VectorStore(tmp_path / "mem", DIM, HEADS, HD, means=means)):  # built in memory by sync
        store.sync(cat)
        for h in range(HEADS):
            centred = heads[:, h] - means[h]
            expected = centred / np.linalg.norm(centred, axis=1, keepdims=True)
            got = np.stack([store.heads[h].reconstruct(int(i)) for i in ids])
            np.testing.assert_allclose(got, expected, atol=1e-6)
            scores, found = store.search_head(h, heads[2:3, h], 1)
            assert found[0, 0] == ids[2] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    old = VectorStore.for_manifest(tmp_path, {"dim": DIM, "heads": HEADS, "head_dim": HD})
    assert not old.means.any()
