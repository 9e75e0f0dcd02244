"""A query that names several topics, searched one sentence at a time.

Embedded whole, a query of many sentences (a pasted passage, a story touching several subjects, a list of
needs) becomes one averaged vector that sits near none of its topics, and past the embedder's window its
tail is cut off. Searched sentence by sentence, each topic finds its own chunks; the sentences' lists are
merged by best rank, so every topic places its first hit before any places its second. BM25 is split
the same way: a long query's common words otherwise outweigh each topic's own. On MRAG's multi-aspect
Wikipedia queries this lifts dense retrieval far more than per-head votes do (bench/mrag.py), and
hybrid with it (bench/fusion_weights.py). A question of one or two sentences is one need and is
searched whole.

The whole query is searched as well, as one more part: a question that opens with sentences of context
("I memoise a function in my web app. I never set its arguments. What maxsize does lru_cache use?") is one
need, and its sentences alone put the context's best chunks beside the answer's. With the whole query's
list in the merge, such questions (python-docs-qa's, each given two sentences of context) rank as well as
searched whole, while MRAG's multi-aspect queries keep nearly all of the sentences' gain
(bench/long_queries.py).
"""
from __future__ import annotations

from ..indexing.chunking import sentence_spans


def query_parts(query: str, min_sentences: int) -> list[str]:
    """[query] followed by its sentences when it holds at least `min_sentences` of them (0: never split),
    else [query]."""
    if min_sentences <= 0:
        return [query]
    spans = sentence_spans(query, 0, len(query))
    if len(spans) < max(min_sentences, 2):
        return [query]
    return [query] + [query[start:end] for start, end in spans]


def merge_by_best_rank(lists: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """One ranking from several: an id ranks by the best (lowest) rank any list gave it, then by its score
    there, then by id. Each id keeps the score of its best placing. One list comes back unchanged."""
    if len(lists) == 1:  # every query of one or two sentences: nothing to merge
        return list(lists[0])
    best: dict[int, tuple[int, float]] = {}
    for ranked in lists:
        for rank, (cid, score) in enumerate(ranked):
            if cid not in best or (rank, -score) < (best[cid][0], -best[cid][1]):
                best[cid] = (rank, score)
    order = sorted(best.items(), key=lambda kv: (kv[1][0], -kv[1][1], kv[0]))
    return [(cid, score) for cid, (_, score) in order]
