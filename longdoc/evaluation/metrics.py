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


def _golds(answers: Iterable[str]) -> list[str]:
    """Gold answers; none (SQuAD v2's unanswerable) means the empty answer is right."""
    return list(answers) or [""]


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """SQuAD EM: 1.0 when the normalised prediction equals any normalised gold answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in _golds(answers)))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common: dict[str, int] = {}
    for t in pred_tokens:
        common[t] = common.get(t, 0) + 1
    overlap = 0
    for t in gold_tokens:
        if common.get(t, 0) > 0:
            overlap += 1
            common[t] -= 1
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, answers: Iterable[str]) -> float:
    """SQuAD token F1 over normalised tokens, the best over the gold answers."""
    pred = normalize_answer(prediction).split()
    return max(_f1(pred, normalize_answer(a).split()) for a in _golds(answers))


def contains_answer(prediction: str, answers: Iterable[str]) -> float:
    """1.0 when a normalised gold answer appears in the normalised prediction (on word boundaries)."""
    pred = f" {normalize_answer(prediction)} "
    golds = _golds(answers)
    if golds == [""]:
        return float(pred.strip() == "")
    return float(any(normalize_answer(a) and f" {normalize_answer(a)} " in pred for a in golds))
