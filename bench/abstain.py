"""Which retrieval score tells an answerable question from one whose answer is not indexed, and where
to put the abstain threshold.

Quoref's first 300 passages are indexed. Answerable questions are those about an indexed passage;
unanswerable ones are Quoref questions about the other passages: same domain and style, answer absent,
the hard case. For each signal (top fused RRF score, top dense cosine, top BM25 score) the threshold with
the best balanced accuracy is chosen on the even-numbered questions and reported on the odd ones, and
so is the threshold that keeps 95% of the answerable questions (the product default: few wrong refusals).

    python bench/abstain.py
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from common import write_result  # noqa: E402

from longdoc import index_paths, open_index  # noqa: E402
from longdoc.evaluation.datasets import RetrievalDataset, load_quoref  # noqa: E402
from longdoc.evaluation.registry import write_corpus  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402

INDEXED, PER_CLASS, K = 300, 400, 5


def signals(hits) -> dict[str, float]:
    return {"fused": max((h.score for h in hits), default=0.0),
            "dense_cosine": max((h.scores.get("dense", -1.0) for h in hits), default=-1.0),
            "bm25": max((h.scores.get("bm25", 0.0) for h in hits), default=0.0)}


def balanced_accuracy(pos: np.ndarray, neg: np.ndarray, threshold: float) -> float:
    return 0.5 * ((pos >= threshold).mean() + (neg < threshold).mean())


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of an answerable question > score of an unanswerable one), ties counted half."""
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def main():
    quoref = load_quoref()
    indexed = sorted(quoref.corpus)[:INDEXED]
    subset = RetrievalDataset("quoref-abstain", {d: quoref.corpus[d] for d in indexed}, {}, {})
    workdir = cache_dir("bench", "abstain")
    index_paths(workdir / "index", [write_corpus(subset, workdir / "corpus")], prune=True, progress=True)
    inside = set(indexed)
    answerable = [q for q in sorted(quoref.queries, key=lambda q: int(q[1:])) if next(iter(quoref.qrels[q])) in inside][:PER_CLASS]
    unanswerable = [q for q in sorted(quoref.queries, key=lambda q: int(q[1:])) if next(iter(quoref.qrels[q])) not in inside][:PER_CLASS]
    scores = {"answerable": [], "unanswerable": []}
    with open_index(workdir / "index") as ix:
        for label, qids in (("answerable", answerable), ("unanswerable", unanswerable)):
            for qid in qids:
                scores[label].append(signals(ix.search(quoref.queries[qid], k=K)))
    result = {"indexed_passages": INDEXED, "questions_per_class": PER_CLASS, "k": K, "signals": {}}
    for name in scores["answerable"][0]:
        pos = np.array([s[name] for s in scores["answerable"]])
        neg = np.array([s[name] for s in scores["unanswerable"]])
        dev_pos, dev_neg, test_pos, test_neg = pos[::2], neg[::2], pos[1::2], neg[1::2]
        candidates = np.unique(np.concatenate([dev_pos, dev_neg]))
        best = max(candidates, key=lambda t: balanced_accuracy(dev_pos, dev_neg, t))
        result["signals"][name] = {
            "auc": auc(pos, neg), "threshold": float(best),
            "dev_balanced_accuracy": balanced_accuracy(dev_pos, dev_neg, best),
            "test_balanced_accuracy": balanced_accuracy(test_pos, test_neg, best),
            "test_answerable_kept": float((test_pos >= best).mean()),
            "test_unanswerable_abstained": float((test_neg < best).mean()),
            "answerable_median": float(np.median(pos)), "unanswerable_median": float(np.median(neg))}
        # The product default wants few wrong refusals: the threshold that keeps 95% of the answerable dev questions.
        keep95 = float(np.quantile(dev_pos, 0.05))
        result["signals"][name].update({
            "threshold_keep95": keep95, "test_answerable_kept_keep95": float((test_pos >= keep95).mean()),
            "test_unanswerable_abstained_keep95": float((test_neg < keep95).mean())})
        r = result["signals"][name]
        print(f"{name:>13}: AUC {r['auc']:.3f}  threshold {r['threshold']:.4f}  test balanced accuracy "
              f"{r['test_balanced_accuracy']:.3f} (answerable kept {r['test_answerable_kept']:.3f}, "
              f"unanswerable abstained {r['test_unanswerable_abstained']:.3f}); keeping 95%: threshold "
              f"{keep95:.4f}, kept {r['test_answerable_kept_keep95']:.3f}, abstained {r['test_unanswerable_abstained_keep95']:.3f}")
    print(f"wrote {write_result('abstain', result)}")


if __name__ == "__main__":
    main()
