"""The Searcher: one query through dense, multi-head, BM25 or hybrid retrieval, with filters,
per-document aggregation and neighbouring-chunk context."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from ..config import SearchSettings
from ..errors import LongdocError
from ..storage import Catalog
from .aspects import merge_by_best_rank, query_parts
from .bm25 import bm25_search, query_terms
from .dense import dense_search
from .filters import Filters
from .fusion import reciprocal_rank_fusion
from .hit import Hit
from .multihead import multihead_search

if TYPE_CHECKING:  # FAISS loads only when dense search runs: a BM25 search never needs it
    from ..storage import VectorStore
    from ..storage.text_index import TextIndex

MODES = ("hybrid", "dense", "multihead", "bm25")
GROUPINGS = ("chunk", "document")
MAX_QUERY_CHARS = 4096


def validate(query: str, k: int, mode: str, per: str, context: int) -> None:
    if not isinstance(query, str):
        raise LongdocError(f"the query must be text, got {query!r:.80}")
    if not query.strip():
        raise LongdocError("empty query")
    if len(query) > MAX_QUERY_CHARS:
        raise LongdocError(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    if mode not in MODES:
        raise LongdocError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
    if per not in GROUPINGS:
        raise LongdocError(f"unknown grouping {per!r}; choose chunk or document")
    if not _is_int(k) or not _is_int(context):
        raise LongdocError(f"k and context must be whole numbers (got k={k!r}, context={context!r})")
    if k < 1 or context < 0:
        raise LongdocError(f"k must be at least 1 and context at least 0 (got k={k}, context={context})")


class Searcher:
    def __init__(self, catalog: Catalog, vectors: Callable[[], VectorStore], embedder: Callable[[], object],
                 text: Callable[[], TextIndex], settings: SearchSettings):
        self.catalog = catalog
        # Loaded on first use: BM25 needs neither the vectors nor the embedder; dense needs no text index.
        self._vectors, self._embedder, self._text = vectors, embedder, text
        self.settings = settings

    def head_weights(self, n_heads: int) -> np.ndarray:
        stored = self.catalog.get_meta("head_weights")
        return np.asarray(stored, np.float32) if stored and len(stored) == n_heads else np.ones(n_heads, np.float32)

    def fusion_weights(self, query: str | None = None) -> dict[str, float]:
        """Hybrid's weight per retriever. A query searched by its sentences (retrieval/aspects.py) gives
        multi-head votes weight_multihead_aspects where the index stores head vectors: they earn weight on
        multi-aspect queries, not on one-need questions (config.py)."""
        multihead = self.settings.weight_multihead
        if query is not None and self.settings.weight_multihead_aspects > 0 \
                and len(query_parts(query, self.settings.aspect_sentences)) > 1 and self._vectors().n_heads:
            multihead = self.settings.weight_multihead_aspects
        return {"dense": self.settings.weight_dense, "multihead": multihead, "bm25": self.settings.weight_bm25}

    def ranked_lists(self, query: str, retrievers: set[str], depth: int, filters: Filters | None) -> dict[str, list[tuple[int, float]]]:
        """Each retriever's own ranking, best first, `depth` deep. A query of several sentences
        (settings.aspect_sentences) is searched whole and one sentence at a time by every retriever, each
        one's lists merged by best rank (retrieval/aspects.py)."""
        allowed = filters.chunk_ids(self.catalog) if filters else None
        if allowed is not None and len(allowed) == 0:
            return {m: [] for m in retrievers}
        parts = query_parts(query, self.settings.aspect_sentences)
        lists = {}
        if retrievers & {"dense", "multihead"}:
            store = self._vectors()
            if "multihead" in retrievers and store.n_heads == 0:
                raise LongdocError(f"index {self.catalog.index_dir} stores no head vectors, which multihead "
                                   f"search (and hybrid's weight_multihead) needs; build an index with "
                                   f"head_vectors = true")
            dense_q, head_q = self.encode(parts)
            if "dense" in retrievers:
                lists["dense"] = merge_by_best_rank([dense_search(store, v, depth, allowed) for v in dense_q])[:depth]
            if "multihead" in retrievers:
                weights = self.head_weights(store.n_heads)
                lists["multihead"] = merge_by_best_rank([multihead_search(store, h, weights, depth, depth, allowed)
                                                         for h in head_q])[:depth]
        if "bm25" in retrievers:
            text = self._text()  # once: each call checks the saved index's state file against the catalog
            lists["bm25"] = merge_by_best_rank([bm25_search(text, p, depth, allowed) for p in parts])[:depth]
        return lists

    def encode(self, parts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(dense, heads) of the query's parts. The whole query (first) is encoded apart from its
        sentences: in one batch every sentence would be padded to the whole query's length."""
        encode = self._embedder().encode
        if len(parts) == 1:
            return encode(parts)
        (dense_whole, heads_whole), (dense, heads) = encode(parts[:1]), encode(parts[1:])
        return np.concatenate([dense_whole, dense]), np.concatenate([heads_whole, heads])

    def search(self, query: str, k: int = 10, mode: str | None = None, filters: Filters | None = None,
               per: str = "chunk", context: int = 0, rerank: str | None = None) -> list[Hit]:
        """`rerank`: a cross-encoder name; it reorders the top max(3k, 20) candidates."""
        mode = mode or self.settings.mode
        validate(query, k, mode, per, context)
        pool = max(3 * k, 20) if rerank else k
        # hybrid needs the lists of the retrievers it weights; the weights are asked for in hybrid only, as
        # they may load the vector store (a BM25 search never does)
        weights = self.fusion_weights(query) if mode == "hybrid" else None
        retrievers = {m for m, w in weights.items() if w > 0} if weights else {mode}
        lists = self.ranked_lists(query, retrievers, self.depth(pool, per), filters)
        floor = self.bm25_floor(query) if mode == "hybrid" and "bm25" in lists else 0.0
        hits = self.combine(lists, mode, pool, per, floor, weights)
        if rerank:
            from .rerank import rerank as cross_encode

            hits = cross_encode(rerank, query, hits, k)
        return self.with_context(hits, context) if context else hits

    def depth(self, k: int, per: str) -> int:
        """Candidates per retriever: more when grouping, since one document may hold many of them."""
        return max(50, k * self.settings.depth_factor * (4 if per == "document" else 1))

    def bm25_floor(self, query: str) -> float:
        """The BM25 score below which a chunk does not join hybrid fusion: bm25_min_terms query terms'
        worth (TextIndex.term_weight)."""
        return self.settings.bm25_min_terms * self._text().term_weight(query_terms(query))

    def combine(self, lists: dict[str, list[tuple[int, float]]], mode: str, k: int, per: str = "chunk",
                bm25_floor: float = 0.0, weights: dict[str, float] | None = None) -> list[Hit]:
        """The final ranking for `mode` from the retrievers' lists: fused for hybrid with `weights` (None:
        fusion_weights()), BM25 hits under bm25_floor left out; else that list."""
        if mode == "hybrid":
            weights = weights or self.fusion_weights()
            fused = {m: lists[m] for m, w in weights.items() if w > 0 and m in lists}
            scored, ranks = reciprocal_rank_fusion(fused, weights, self.settings.rrf_k, {"bm25": bm25_floor})
        else:
            scored = lists[mode]
            ranks = {cid: {mode: r} for r, (cid, _) in enumerate(scored, 1)}
        raw: dict[int, dict[str, float]] = {}
        for m, ranked in lists.items():
            for cid, s in ranked:
                raw.setdefault(cid, {})[m] = float(s)
        if per == "document":  # the best chunk of each document, found without reading chunk text
            doc_of = self.catalog.doc_ids_of([cid for cid, _ in scored])
            best: dict[int, tuple[int, float]] = {}
            for cid, score in scored:
                if cid in doc_of and doc_of[cid] not in best:
                    best[doc_of[cid]] = (cid, score)
            scored = list(best.values())
        return self.hits_for(scored[:k], ranks, raw)

    def hits_for(self, scored: list[tuple[int, float]], ranks: dict | None = None, raw: dict | None = None) -> list[Hit]:
        """Hits for (chunk id, score) pairs, in that order; chunks deleted since the last sync are dropped."""
        ranks, raw = ranks or {}, raw or {}
        rows = {r["id"]: r for r in self.catalog.chunks([cid for cid, _ in scored])}
        return [Hit(cid, r["doc_id"], r["path"], r["title"], r["section"], r["char_start"], r["char_end"],
                    r["page_start"], r["page_end"], r["text"], float(score), ranks.get(cid, {}), r["ordinal"],
                    raw.get(cid, {}))
                for cid, score in scored if (r := rows.get(cid)) is not None]

    def with_context(self, hits: list[Hit], n: int) -> list[Hit]:
        """Widen each hit to its n neighbouring chunks on each side. A passage that overlaps better
        hits' passages in the same document is merged into the best of them; kept passages stay disjoint."""
        out: list[Hit] = []
        texts: dict[int, str] = {}  # each document's text read once, however many hits it has
        for hit in hits:
            start, end, page, page_end = self.catalog.db.conn.execute(
                "SELECT MIN(char_start), MAX(char_end), MIN(page_start), MAX(page_end) FROM chunks "
                "WHERE doc_id = ? AND ordinal BETWEEN ? AND ?", (hit.doc_id, hit.ordinal - n, hit.ordinal + n)).fetchone()
            overlapping = [h for h in out if h.doc_id == hit.doc_id and h.char_start < end and start < h.char_end]
            target = overlapping[0] if overlapping else hit
            for h in overlapping:
                start, end = min(start, h.char_start), max(end, h.char_end)
                if h.page is not None:
                    page, page_end = min(page, h.page), max(page_end, h.page_end)
            for h in overlapping[1:]:
                out.remove(h)
            target.char_start, target.char_end, target.page, target.page_end = start, end, page, page_end
            if hit.doc_id not in texts:
                texts[hit.doc_id] = self.catalog.document_text(hit.doc_id)
            target.text = texts[hit.doc_id][start:end]
            if not overlapping:
                out.append(hit)
        return out


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
