"""Optional reranking with a cross-encoder the user names (none ships in any package here).

The rerankers we could build from our own models (token max-sim, the reader's question likelihood)
were measured in bench/rerank.py and are left out unless they help (see the README).
"""
from __future__ import annotations

from functools import lru_cache

from ..errors import ModelError
from .hit import Hit


@lru_cache(maxsize=2)
def load_cross_encoder(name: str, device: str = "cpu"):
    from sentence_transformers import CrossEncoder

    try:
        return CrossEncoder(name, device=device)
    except OSError as e:
        raise ModelError(f"cannot load cross-encoder {name!r}: {e}. Give a local directory, or a hub id "
                         "with network access (HF_HUB_OFFLINE=1 forbids downloads).") from None


def rerank(model_name: str, query: str, hits: list[Hit], k: int) -> list[Hit]:
    """Order hits by the cross-encoder's (query, passage) score; keeps each hit's earlier ranks."""
    if not hits:
        return hits
    model = load_cross_encoder(model_name)
    scores = model.predict([(query, h.text) for h in hits], convert_to_numpy=True)
    order = sorted(range(len(hits)), key=lambda i: -float(scores[i]))
    out = []
    for rank, i in enumerate(order[:k], 1):
        hit = hits[i]
        hit.score = float(scores[i])
        hit.ranks = {**hit.ranks, "rerank": rank}
        out.append(hit)
    return out
