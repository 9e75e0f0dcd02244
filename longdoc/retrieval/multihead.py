"""MRAG multi-head retrieval: every head space votes for its top-n chunks.

A chunk's score is sum_h w_h * 2^(-rank_h), rank_h counted from 0 in head h's top-n list, and w_h
the head weight stored at indexing time (mean norm x mean pairwise cosine distance).
"""
from __future__ import annotations

from collections import defaultdict

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # FAISS loads only when dense search runs: a BM25 search never needs it
    from ..storage import VectorStore


def multihead_search(store: VectorStore, head_vectors: np.ndarray, weights: np.ndarray, n: int, k: int,
                     allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
    """head_vectors: (H, d) for one query. Returns the k best (chunk id, vote) pairs."""
    votes: dict[int, float] = defaultdict(float)
    for h in range(store.n_heads):
        _, ids = store.search_head(h, head_vectors[h:h + 1], n, allowed)
        for rank, cid in enumerate(ids[0]):
            if cid >= 0:
                votes[int(cid)] += float(weights[h]) * 2.0 ** (-rank)
    return sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
