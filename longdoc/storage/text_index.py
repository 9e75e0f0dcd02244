"""BM25 over the chunks' text, in tantivy, kept in step with the catalog as the FAISS files are.

bench/bm25_engines.py chose it: at a million chunks its p95 is 3 ms against SQLite FTS5's 255 ms, a 1%
change takes 0.11 s, and it stores 92 bytes per chunk. The catalog is the source of truth and `bm25/`
is derived from it. The writer syncs it by set difference of chunk ids (read from tantivy's own id
column) and then records, in state.json, the catalog generation it matches. Before a commit it marks the
state pending: a writer killed between tantivy's (atomic) commit and the state leaves it pending, and
the next sync builds the index again from the catalog, as it does when the catalog went back behind the
state. So a recovered index scores as a clean build does (tantivy, like Lucene, counts deleted documents
in its BM25 statistics until segments merge: after ordinary deletes, scores drift slightly from a fresh
build's). A reader uses the saved index even when it is behind the catalog (sync says what that
means); one missing (an index made before this), not whole or ahead of the catalog, it builds in memory
from the catalog, and the next writer saves one."""
from __future__ import annotations

import functools
import json
import math
import shutil
from pathlib import Path

import numpy as np

from .catalog import Catalog
from .files import atomic_write, writing

TEXT_DIR = "bm25"
_STATE = "state.json"
_HEAP = 128 * 2**20  # tantivy's indexing buffer


BM25_K1 = 1.2  # tantivy's


def _schema():
    import tantivy

    builder = tantivy.SchemaBuilder()
    # en_stem: lower-cased words, Porter-stemmed, as FTS5's porter tokenizer gave before.
    builder.add_text_field("text", stored=False, tokenizer_name="en_stem")
    builder.add_integer_field("id", stored=False, indexed=True, fast=True)
    return builder.build()


@functools.cache
def _analyzer():
    """tantivy's en_stem analyzer, to find the index terms a query word becomes."""
    import tantivy

    return (tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).filter(tantivy.Filter.remove_long(40))
            .filter(tantivy.Filter.lowercase()).filter(tantivy.Filter.stemmer("english")).build())


class TextIndex:
    def __init__(self, index_dir: Path):
        self.dir = Path(index_dir) / TEXT_DIR
        self.generation = -1  # the catalog generation the open index matches
        self.checks: list[str] = []  # what opening found wrong
        self._index = self._searcher = None
        self._saved_at: int | None = None  # the saved index's generation, when it was opened behind

    def state(self) -> dict:
        try:
            state = json.loads((self.dir / _STATE).read_text())
            return state if isinstance(state, dict) else {}
        except (OSError, ValueError):
            return {}

    def in_step(self, catalog: Catalog) -> bool:
        state = self.state()
        return state.get("generation") == catalog.generation and not state.get("pending", True)

    # --- reading --------------------------------------------------------------------------------
    def sync(self, catalog: Catalog) -> "TextIndex":
        """Open the saved index, else build one in memory from the catalog. A saved index behind the
        catalog (a writer between its commit and its refresh: the service while it indexes) is used as
        it is: chunks committed since are not found by BM25 until the refresh, and removed ones drop out
        when hits are read from the catalog. One that is not whole (a commit cut short) or ahead of the
        catalog (which lost commits) is not used."""
        state = self.state()
        if self._index is not None and self.generation == catalog.generation and \
                (self._saved_at is None or state.get("generation") == self._saved_at):
            return self  # in step; or behind, and the writer has not refreshed it since
        import tantivy

        self.checks, self._index, self._saved_at = [], None, None
        if state and not state.get("pending", True) and state.get("generation", 0) <= catalog.generation:
            try:
                self._index = tantivy.Index.open(str(self.dir))
                if state["generation"] < catalog.generation:
                    self._saved_at = state["generation"]  # looked at again when the writer refreshes it
                    self.checks.append(f"{TEXT_DIR}: behind the catalog; chunks committed since are found "
                                       f"by BM25 after the next index run")
            except (ValueError, OSError) as e:
                self.checks.append(f"{TEXT_DIR}: unreadable ({str(e).splitlines()[0][:80]}); built in memory")
        elif self.dir.exists():
            self.checks.append(f"{TEXT_DIR}: not whole or ahead of the catalog; built in memory")
        if self._index is None:
            self._index = tantivy.Index(_schema())
            writer = self._index.writer(heap_size=_HEAP, num_threads=1)
            _add(writer, catalog, None)
            writer.commit()
            writer.wait_merging_threads()
        self._index.reload()
        self._searcher = self._index.searcher()
        self.generation = catalog.generation
        return self

    def term_weight(self, terms: list[str]) -> float:
        """The BM25 score a chunk earns, at most, for one of these terms, averaged over them: (k1 + 1) x
        the mean idf of their tokens, with tantivy's k1 and idf. Hybrid search uses it to tell a chunk that
        matches the query in its words from one that shares a common word or two with it."""
        tokens = [t for term in terms for t in _analyzer().analyze(term)]
        if not tokens:
            return 0.0
        n = self._searcher.num_docs
        idf = [math.log(1 + (n - df + 0.5) / (df + 0.5)) for df in (self._searcher.doc_freq("text", t) for t in tokens)]
        return (BM25_K1 + 1) * sum(idf) / len(idf)

    def search(self, terms: list[str], k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The top k chunk ids by BM25 for any of the terms, (id, score), best first; `allowed` restricts
        them to those chunk ids (filters)."""
        import tantivy

        if not terms or (allowed is not None and len(allowed) == 0):
            return []
        query, _errors = self._index.parse_query_lenient(" ".join(terms), ["text"])
        if allowed is not None:
            only = tantivy.Query.term_set_query(self._index.schema, "id", [int(i) for i in allowed])
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, only)])
        hits = self._searcher.search(query, k, count=False).hits
        ids = self._searcher.fast_field_values("id", [address for _, address in hits])
        return [(int(i), float(score)) for (score, _), i in zip(hits, ids)]

    # --- writing (under the index's write lock) ----------------------------------------------------
    def refresh(self, catalog: Catalog) -> None:
        """Bring the saved index to the catalog's committed state."""
        import tantivy

        if self.in_step(catalog):
            return
        state = self.state()
        index = None
        # Patched only from a state that was committed whole and is not ahead of the catalog (a catalog
        # that lost its last commits, say with its WAL, gets the index rebuilt like a crash does).
        if state and not state.get("pending", True) and state.get("generation", 0) <= catalog.generation:
            try:
                index = tantivy.Index.open(str(self.dir))
            except (ValueError, OSError):
                index = None
        with writing(self.dir):
            if index is None:  # first build, a commit cut short, or damage: everything from the catalog
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir.mkdir(parents=True)
                index = tantivy.Index(_schema(), path=str(self.dir))
            atomic_write(self.dir / _STATE, json.dumps({**state, "pending": True}).encode())
            writer = index.writer(heap_size=_HEAP, num_threads=1)
            index.reload()
            searcher = index.searcher()
            hits = searcher.search(tantivy.Query.all_query(), max(1, searcher.num_docs), count=False).hits
            have = np.array(searcher.fast_field_values("id", [a for _, a in hits]), np.int64)
            want = catalog.chunk_ids()
            missing = np.setdiff1d(want, have, assume_unique=True)
            for cid in np.setdiff1d(have, want, assume_unique=True):
                writer.delete_documents_by_term("id", int(cid))
            _add(writer, catalog, missing)
            writer.commit()
            writer.wait_merging_threads()
            atomic_write(self.dir / _STATE, json.dumps({"generation": catalog.generation, "pending": False}).encode())


def _add(writer, catalog: Catalog, ids: np.ndarray | None) -> None:
    """Add these chunks (None: every one), in id order."""
    import tantivy

    for cid, text in catalog.chunk_texts(ids):
        writer.add_document(tantivy.Document(id=cid, text=text))
