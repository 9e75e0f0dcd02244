"""Retrieval and QA metrics. Rankings are lists of ids, best first; qrels map id -> graded relevance."""
from __future__ import annotations

import math
import re
import string
from typing import Iterable, Mapping, Sequence


def recall_at_k(ranking: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Share of the relevant ids found in the top k (1.0/0.0 when there is one relevant id)."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    return len(relevant & set(ranking[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], relevant: Iterable[str], k: int = 10) -> float:
    relevant = set(relevant)
    for rank, doc in enumerate(ranking[:k], 1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranking: Sequence[str], qrels: Mapping[str, float], k: int = 10) -> float:
    """nDCG with exponential gain (2^rel - 1) / log2(rank + 1)."""
    dcg = sum((2 ** qrels.get(doc, 0) - 1) / math.log2(rank + 1) for rank, doc in enumerate(ranking[:k], 1))
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum((2 ** g - 1) / math.log2(rank + 1) for rank, g in enumerate(ideal, 1))
    return dcg / idcg if idcg else 0.0


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_in_context(passages: Sequence[str], answers: Iterable[str]) -> float:
    """1.0 when any gold answer (normalised) appears in the normalised retrieved passages."""
    context = normalize_answer(" ".join(passages))
    return float(any(normalize_answer(a) and normalize_answer(a) in context for a in answers))


def aspect_success(ranking: Sequence[str], aspects: Sequence[str], n: int) -> tuple[float, float]:
    """MRAG's multi-aspect metrics at n picks: (success: all aspects found, success ratio: share found)."""
    found = len(set(aspects) & set(ranking[:n]))
    return float(found == len(set(aspects))), found / len(set(aspects))
