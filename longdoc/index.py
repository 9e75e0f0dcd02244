"""The public handle on one index: status, documents, search, and incremental updates."""
from __future__ import annotations

import json
from pathlib import Path

from .config import Settings
from .errors import IndexMismatchError, IndexNotFoundError, LongdocError
from .retrieval import Hit, bm25_search, dense_search
from .retrieval.hit import hits_from_rows
from .storage import Catalog, VectorStore

MODES = ("dense", "bm25")
MAX_QUERY_CHARS = 4096


class Index:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.catalog = Catalog.open(self.path)
        self._embedder = None
        self._vectors: VectorStore | None = None

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
        vectors = self.path / "vectors" / "manifest.json"
        vector_gen = json.loads(vectors.read_text())["generation"] if vectors.exists() else None
        return {
            "index": str(self.path),
            **self.catalog.counts(),
            "size_bytes": sum(p.stat().st_size for p in files),
            "embedder": manifest.get("embedder"),
            "embedder_fingerprint": manifest.get("fingerprint"),
            "dims": manifest.get("dim"),
            "heads": manifest.get("heads"),
            "chunk_tokens": manifest.get("chunk_tokens"),
            "chunk_overlap": manifest.get("chunk_overlap"),
            "schema_version": self.catalog.schema_version,
            "vectors_in_sync": vector_gen == self.catalog.generation,
            "last_run": self.catalog.last_run(),
        }

    # --- search --------------------------------------------------------------------------------
    @property
    def embedder(self):
        if self._embedder is None:
            from .indexing.embedder import MultiHeadEmbedder

            manifest = self.manifest
            embedder = MultiHeadEmbedder(manifest["embedder"])
            if embedder.fingerprint != manifest["fingerprint"]:
                raise IndexMismatchError(f"index {self.path} was built with embedder weights {manifest['fingerprint']}, "
                                         f"but {manifest['embedder']!r} here computes {embedder.fingerprint}")
            self._embedder = embedder
        return self._embedder

    @property
    def vectors(self) -> VectorStore:
        """The FAISS indexes, brought up to the catalog's committed state in memory (no writes)."""
        m = self.manifest
        if self._vectors is None:
            self._vectors = VectorStore(self.path, m["dim"], m["heads"], m["head_dim"]).load()
        self._vectors.sync(self.catalog)
        return self._vectors

    def search(self, query: str, k: int = 10, mode: str = "dense") -> list[Hit]:
        if not query or not query.strip():
            raise LongdocError("empty query")
        if len(query) > MAX_QUERY_CHARS:
            raise LongdocError(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
        if mode not in MODES:
            raise LongdocError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
        if mode == "dense":
            dense, _ = self.embedder.encode([query])
            scored = dense_search(self.vectors, dense[0], k)
        else:
            scored = bm25_search(self.catalog, query, k)
        rows = self.catalog.chunks([cid for cid, _ in scored])
        return hits_from_rows(rows, scored, mode)

    # --- writing ----------------------------------------------------------------------------------
    def add(self, paths: list[str | Path], prune: bool = False, progress: bool = False, settings: Settings | None = None):
        from .indexing.pipeline import index_paths

        return index_paths(self.path, paths, settings, prune=prune, progress=progress, embedder=self._embedder)

    def remove(self, paths: list[str]) -> list[str]:
        from .indexing.pipeline import remove_documents

        return remove_documents(self.path, paths)


def open_index(path: str | Path) -> Index:
    return Index(path)
