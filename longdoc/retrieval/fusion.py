"""Reciprocal-rank fusion of several ranked lists."""
from __future__ import annotations

from collections import defaultdict


def reciprocal_rank_fusion(lists: dict[str, list[tuple[int, float]]], weights: dict[str, float],
                           rrf_k: int = 60, floors: dict[str, float] | None = None
                           ) -> tuple[list[tuple[int, float]], dict[int, dict[str, int]]]:
    """(fused [(id, score)] best first, {id: {mode: 1-based rank}}). score = sum_m w_m / (rrf_k + rank_m).
    floors: per mode, the score under which that mode's hits are left out."""
    scores: dict[int, float] = defaultdict(float)
    ranks: dict[int, dict[str, int]] = defaultdict(dict)
    for mode, ranked in lists.items():
        floor = (floors or {}).get(mode)
        if floor:
            ranked = [(cid, s) for cid, s in ranked if s >= floor]
        for rank, (cid, _) in enumerate(ranked, 1):
            scores[cid] += weights.get(mode, 1.0) / (rrf_k + rank)
            ranks[cid][mode] = rank
    fused = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return fused, dict(ranks)
