"""Which packaged embedder should be longdoc's default: retrieval quality against indexing speed, per
embedder, in one run, on the same questions (issue 16, item 4).

Sets (nothing here is tuned, so every question is reported):
- quoref: the first N Quoref passages and the questions about them (bench/peers.py's subset); questions
  that copy their passage's words;
- essay-paraphrase: the 49 essays with their 60 planted facts, asked with no content word in common;
  scored by document and by the chunk holding the fact;
- python-docs-qa: the 24 questions over their 16 answer files of the Python manual, plus distractor files
  drawn with a fixed seed until the corpus is --docs-chars long (the whole manual, 67K chunks, would take
  hours to embed with mpnet here).

Per set and embedder: a longdoc index built with that embedder (its build time and chunks/s), then dense,
BM25 and hybrid (default weights) recall@5 and MRR@10 by document. MRAG per embedder is bench/mrag.py's.
Indexes are kept under the cache (bench/embedders/<set>-<embedder>) with their build time, so a rerun
scores without re-embedding; --fresh builds again.

    python bench/embedders.py [--embedders all-MiniLM-L6-v2,all-mpnet-base-v2] [--passages 300]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODES = ("dense", "bm25", "hybrid")
K = 10


def quoref_subset(passages: int):
    from peers import subset

    from longdoc.evaluation.datasets import RetrievalDataset

    corpus, qs = subset(passages, 10_000)
    return RetrievalDataset("quoref", {d: {"title": "", "text": t} for d, t in corpus.items()},
                            {q: question for q, (question, _) in qs.items()}, {q: {gold: 1} for q, (_, gold) in qs.items()},
                            {q: [] for q in qs})


def python_docs_subset(chars: int, seed: int = 0):
    """The answer files, then other files of the manual in a seeded random order until `chars` is reached."""
    from longdoc.evaluation.qa_datasets import load_python_docs_qa

    data = load_python_docs_qa()
    keep = {next(iter(r)) for r in data.qrels.values()}
    total = sum(len(data.corpus[d]["text"]) for d in keep)
    others = sorted(set(data.corpus) - keep)
    random.Random(seed).shuffle(others)
    for d in others:
        if total >= chars:
            break
        keep.add(d)
        total += len(data.corpus[d]["text"])
    data.corpus = {d: data.corpus[d] for d in sorted(keep)}
    return data


def build(data, embedder: str, root: Path, fresh: bool) -> dict:
    """The set's index with this embedder, and how long it took to build (recorded beside it)."""
    from longdoc import Settings, index_paths
    from longdoc.evaluation.registry import write_corpus

    record = root / "build.json"
    if fresh or not record.exists():
        shutil.rmtree(root, ignore_errors=True)
        corpus = write_corpus(data, root / "corpus")
        t0 = time.perf_counter()
        stats = index_paths(root / "index", [corpus], Settings(embedder=embedder), progress=False)
        seconds = time.perf_counter() - t0
        record.write_text(json.dumps({"seconds": seconds, "chunks": stats.chunks_embedded, "documents": len(data.corpus)}))
    return json.loads(record.read_text())


def score(data, index: Path) -> dict:
    """Per mode: recall@5 and MRR@10 by document; for a set with evidence, MRR@10 of the chunk holding it."""
    from longdoc import open_index
    from longdoc.evaluation.metrics import mrr_at_k, recall_at_k

    out = {}
    with open_index(index) as ix:
        names = {d["id"]: Path(d["path"]).stem for d in ix.documents()}
        ids = {stem: doc_id for doc_id, stem in names.items()}
        for mode in MODES:
            r5, mrr, chunk_mrr = [], [], []
            for qid, question in data.queries.items():
                gold = next(iter(data.qrels[qid]))
                docs = [Path(h.path).stem for h in ix.search(question, k=K, mode=mode, per="document")]
                r5.append(recall_at_k(docs, [gold], 5))
                mrr.append(mrr_at_k(docs, [gold], 10))
                if data.evidence.get(qid):
                    needle = data.evidence[qid]
                    holding = {str(c["id"]) for c in ix.chunks(ids[gold])
                               if needle[:40] in c["text"] or needle[-40:] in c["text"]}
                    chunks = [str(h.chunk_id) for h in ix.search(question, k=K, mode=mode, per="chunk")]
                    chunk_mrr.append(mrr_at_k(chunks, holding, 10))
            out[mode] = {"recall@5": float(np.mean(r5)), "mrr@10": float(np.mean(mrr))}
            if chunk_mrr:
                out[mode]["chunk_mrr@10"] = float(np.mean(chunk_mrr))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedders", default="all-MiniLM-L6-v2,all-mpnet-base-v2")
    parser.add_argument("--passages", type=int, default=300, help="Quoref passages (the questions about them all)")
    parser.add_argument("--docs-chars", type=int, default=1_000_000, help="python-docs-qa corpus size in chars")
    parser.add_argument("--fresh", action="store_true", help="build every index again")
    args = parser.parse_args()
    from common import write_result
    from rich.console import Console
    from rich.table import Table

    from longdoc.evaluation.qa_datasets import load_essay_paraphrase
    from longdoc.models.cache import cache_dir

    sets = {"quoref": quoref_subset(args.passages), "essay-paraphrase": load_essay_paraphrase(),
            "python-docs-qa": python_docs_subset(args.docs_chars)}
    rows = []
    for embedder in args.embedders.split(","):
        for name, data in sets.items():
            print(f"{embedder} on {name} ({len(data.corpus)} documents, {len(data.queries)} questions)", flush=True)
            root = cache_dir("bench", "embedders", f"{name}-{embedder}")
            built = build(data, embedder, root, args.fresh)
            rows.append({"embedder": embedder, "set": name, **built,
                         "chunks_per_s": built["chunks"] / built["seconds"], "modes": score(data, root / "index")})
            print(json.dumps(rows[-1]), flush=True)
    path = write_result("embedders", {"passages": args.passages, "docs_chars": args.docs_chars, "rows": rows})
    table = Table(title="Embedders: recall@5 / MRR@10 by document (paraphrase: MRR@10 of the fact's chunk)")
    for col in ("embedder", "set", "chunks", "chunks/s", *MODES):
        table.add_column(col)
    for r in rows:
        cells = [f"{m['recall@5']:.3f} / {m.get('chunk_mrr@10', m['mrr@10']):.3f}" for m in r["modes"].values()]
        table.add_row(r["embedder"], r["set"], str(r["chunks"]), f"{r['chunks_per_s']:.1f}", *cells)
    Console(width=160).print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
