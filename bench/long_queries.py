"""Long queries searched whole and by sentence (retrieval/aspects.py), in one run:

1. Quality on questions that open with context: python-docs-qa's 24 questions over the whole Python 3.11
   manual (497 files), each asked alone, then after its two sentences of context (bench/data's `context`),
   searched whole (search.aspect_sentences 0) and as longdoc searches it (the whole query and each of its
   sentences, merged by best rank). Hybrid MRR@10 of the answer's file and of the chunk quoting its
   evidence, with the paired difference against searching whole. The index of the manual is built once
   into longdoc's cache (about 13 minutes on 2 cores).
2. Cost: MRAG Wikipedia's queries (3-60 sentences; those within the search's length limit) through
   hybrid search on the MRAG index that bench/fusion_weights.py builds, whole (the baseline) and as
   longdoc searches them, interleaved query by query. p50/p95 ms and the ratio.

Writes bench/results/long_queries.json.

    LONGDOC_MRAG_DIR=../shared/data/mrag python bench/long_queries.py
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import write_result  # noqa: E402
from fusion_weights import index_for  # noqa: E402

from longdoc import Settings, index_paths, open_index  # noqa: E402
from longdoc.evaluation.bootstrap import paired_difference  # noqa: E402
from longdoc.evaluation.corpora import corpus_path  # noqa: E402
from longdoc.evaluation.metrics import mrr_at_k  # noqa: E402
from longdoc.evaluation.mrag import load_mrag  # noqa: E402
from longdoc.evaluation.qa_datasets import PYTHON_DOCS_QA  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402
from longdoc.retrieval.aspects import query_parts  # noqa: E402
from longdoc.retrieval.searcher import MAX_QUERY_CHARS  # noqa: E402

WHOLE = Settings().replace(search_aspect_sentences=0)


def python_docs_qa() -> list[dict]:
    return [json.loads(line) for line in PYTHON_DOCS_QA.read_text().splitlines()]


def with_context(r: dict) -> str:
    return f"{r['context']} {r['question']}"


def mrr_by_question(ix, rows: list[dict], query) -> dict[str, dict[str, float]]:
    """Hybrid MRR@10, per question (query(row) is what is asked), of the answer's file and of the chunk
    quoting its evidence."""
    files, evidence = {}, {}
    for r in rows:
        hits = ix.search(query(r), k=10)
        ids = [h.chunk_id for h in hits]
        in_file = {h.chunk_id for h in hits if h.path.endswith(r["source"])}
        quoted = {h.chunk_id for h in hits
                  if any(end in " ".join(h.text.split()) for end in (r["evidence"][:40], r["evidence"][-40:]))}
        files[r["id"]] = mrr_at_k(ids, in_file)
        evidence[r["id"]] = mrr_at_k(ids, in_file & quoted)
    return {"file": files, "evidence": evidence}


def context_questions() -> dict:
    index = cache_dir("bench", "python-manual-index")
    index_paths(index, [corpus_path("python-docs")])  # a no-op once built
    rows = python_docs_qa()

    def question(r):
        return r["question"]

    scores = {}
    with open_index(index, settings=WHOLE) as whole, open_index(index) as default:
        asked = {"question alone": (whole, question), "with context, whole": (whole, with_context),
                 "with context, longdoc": (default, with_context)}
        for label, (ix, query) in asked.items():
            scores[label] = mrr_by_question(ix, rows, query)
    out = {"questions": len(rows), "modes": {}}
    print(f"{len(rows)} python-docs-qa questions over the whole manual, hybrid MRR@10 (answer's file / evidence chunk):")
    for label, s in scores.items():
        out["modes"][label] = {k: float(np.mean(list(v.values()))) for k, v in s.items()}
        print(f"  {label}: {out['modes'][label]['file']:.3f} / {out['modes'][label]['evidence']:.3f}")
    base, ours = scores["with context, whole"], scores["with context, longdoc"]
    out["longdoc_minus_whole"] = {k: str(paired_difference(base[k], ours[k])) for k in base}
    print(f"  longdoc - whole (paired): file {out['longdoc_minus_whole']['file']}, evidence {out['longdoc_minus_whole']['evidence']}")
    return out


def cost() -> dict:
    data = load_mrag("mrag-wikipedia")
    index = index_for(data)
    queries = [q for q in data.queries.values() if len(q) <= MAX_QUERY_CHARS]
    timings = {"whole": [], "longdoc": []}
    with open_index(index, settings=WHOLE) as whole, open_index(index) as split:
        for ix in (whole, split):
            ix.search(queries[0], k=10)  # models and indexes loaded before timing
        for query in queries:
            for label, ix in (("whole", whole), ("longdoc", split)):
                t = time.perf_counter()
                ix.search(query, k=10)
                timings[label].append(1000 * (time.perf_counter() - t))
    sentences = [len(query_parts(q, split.settings.search.aspect_sentences)) - 1 for q in queries]
    out = {"queries": len(queries), "sentences_median": float(np.median(sentences)), "modes": {}}
    for label, ms in timings.items():
        out["modes"][label] = {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}
    out["p50_ratio"] = out["modes"]["longdoc"]["p50_ms"] / out["modes"]["whole"]["p50_ms"]
    print(f"{len(queries)} MRAG queries, median {out['sentences_median']:.0f} sentences, hybrid:")
    for label, m in out["modes"].items():
        print(f"  {label}: p50 {m['p50_ms']:.1f} ms, p95 {m['p95_ms']:.1f} ms")
    print(f"  longdoc / whole at p50: {out['p50_ratio']:.2f}x")
    return out


def main():
    result = {"context_questions": context_questions(), "cost": cost()}
    print(f"wrote {write_result('long_queries', result)}")


if __name__ == "__main__":
    main()
