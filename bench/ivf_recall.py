"""Dense recall@10 against exact search on real vectors (issue 17: >= 0.95): an index's stored chunk
embeddings, asked real questions, searched exactly (flat) and through IVF (nlist = 4 sqrt(n)) with
float32 codes and with longdoc's 8-bit codes at several nprobe, with the nprobe longdoc calibrates
(storage/ivf.py), and through HNSW for reference. bench/search.py's replicated vectors flatter IVF: a
chunk's noisy copies share a cell.

The calibration target was chosen on Quoref's questions over the Quoref index (the dev set); the Python
manual's index with python-docs-qa's and Quoref's questions is held out.

    python bench/ivf_recall.py                                          # Quoref: the dev set
    python bench/ivf_recall.py --index IDX --datasets python-docs-qa,quoref --tag python-manual
"""
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
    from longdoc.storage.ivf import build_ivf
    from longdoc.storage.vectors import normalize

    parser = argparse.ArgumentParser()
    parser.add_argument("--index", type=Path, default=cache_dir("eval", "quoref") / "index")
    parser.add_argument("--datasets", default="quoref", help="whose questions to ask, comma-separated")
    parser.add_argument("--queries", type=int, default=500, help="questions per dataset at most")
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    asked = {name: list(load_dataset(name, args.queries, 0).queries.values())[:args.queries]
             for name in args.datasets.split(",")}
    questions = [q for qs in asked.values() for q in qs]
    of = np.array([name for name, qs in asked.items() for _ in qs])
    with open_index(args.index) as ix:
        ids = ix.catalog.vector_ids()
        vectors = normalize(ix.catalog.vectors(ids, ix.manifest["dim"], 0, 0)[0])
        queries = normalize(ix.embedder.encode(questions)[0])
    n, d = vectors.shape
    flat = faiss.IndexFlatIP(d)
    flat.add(vectors)
    exact = flat.search(queries, 10)[1]

    def measure(index, params, as_ids: bool = True) -> tuple[dict, float]:
        """({dataset: recall@10 against flat}, ms per query, one query at a time as search runs)."""
        t = time.perf_counter()
        got = np.concatenate([index.search(q[None], 10, params=params)[1] for q in queries])
        ms = (time.perf_counter() - t) * 1000 / len(queries)
        rows = np.searchsorted(ids, got) if as_ids else got
        recall = np.array([len(set(a) & set(b)) / 10 for a, b in zip(rows, exact)])
        return {name: float(recall[of == name].mean()) for name in asked}, ms

    def shown(recall: dict) -> str:
        return ", ".join(f"{name} {r:.3f}" for name, r in recall.items())

    rows = {"flat": {"recall": {name: 1.0 for name in asked}, "ms": measure(flat, None, as_ids=False)[1]}}
    print(f"{n:,} real vectors; questions: " + ", ".join(f"{name} {len(qs)}" for name, qs in asked.items())
          + f"; flat {rows['flat']['ms']:.2f} ms/query")
    t = time.perf_counter()
    by_id = {int(i): row for row, i in enumerate(ids)}
    sq8, calibrated = build_ivf(ids, lambda part: vectors[[by_id[int(i)] for i in part]])
    build_s = time.perf_counter() - t
    ivf_flat = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, sq8.nlist, faiss.METRIC_INNER_PRODUCT)
    ivf_flat.train(vectors)
    ivf_flat.add_with_ids(vectors, ids)
    for nprobe in sorted({16, 32, 64, 96, 128, 192, 256, calibrated}):
        for name, index in (("ivf float32", ivf_flat), ("ivf sq8", sq8)):
            recall, ms = measure(index, faiss.SearchParametersIVF(nprobe=nprobe))
            mark = " (calibrated)" if nprobe == calibrated and name == "ivf sq8" else ""
            rows[f"{name} nprobe {nprobe}{mark}"] = {"recall": recall, "ms": ms}
            print(f"{name:11s} nlist {sq8.nlist}, nprobe {nprobe:>3}{mark}: recall@10 {shown(recall)}; {ms:.2f} ms/query")
    hnsw = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = 80
    hnsw.add(vectors)
    for ef in (64, 128):
        recall, ms = measure(hnsw, faiss.SearchParametersHNSW(efSearch=ef), as_ids=False)
        rows[f"hnsw M32 ef {ef}"] = {"recall": recall, "ms": ms}
        print(f"HNSW M 32, efSearch {ef:>3}: recall@10 {shown(recall)}; {ms:.2f} ms/query")
    name = "ivf_recall" + (f"-{args.tag}" if args.tag else "")
    write_result(name, {"index": str(args.index), "vectors": n, "nlist": sq8.nlist, "datasets": args.datasets,
                        "queries": len(questions), "calibrated_nprobe": calibrated, "build_s": build_s, "rows": rows})


if __name__ == "__main__":
    main()
