"""Dense search: cosine similarity of the query embedding to chunk embeddings."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # FAISS loads only when dense search runs: a BM25 search never needs it
    from ..storage import VectorStore


def dense_search(store: VectorStore, query_vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
    scores, ids = store.search_dense(query_vector.reshape(1, -1), k, allowed)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
