"""What searching a long query one sentence at a time costs (retrieval/aspects.py): MRAG Wikipedia's 250
queries (3-60 sentences; those within the search's length limit) through longdoc's hybrid search on the MRAG index that bench/fusion_weights.py
builds, searched whole (search.aspect_sentences 0, the baseline) and sentence by sentence (the default),
interleaved query by query in the same run. Prints p50/p95 ms and the ratio; writes
bench/results/long_queries.json.

    LONGDOC_MRAG_DIR=../shared/data/mrag python bench/long_queries.py
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import write_result  # noqa: E402
from fusion_weights import index_for  # noqa: E402

from longdoc import Settings, open_index  # noqa: E402
from longdoc.evaluation.mrag import load_mrag  # noqa: E402
from longdoc.retrieval.aspects import query_parts  # noqa: E402
from longdoc.retrieval.searcher import MAX_QUERY_CHARS  # noqa: E402


def main():
    data = load_mrag("mrag-wikipedia")
    index = index_for(data)
    queries = [q for q in data.queries.values() if len(q) <= MAX_QUERY_CHARS]
    timings = {"whole": [], "by sentence": []}
    with open_index(index, settings=Settings().replace(search_aspect_sentences=0)) as whole, open_index(index) as split:
        for ix in (whole, split):
            ix.search(queries[0], k=10)  # models and indexes loaded before timing
        for query in queries:
            for label, ix in (("whole", whole), ("by sentence", split)):
                t = time.perf_counter()
                ix.search(query, k=10)
                timings[label].append(1000 * (time.perf_counter() - t))
    sentences = [len(query_parts(q, split.settings.search.aspect_sentences)) for q in queries]
    out = {"queries": len(queries), "sentences_median": float(np.median(sentences)), "modes": {}}
    for label, ms in timings.items():
        out["modes"][label] = {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}
    ratio = out["modes"]["by sentence"]["p50_ms"] / out["modes"]["whole"]["p50_ms"]
    out["p50_ratio"] = ratio
    for label, m in out["modes"].items():
        print(f"{label}: p50 {m['p50_ms']:.1f} ms, p95 {m['p95_ms']:.1f} ms")
    print(f"{len(queries)} queries, median {out['sentences_median']:.0f} sentences; by sentence / whole at p50: {ratio:.2f}x")
    print(f"wrote {write_result('long_queries', out)}")


if __name__ == "__main__":
    main()
