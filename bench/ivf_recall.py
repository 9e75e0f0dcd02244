"""IVF and HNSW recall on real vectors (issue 17: dense recall@10 >= 0.95 against exact search): the Quoref eval
index's chunk embeddings (26,658 passages' chunks, built by `longdoc eval run`) and Quoref's own
questions, flat (exact) against longdoc's IVF (nlist = 4 sqrt(n)) at several nprobe. bench/search.py's
replicated vectors flatter IVF: a chunk's noisy copies share a cell.

python bench/ivf_recall.py [--queries 500]"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402


def main():
    import faiss

    from longdoc import open_index
    from longdoc.evaluation.registry import load_dataset
    from longdoc.models.cache import cache_dir
    from longdoc.storage.vectors import build_ivf, flat_vectors

    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    index_dir = cache_dir("eval", "quoref") / "index"
    data = load_dataset("quoref", args.queries, 0)
    questions = list(data.queries.values())[:args.queries]
    with open_index(index_dir) as ix:
        store = ix.vectors
        queries = ix.embedder.encode(questions)[0]
        n = store.size
        exact = store._search(store.dense, queries, 10, None)[1]
        t = time.perf_counter()
        ivf = build_ivf(flat_vectors(store.dense), store.ids())
        build_s = time.perf_counter() - t
        vectors, ids = flat_vectors(store.dense).copy(), store.ids()
    unit = np.ascontiguousarray(queries / np.linalg.norm(queries, axis=1, keepdims=True), np.float32)

    def measure(index, params, positions: bool = False) -> tuple[float, float]:
        """(recall@10 against flat, ms per query, one query at a time as search runs); positions: the
        index answers row numbers (HNSW here), not chunk ids."""
        t = time.perf_counter()
        got = np.concatenate([index.search(q[None], 10, params=params)[1] for q in unit])
        ms = (time.perf_counter() - t) * 1000 / len(unit)
        if positions:
            got = ids[got]
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)])), ms

    flat_ms = measure(store.dense, None)[1]
    rows = {"flat": {"recall": 1.0, "ms": flat_ms}}
    print(f"{n:,} real vectors: flat {flat_ms:.2f} ms/query")
    for nprobe in (8, 16, 32, 64, 128):
        recall, ms = measure(ivf, faiss.SearchParametersIVF(nprobe=nprobe))
        rows[f"ivf nprobe {nprobe}"] = {"recall": recall, "ms": ms}
        print(f"IVF nlist {ivf.nlist}, nprobe {nprobe:>3}: recall@10 {recall:.3f}, {ms:.2f} ms/query")
    t = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(vectors)
    hnsw_build_s = time.perf_counter() - t
    for ef in (32, 64, 128, 256):
        recall, ms = measure(hnsw, faiss.SearchParametersHNSW(efSearch=ef), positions=True)
        rows[f"hnsw M32 ef {ef}"] = {"recall": recall, "ms": ms}
        print(f"HNSW M 32, efSearch {ef:>3}: recall@10 {recall:.3f}, {ms:.2f} ms/query")
    write_result("ivf_recall", {"vectors": n, "nlist": ivf.nlist, "queries": len(questions), "ivf_build_s": build_s,
                                "hnsw_build_s": hnsw_build_s, "rows": rows})


if __name__ == "__main__":
    main()
