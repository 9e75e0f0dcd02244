"""Per-question scores: one retrieval ranking, one reader answer. Means and intervals are the report's job."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .metrics import (answer_in_context, aspect_success, contains_answer, exact_match, f1_score, mrr_at_k, ndcg_at_k,
                      recall_at_k)


def score_ranking(hits: Sequence, qrels: dict[str, int], answers: list[str], ks: Sequence[int]) -> dict:
    """Document-level hits, best first: recall@k, MRR@10, nDCG@10, answer-in-context@k (when answers are
    known) and, for questions with several relevant documents, MRAG's success and success ratio."""
    ranking = [Path(h.path).stem for h in hits]
    scores: dict[str, float] = {}
    for k in ks:
        scores[f"recall@{k}"] = recall_at_k(ranking, qrels, k)
        if answers:
            scores[f"answer_in_context@{k}"] = answer_in_context([h.text for h in hits[:k]], answers)
        if len(qrels) > 1:
            scores[f"success@{k}"], scores[f"success_ratio@{k}"] = aspect_success(ranking, list(qrels), k)
    scores["mrr@10"] = mrr_at_k(ranking, qrels, 10)
    scores["ndcg@10"] = ndcg_at_k(ranking, qrels, 10)
    return scores


def score_answer(answer, golds: list[str], gold_docs: set[str]) -> tuple[dict, dict]:
    """(metrics, detail) of one answer. Citation precision: the share of marked citations that come
    from a gold document; top citation: whether the most-attended passage is gold."""
    marked = [c for c in answer.citations if c.marked]
    cited_gold = [Path(c.path).stem in gold_docs for c in marked]
    t = answer.timings
    metrics = {"em": exact_match(answer.raw, golds), "f1": f1_score(answer.raw, golds),
               "contains": contains_answer(answer.raw, golds),
               # whether the passages the reader read (its citations) hold a gold answer at all
               "answer_in_context": answer_in_context([c.text for c in answer.citations], golds)
               if answer.citations else None,
               "citation_precision": sum(cited_gold) / len(cited_gold) if cited_gold and gold_docs else None,
               "top_citation_gold": float(Path(answer.citations[0].path).stem in gold_docs)
               if answer.citations and gold_docs else None,
               "abstained": float(answer.abstained),
               "ttft_ms": 1000 * t["ttft_s"] if t.get("ttft_s") is not None else None,
               "ms_per_token": t.get("ms_per_token"), "new_tokens": t.get("new_tokens"),
               "prompt_tokens": t.get("prompt_tokens")}
    detail = {"prediction": answer.raw,
              "citations": [{"number": c.number, "path": c.path, "chars": [c.char_start, c.char_end],
                             "attention": round(c.attention, 4), "marked": c.marked} for c in answer.citations]}
    return metrics, detail
