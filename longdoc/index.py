"""The public handle on one index: status, documents, search, and incremental updates."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from .config import Settings, check_attention, load_settings
from .errors import IndexMismatchError, IndexNotFoundError, LongdocError
from .indexing.manifest import stored_head_pooling
from .paths import as_path
from .retrieval import Filters, Hit, Searcher
from .retrieval.windows import reading_windows
from . import storage  # storage.VectorStore is looked up when used: FAISS loads only then
from .storage import Catalog
from .storage.catalog import CATALOG_FILE, damaged
from .storage.text_index import TextIndex


class Index:
    def __init__(self, path: str | Path, embedder: str | None = None, settings: Settings | None = None):
        self.path = as_path(path, "index")
        self.catalog = Catalog.open(self.path)
        self.settings = settings or load_settings()
        self._embedder = None
        self._vectors: storage.VectorStore | None = None
        self._reader = None
        self.lock = threading.RLock()  # the service shares one Index across threads; held around a search
        if embedder is not None and embedder.lower() != self.manifest["embedder"].lower():
            raise IndexMismatchError(f"index {self.path} was built with embedder {self.manifest['embedder']!r}, "
                                     f"not {embedder!r}; its vectors cannot be searched with another embedder")
        self._text = TextIndex(self.path)
        self.searcher = Searcher(self.catalog, lambda: self.vectors, lambda: self.embedder, lambda: self.text_index,
                                 self.settings.search)

    @property
    def manifest(self) -> dict:
        manifest = self.catalog.get_meta("manifest")
        if manifest is None:
            raise IndexNotFoundError(f"index {self.path} is half-built: it has no manifest yet; run longdoc index again")
        return manifest

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- reading -------------------------------------------------------------------------------
    def documents(self) -> list[dict]:
        return self.catalog.documents()

    def chunks(self, doc_id: int) -> list[dict]:
        return self.catalog.chunks(doc_id=doc_id)

    def document_text(self, doc_id: int) -> str:
        return self.catalog.document_text(doc_id)

    def status(self) -> dict:
        files = [p for p in self.path.rglob("*") if p.is_file()]
        manifest = self.catalog.get_meta("manifest") or {}
        store = storage.VectorStore.for_manifest(self.path, manifest)
        if store is None:
            vector_files, in_sync = "none yet", False
        else:
            generation, problems = store.glance()
            in_sync = generation == self.catalog.generation and not problems
            vector_files = "; ".join(problems) or "all present at their recorded sizes (checksums: longdoc doctor)"
        return {
            "index": str(self.path),
            **self.catalog.counts(),
            "size_bytes": sum(p.stat().st_size for p in files),
            "embedder": manifest.get("embedder"),
            "embedder_fingerprint": manifest.get("fingerprint"),
            "dims": manifest.get("dim"),
            "heads": manifest.get("heads"),
            "head_pooling": stored_head_pooling(manifest),
            "head_centred": manifest.get("head_means") is not None,
            "chunk_tokens": manifest.get("chunk_tokens"),
            "chunk_overlap": manifest.get("chunk_overlap"),
            "schema_version": self.catalog.schema_version,
            "read_only": self.catalog.read_only,  # this user cannot write it: search and ask only
            "vectors_in_sync": in_sync,
            # sizes only: status stays cheap at any size; search and doctor check every sha256
            "vector_files": vector_files,
            "last_run": self.catalog.last_run(),
        }

    def check(self, repair: bool = False) -> dict:
        """The full check (`longdoc doctor`): SQLite's integrity check of the catalog, every FAISS file
        against its checksum, every KV entry against its checksum (damaged entries are deleted: they are
        computed again when needed). repair: rewrite vector files found damaged or behind from the
        catalog (a sound one), then check them again. `problems` lists what is still wrong, with how to
        repair it."""
        from .storage.kvstore import KVStore

        catalog = self.catalog.integrity()
        manifest = self.catalog.get_meta("manifest") or {}
        vectors = self._saved_vectors(manifest)
        entries, dropped = KVStore(self.path / "kv", None).verify()

        def stale(store: storage.VectorStore | None) -> bool:
            return store is not None and bool(store.checks or store.saved_generation != self.catalog.generation)

        report = {"index": str(self.path), "catalog": "ok" if not catalog else catalog}
        text = TextIndex(self.path)
        if repair and not catalog and (stale(vectors) or not text.in_step(self.catalog)):
            from .indexing.pipeline import repair_vectors

            report["repaired_vector_files"] = repair_vectors(self.path) or "brought up to the catalog"
            vectors = self._saved_vectors(manifest)
        problems = []
        if catalog:
            problems.append(str(damaged(self.catalog.index_dir / CATALOG_FILE, "; ".join(catalog[:3]))))
        if stale(vectors):
            found = "; ".join(vectors.checks) or "behind the catalog"
            problems.append(f"vector files: {found}. Search repairs them in memory; longdoc doctor --repair "
                            f"(or the next longdoc index) rewrites them from the catalog")
        if not text.in_step(self.catalog):
            problems.append(f"BM25 index ({text.dir}): missing or behind the catalog. Search builds one in memory; "
                            f"longdoc doctor --repair (or the next longdoc index) saves it from the catalog")
        return {**report, "vector_files": None if vectors is None else (vectors.checks or "ok"),
                "kv_entries_checked": entries, "kv_entries_damaged_and_deleted": dropped, "problems": problems}

    def _saved_vectors(self, manifest: dict) -> storage.VectorStore | None:
        """The FAISS files as saved (checked, not synced), or None before the first vectors."""
        store = storage.VectorStore.for_manifest(self.path, manifest)
        return store.load() if store is not None else None

    # --- search --------------------------------------------------------------------------------
    @property
    def embedder(self):
        with self.lock:
            if self._embedder is None:
                from .indexing.embedder import MultiHeadEmbedder

                manifest = self.manifest
                embedder = MultiHeadEmbedder(manifest["embedder"], pooling=stored_head_pooling(manifest))
                if embedder.fingerprint != manifest["fingerprint"]:
                    raise IndexMismatchError(f"index {self.path} was built with embedder weights "
                                             f"{manifest['fingerprint']}, but {manifest['embedder']!r} here "
                                             f"computes {embedder.fingerprint}")
                self._embedder = embedder
            return self._embedder

    @property
    def vectors(self) -> storage.VectorStore:
        """The FAISS indexes, brought up to the catalog's committed state in memory (no writes)."""
        with self.lock:
            m = self.manifest
            # A new index's head means are fixed by its first commit: a store made before it is made again.
            if self._vectors is None or (m.get("head_means") is not None and not self._vectors.means.any()):
                search = self.settings.search
                self._vectors = storage.VectorStore.for_manifest(self.path, m, ivf_threshold=search.ivf_threshold,
                                                         ivf_nprobe=search.ivf_nprobe).load()
            self._vectors.sync(self.catalog)
            return self._vectors

    @property
    def text_index(self) -> TextIndex:
        """The BM25 index, as saved when it matches the catalog, else built in memory from it."""
        with self.lock:
            return self._text.sync(self.catalog)

    def search(self, query: str, k: int = 10, mode: str | None = None, filters: Filters | dict | None = None,
               per: str = "chunk", context: int = 0, rerank: str | None = None) -> list[Hit]:
        """Search the index. mode: hybrid (default), dense, multihead or bm25. filters: a Filters or a
        dict of its fields. per: "chunk" or "document". context: neighbouring chunks merged in.
        rerank: a cross-encoder model name (local directory or hub id)."""
        if isinstance(filters, dict):
            filters = Filters.from_dict(filters)
        elif filters is not None and not isinstance(filters, Filters):
            raise LongdocError(f"filters must be a Filters or a dict of its fields, got {filters!r:.80}")
        return self.searcher.search(query, k=k, mode=mode, filters=filters, per=per, context=context, rerank=rerank)

    # --- answering ------------------------------------------------------------------------------
    @property
    def reader(self):
        """The reader LLM (loaded on first use), with this index's KV store under <index>/kv."""
        with self.lock:
            if self._reader is None:
                from .reader import Reader

                self._reader = Reader(self.settings.reader, self.path / "kv", self.settings.answer,
                                      self.settings.device)
            return self._reader

    def ask(self, question: str, k: int | None = None, attention: str | None = None, recompute_top: int | None = None,
            mode: str | None = None, filters: Filters | dict | None = None, max_new_tokens: int | None = None,
            on_token: Callable[[str], None] | None = None):
        """Answer a question from the k best passages, with citations. attention: "auto" (the default:
        "block", which reuses each passage's cached KV, while the passages fit the exact budget, a sparse
        backend beyond), "block", "full" (prefill everything), "landmark" or "retrieval". on_token receives the answer
        as it is generated. Returns an Answer; it abstains when nothing retrieved is relevant enough."""
        t0 = time.perf_counter()
        hits = self.search(question, k=self.settings.answer.k if k is None else k, mode=mode, filters=filters)
        timings = {"retrieve_s": time.perf_counter() - t0}
        return self.answer_hits(question, hits, attention, recompute_top, max_new_tokens, on_token, timings)

    def answer_hits(self, question: str, hits: list[Hit], attention: str | None = None, recompute_top: int | None = None,
                    max_new_tokens: int | None = None, on_token: Callable[[str], None] | None = None,
                    timings: dict | None = None, reencode_first: int | None = None, reencode_focus: int | None = None):
        """Answer from passages already retrieved (ask = search + this); abstains below the relevance bar."""
        attention = check_attention(attention or self.settings.answer.attention)
        bar = self.settings.answer.abstain_below
        if not hits or (bar > 0 and self.relevance(question, hits) < bar):
            from .reader import Reader

            return Reader.abstain(question, attention, timings or {})
        return self.reader.answer(question, self.reading_passages(hits), attention, recompute_top, max_new_tokens,
                                  on_token, timings, reencode_first=reencode_first, reencode_focus=reencode_focus)

    def reading_passages(self, hits: list[Hit]) -> list[Hit]:
        """What the reader reads for these hits: each widened to its sentence-aligned window (window_words)."""
        words = self.settings.answer.window_words
        return reading_windows(self.catalog, hits, words) if words else hits

    def relevance(self, question: str, hits: list[Hit]) -> float:
        """The best dense cosine between the question and the retrieved passages: the abstain signal."""
        known = [h.scores["dense"] for h in hits if "dense" in h.scores]
        if len(known) == len(hits):
            return max(known)
        import numpy as np

        m = self.manifest
        query = self.embedder.encode([question])[0][0]
        dense, _ = self.catalog.vectors(np.array([h.chunk_id for h in hits]), m["dim"], 0, 0)  # dense only
        return float((dense @ query).max())

    def fill_kv(self, progress: Callable[[int], None] | None = None) -> int:
        """Compute the reader's KV for every chunk the KV store lacks; returns how many were computed."""
        ids = [int(i) for i in self.catalog.vector_ids()]
        computed = 0
        for start in range(0, len(ids), 256):
            hits = self.searcher.hits_for([(cid, 0.0) for cid in ids[start:start + 256]])
            computed += self.reader.fill_kv(self.reading_passages(hits), progress)
        return computed

    def kv_store(self):
        """This index's KV store, for stats and clearing, without loading the reader."""
        from .storage.kvstore import KVStore

        a = self.settings.answer
        return KVStore(self.path / "kv", None, a.kv_dtype, a.kv_max_bytes)

    # --- writing ----------------------------------------------------------------------------------
    def add(self, paths: list[str | Path], prune: bool = False, progress: bool = False, settings: Settings | None = None):
        from .indexing.pipeline import index_paths

        return index_paths(self.path, paths, settings, prune=prune, progress=progress, embedder=self._embedder)

    def remove(self, paths: list[str] | str) -> list[str]:
        """Remove documents by path (one path, or a list); returns the paths removed."""
        from .indexing.pipeline import remove_documents

        return remove_documents(self.path, paths)


def open_index(path: str | Path, embedder: str | None = None, settings: Settings | None = None) -> Index:
    """Open an index for search. Passing `embedder` checks the index was built with it."""
    return Index(path, embedder=embedder, settings=settings)
