"""Pick the hybrid fusion weights on a dev split that mixes lexical and multi-aspect questions, never on the
questions reported:
- Quoref (questions copy the passage's words): dev = questions 2000-2999, reported = the first 2000;
- MRAG Wikipedia (queries of 1-25 aspects): dev = the even-numbered queries of each aspect count,
  reported = the odd-numbered ones.

Grid over per-mode weights (dense, multi-head, BM25) and rrf_k. The objective is the mean of Quoref's
MRR@10 and MRAG's weighted success ratio ((2 x exact + category) / 3 over the paper's picks, multi-aspect
queries), from one retrieval pass per question through longdoc's Searcher at document level. Then, on the
reported questions: the best weights with multi-head against the best without, paired bootstrap intervals.

    python bench/fusion_weights.py    # builds the two indexes where `longdoc eval run` keeps them
"""
from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GRID = [0.0, 0.25, 0.5, 1.0, 2.0]
RRF_K = (10, 30, 60)
MRAG_PICKS = 32


def index_for(data):
    """The dataset's index (built once, where `longdoc eval run` builds it)."""
    from longdoc import Settings, index_paths
    from longdoc.evaluation.registry import write_corpus
    from longdoc.evaluation.runner import safe_name
    from longdoc.models.cache import cache_dir

    workdir = cache_dir("eval", safe_name(data.corpus_name))
    index_paths(workdir / "index", [write_corpus(data, workdir / "corpus")], Settings(head_vectors=True), prune=True)
    return workdir / "index"


def ranked(data, qids, label):
    """Per question: each retriever's own chunk ranking, the chunk -> document map, and document names."""
    from rich.progress import track

    from longdoc import open_index

    out = {}
    with open_index(index_for(data)) as ix:
        s = ix.searcher
        paths = {d["id"]: Path(d["path"]).stem for d in ix.documents()}
        for qid in track(qids, description=f"{label}: retrieval"):
            lists = s.ranked_lists(data.queries[qid], {"dense", "multihead", "bm25"}, s.depth(MRAG_PICKS, "document"), None)
            doc_of = ix.catalog.doc_ids_of(list({c for l in lists.values() for c, _ in l}))
            out[qid] = (lists, doc_of)
    return out, paths


def rankings(cached, paths, weights, rrf_k) -> dict[str, list[str]]:
    from longdoc.retrieval.fusion import reciprocal_rank_fusion

    out = {}
    for qid, (lists, doc_of) in cached.items():
        fused, _ = reciprocal_rank_fusion(lists, weights, rrf_k)
        out[qid] = list(dict.fromkeys(paths[doc_of[c]] for c, _ in fused if c in doc_of))
    return out


def quoref_scores(data, ranks) -> dict[str, float]:
    from longdoc.evaluation.metrics import mrr_at_k

    return {q: mrr_at_k(r, data.qrels[q], 10) for q, r in ranks.items()}


def mrag_scores(data, ranks) -> dict[str, float]:
    from longdoc.evaluation import mrag

    scores = mrag.score_rankings(data, {q: r for q, r in ranks.items() if mrag.aspect_count(q) > 1})
    return {q: (2 * s["success_ratio"] + s["category_success_ratio"]) / 3 for q, s in scores.items()}


def main():
    from rich.console import Console
    from rich.table import Table

    from common import write_result
    from longdoc.evaluation.bootstrap import bootstrap_ci, paired_difference
    from longdoc.evaluation.datasets import load_quoref
    from longdoc.evaluation.mrag import load_mrag

    quoref, wiki = load_quoref(), load_mrag("mrag-wikipedia")
    order = sorted(quoref.queries, key=lambda q: int(q[1:]))
    q_dev, q_test = order[2000:3000], order[:2000]
    m_dev = [q for q in wiki.queries if int(q[-2:]) % 2 == 0]
    m_test = [q for q in wiki.queries if int(q[-2:]) % 2 == 1]
    q_cache, q_paths = ranked(quoref, q_dev + q_test, "quoref")
    m_cache, m_paths = ranked(wiki, m_dev + m_test, "mrag-wikipedia")

    def evaluate(weights, rrf_k, q_ids, m_ids):
        q = quoref_scores(quoref, rankings({i: q_cache[i] for i in q_ids}, q_paths, weights, rrf_k))
        m = mrag_scores(wiki, rankings({i: m_cache[i] for i in m_ids}, m_paths, weights, rrf_k))
        return q, m

    grid = []
    for wd, wm, wb, rrf_k in itertools.product(GRID, GRID, GRID, RRF_K):
        if wd == wm == wb == 0:
            continue
        weights = {"dense": wd, "multihead": wm, "bm25": wb}
        q, m = evaluate(weights, rrf_k, q_dev, m_dev)
        grid.append({**{f"weight_{k}": v for k, v in weights.items()}, "rrf_k": rrf_k,
                     "quoref_mrr@10": float(np.mean(list(q.values()))), "mrag_ratio": float(np.mean(list(m.values())))})
        grid[-1]["objective"] = (grid[-1]["quoref_mrr@10"] + grid[-1]["mrag_ratio"]) / 2
    grid.sort(key=lambda r: -r["objective"])
    best = grid[0]
    no_mh = next(r for r in grid if r["weight_multihead"] == 0)
    with_mh = next(r for r in grid if r["weight_multihead"] > 0)
    current = next(r for r in grid if (r["weight_dense"], r["weight_multihead"], r["weight_bm25"], r["rrf_k"]) == (0.25, 0, 2.0, 10))

    table = Table(title=f"Fusion weights on the dev split (Quoref {len(q_dev)}, MRAG {len(m_dev)} queries), by the mean objective")
    for col in ("weights dense/multihead/bm25", "rrf_k", "Quoref MRR@10", "MRAG weighted ratio", "objective"):
        table.add_column(col)
    for label, r in [("best", grid[0]), ("2nd", grid[1]), ("3rd", grid[2]), ("best with multihead", with_mh),
                     ("best without multihead", no_mh), ("the old default (Quoref only)", current)]:
        table.add_row(f"{label}: {r['weight_dense']}/{r['weight_multihead']}/{r['weight_bm25']}", str(r["rrf_k"]),
                      f"{r['quoref_mrr@10']:.3f}", f"{r['mrag_ratio']:.3f}", f"{r['objective']:.3f}")
    console = Console(width=170)
    console.print(table)

    def weights_of(r):
        return {m: r[f"weight_{m}"] for m in ("dense", "multihead", "bm25")}, r["rrf_k"]

    reported = {}
    for label, r in (("with multihead", with_mh), ("without multihead", no_mh), ("old default", current)):
        q, m = evaluate(*weights_of(r), q_test, m_test)
        reported[label] = {"config": r, "quoref": q, "mrag": m}
    multi = len(reported["with multihead"]["mrag"])  # MRAG's ratio is scored on multi-aspect queries only
    report = Table(title=f"Reported questions (Quoref {len(q_test)}, MRAG {multi} multi-aspect), 95% bootstrap intervals")
    for col in ("fusion", "Quoref MRR@10", "MRAG weighted ratio"):
        report.add_column(col)
    for label, r in reported.items():
        report.add_row(label, str(bootstrap_ci(list(r["quoref"].values()))), str(bootstrap_ci(list(r["mrag"].values()))))
    a, b = reported["without multihead"], reported["with multihead"]
    report.add_row("with - without (paired)", str(paired_difference(a["quoref"], b["quoref"])),
                   str(paired_difference(a["mrag"], b["mrag"])))
    console.print(report)
    summary = {label: {"config": r["config"], "quoref_mrr@10": str(bootstrap_ci(list(r["quoref"].values()))),
                       "mrag_ratio": str(bootstrap_ci(list(r["mrag"].values())))} for label, r in reported.items()}
    summary["paired_with_minus_without"] = {"quoref": str(paired_difference(a["quoref"], b["quoref"])),
                                            "mrag": str(paired_difference(a["mrag"], b["mrag"]))}
    print(f"wrote {write_result('fusion_weights', {'dev': {'quoref': len(q_dev), 'mrag': len(m_dev)}, 'best': best, 'reported': summary, 'grid': grid})}")


if __name__ == "__main__":
    main()
