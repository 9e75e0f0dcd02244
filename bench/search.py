"""Search latency per mode at 10k, 100k and 1M chunks, and flat vs IVF recall, in one run.

Vectors are real: the chunk embeddings (dense and 12 heads) and texts of the 49 Paul Graham essays,
replicated with Gaussian noise (sigma 0.02 per dim, then re-normalised) up to each size. The catalog
is a real SQLite file, BM25 a real tantivy index (storage/text_index.py); search runs through longdoc's Searcher. Query encoding is timed on
its own; the search timings reuse each query's encoding.

    python bench/search.py [--quick]     # --quick: 10k and 100k only
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

QUERIES = [
    "how to get startup ideas", "why do startups die", "what makes a good programming language",
    "how should founders raise money", "what is the best way to hire programmers", "why is Lisp powerful",
    "how do investors decide", "what did the author learn from Viaweb", "how to do great work",
    "why are cities important for ambition", "what is a default alive startup", "how to write essays",
    "what should high school students do", "why procrastination happens", "what is wealth",
    "how does Y Combinator work", "what makes a hacker", "why do big companies move slowly",
    "how to be an expert in a changing world", "what is the hardest lesson for startups",
]


class CachedEncoder:
    """The real embedder's outputs for the bench queries, computed once, so search is timed alone."""

    def __init__(self, embedder, queries):
        self.cache = {q: tuple(a[0] for a in embedder.encode([q])) for q in queries}

    def encode(self, texts):
        dense, heads = self.cache[texts[0]]
        return dense[None], heads[None]


# IVF nprobe timed apart. On these replicated vectors (a chunk's copies share a cell) longdoc's calibration
# gives a lower nprobe than real vectors need, so the modes are timed at the share of cells real vectors
# needed: bench/ivf_recall.py calibrated nprobe 192 of 1,039 cells on the whole Python manual (67.6K real
# MiniLM vectors, 0.979 recall@10 held out), unless the calibration here asks for more.
NPROBES = (8, 32, 128, 512)
REAL_SHARE = 192 / 1039


def percentiles(samples: list[float]) -> dict:
    ms = np.array(samples) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def replicate(base: np.ndarray, n: int, rng) -> np.ndarray:
    reps = base[np.arange(n) % len(base)]
    noisy = reps + 0.02 * rng.standard_normal(reps.shape).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=-1, keepdims=True)


def build_catalog(folder: Path, texts: list[str], n: int):
    from longdoc.storage import Catalog

    cat = Catalog.open(folder, create=True)
    per_doc = 100
    conn = cat.db.conn
    with cat.transaction():
        conn.executemany("INSERT INTO documents(id, path, sha256, format, n_chunks, indexed_at) VALUES (?, ?, '', 'txt', ?, '')",
                         [(d + 1, f"/bench/doc{d:07d}.txt", per_doc) for d in range(n // per_doc)])
        conn.executemany("INSERT INTO chunks(id, doc_id, ordinal, text, char_start, char_end, token_count) "
                         "VALUES (?, ?, ?, ?, 0, ?, 64)",
                         ((i + 1, i // per_doc + 1, i % per_doc, texts[i % len(texts)], len(texts[i % len(texts)]))
                          for i in range(n)))
    return cat


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    from common import write_result
    from longdoc import Settings, index_paths, open_index
    from longdoc.config import SearchSettings
    from longdoc.evaluation.corpora import corpus_path
    from longdoc.indexing.embedder import MultiHeadEmbedder
    from longdoc.retrieval import Searcher
    from longdoc.storage import VectorStore
    from longdoc.storage.text_index import TextIndex
    from longdoc.storage.ivf import build_ivf
    from longdoc.storage.vectors import flat_index

    embedder = MultiHeadEmbedder("all-MiniLM-L6-v2", device="cpu")
    encode_times = []
    for q in QUERIES:
        t = time.perf_counter()
        embedder.encode([q])
        encode_times.append(time.perf_counter() - t)
    encoder = CachedEncoder(embedder, QUERIES)
    rng = np.random.default_rng(0)
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        index_paths(Path(tmp) / "essays", [corpus_path("paul-graham-essays")], Settings(head_vectors=True),
                    progress=False, embedder=embedder)
        with open_index(Path(tmp) / "essays") as ix:
            ids = ix.catalog.vector_ids()
            base_dense, base_heads = ix.catalog.vectors(ids, 384, 12, 32)
            texts = [r["text"] for r in ix.catalog.chunks(ids.tolist())]
        base_dense /= np.linalg.norm(base_dense, axis=-1, keepdims=True)
        for n in sizes:
            folder = Path(tmp) / f"n{n}"
            t = time.perf_counter()
            catalog = build_catalog(folder, texts, n)
            catalog_s = time.perf_counter() - t
            settings = SearchSettings()
            store = VectorStore(folder, 384, 12, 32, ivf_threshold=settings.ivf_threshold, ivf_nprobe=settings.ivf_nprobe)
            chunk_ids = np.arange(1, n + 1, dtype=np.int64)
            dense = replicate(base_dense, n, rng)
            exact_index = flat_index(384)
            exact_index.add_with_ids(dense, chunk_ids)
            for h in range(12):
                store.heads[h].add_with_ids(replicate(base_heads[:, h], n, rng), chunk_ids)
            store.generation = catalog.generation
            # Past ivf_threshold, dense search goes through the IVF index, as `index` saves it and search loads it.
            t = time.perf_counter()
            ivf, calibrated = build_ivf(chunk_ids, lambda part: dense[part - 1])
            ivf_build_s = time.perf_counter() - t
            timed_nprobe = max(calibrated, round(REAL_SHARE * ivf.nlist))
            store.dense, store.calibrated_nprobe = (ivf, timed_nprobe) if n >= settings.ivf_threshold else (exact_index, 0)
            text = TextIndex(folder)
            text.refresh(catalog)
            text.sync(catalog)
            searcher = Searcher(catalog, lambda: store, lambda: encoder, lambda: text, settings)
            row = {"chunks": n, "catalog_build_s": catalog_s, "modes": {}}
            for mode in ("dense", "multihead", "bm25", "hybrid"):
                times = []
                for q in QUERIES:
                    t = time.perf_counter()
                    searcher.search(q, k=10, mode=mode)
                    times.append(time.perf_counter() - t)
                row["modes"][mode] = percentiles(times)
            # Flat vs IVF for the dense space: recall@10 against flat, and latency.
            qvecs = np.stack([encoder.cache[q][0] for q in QUERIES])
            flat_times, exact = [], []
            for qv in qvecs:
                t = time.perf_counter()
                exact.append(exact_index.search(qv[None], 10)[1][0])
                flat_times.append(time.perf_counter() - t)
            row["ivf_build_s"] = ivf_build_s
            row["ivf_nlist"], row["ivf_calibrated_nprobe"] = ivf.nlist, calibrated
            row["modes_nprobe"] = timed_nprobe if n >= settings.ivf_threshold else None
            row["flat"] = percentiles(flat_times)
            row["ivf"] = {}
            import faiss

            for nprobe in NPROBES:
                times, recalls = [], []
                for qv, ex in zip(qvecs, exact):
                    t = time.perf_counter()
                    got = ivf.search(qv[None], 10, params=faiss.SearchParametersIVF(nprobe=nprobe))[1][0]
                    times.append(time.perf_counter() - t)
                    recalls.append(len(set(got) & set(ex)) / 10)
                row["ivf"][nprobe] = {**percentiles(times), "recall@10_vs_flat": float(np.mean(recalls))}
            rows.append(row)
            catalog.close()
            del store, searcher
    enc = percentiles(encode_times)
    table = Table(title=f"Search latency, ms p50/p95 (query encoding excluded: {enc['p50_ms']:.1f}/{enc['p95_ms']:.1f} ms)")
    for col in ("chunks", "dense", "multihead", "bm25", "hybrid", "flat dense", *(f"IVF np={p}" for p in NPROBES),
                "IVF recall@10 (" + "/".join(map(str, NPROBES)) + ")", "calibrated / modes' nprobe", "IVF build s"):
        table.add_column(col)
    fmt = lambda d: f"{d['p50_ms']:.1f}/{d['p95_ms']:.1f}"  # noqa: E731
    for r in rows:
        table.add_row(f"{r['chunks']:,}", *[fmt(r["modes"][m]) for m in ("dense", "multihead", "bm25", "hybrid")],
                      fmt(r["flat"]), *[fmt(r["ivf"][p]) for p in NPROBES],
                      " / ".join(f"{r['ivf'][p]['recall@10_vs_flat']:.3f}" for p in NPROBES), f"{r['ivf_calibrated_nprobe']} / {r['modes_nprobe'] or 'flat'}",
                      f"{r['ivf_build_s']:.1f}")
    Console(width=220).print(table)
    print(f"wrote {write_result('search-quick' if args.quick else 'search', {'query_encoding': enc, 'rows': rows})}")


if __name__ == "__main__":
    main()
