"""Pick the hybrid fusion weights on a dev split of Quoref (questions 2000-2999), never on the
questions the evaluation reports (the first 2000). Grid over per-mode weights and rrf_k; the score
is MRR@10 at document level, from one retrieval pass per question.

    python bench/fusion_weights.py    # needs the index from `longdoc eval run --dataset quoref`
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


def main():
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from common import write_result
    from longdoc import open_index
    from longdoc.evaluation.datasets import load_quoref
    from longdoc.evaluation.metrics import mrr_at_k, recall_at_k
    from longdoc.models.cache import cache_dir
    from longdoc.retrieval.fusion import reciprocal_rank_fusion

    data = load_quoref()
    dev = sorted(data.queries, key=lambda q: int(q[1:]))[2000:3000]
    cached = []
    with open_index(cache_dir("eval", "quoref") / "index") as ix:
        s = ix.searcher
        for qid in track(dev, description="dev retrieval"):
            lists = s.ranked_lists(data.queries[qid], {"dense", "multihead", "bm25"}, s.depth(20, "document"), None)
            doc_of = ix.catalog.doc_ids_of(list({c for l in lists.values() for c, _ in l}))
            paths = {d["id"]: Path(d["path"]).stem for d in ix.documents()} if not cached else cached[0][2]
            cached.append((lists, doc_of, paths, data.qrels[qid]))
    results = []
    for wd, wm, wb, rrf_k in itertools.product(GRID, GRID, GRID, (10, 30, 60)):
        if wd == wm == wb == 0:
            continue
        mrr, r1 = [], []
        for lists, doc_of, paths, rel in cached:
            fused, _ = reciprocal_rank_fusion(lists, {"dense": wd, "multihead": wm, "bm25": wb}, rrf_k)
            ranking = list(dict.fromkeys(paths[doc_of[c]] for c, _ in fused if c in doc_of))
            mrr.append(mrr_at_k(ranking, rel, 10))
            r1.append(recall_at_k(ranking, rel, 1))
        results.append({"weight_dense": wd, "weight_multihead": wm, "weight_bm25": wb, "rrf_k": rrf_k,
                        "mrr@10": float(np.mean(mrr)), "recall@1": float(np.mean(r1))})
    results.sort(key=lambda r: -r["mrr@10"])
    equal = next(r for r in results if r["weight_dense"] == r["weight_multihead"] == r["weight_bm25"] == 1.0 and r["rrf_k"] == 60)
    bm25 = max((r for r in results if r["weight_dense"] == r["weight_multihead"] == 0), key=lambda r: r["mrr@10"])
    no_mh = max((r for r in results if r["weight_multihead"] == 0 and r["weight_dense"] > 0), key=lambda r: r["mrr@10"])
    table = Table(title=f"Fusion weights on Quoref dev ({len(cached)} questions), best by MRR@10")
    for col in ("weights dense/multihead/bm25", "rrf_k", "MRR@10", "recall@1"):
        table.add_column(col)
    for label, r in [("best", results[0]), ("2nd", results[1]), ("3rd", results[2]), ("best without multihead", no_mh),
                     ("bm25 alone", bm25), ("equal (old default)", equal)]:
        table.add_row(f"{label}: {r['weight_dense']}/{r['weight_multihead']}/{r['weight_bm25']}", str(r["rrf_k"]),
                      f"{r['mrr@10']:.3f}", f"{r['recall@1']:.3f}")
    Console(width=160).print(table)
    print(f"wrote {write_result('fusion_weights', {'dev_questions': len(cached), 'grid': results})}")


if __name__ == "__main__":
    main()
