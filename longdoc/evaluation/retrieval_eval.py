"""`longdoc eval retrieval`: index a dataset's corpus (or reuse the index) and score each mode.

Retrieval runs once per query: the three retrievers' rankings are computed together, and each
mode's final document ranking (hybrid = their fusion) is derived from them, exactly as search does.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from ..config import Settings
from ..errors import LongdocError
from ..retrieval import MODES
from .datasets import RetrievalDataset, load_beir, load_quoref, multi_aspect
from .metrics import answer_in_context, aspect_success, mrr_at_k, ndcg_at_k, recall_at_k

DATASETS = {"quoref": "Quoref (bigbench sdist): 2,942 passages, 6,500 questions",
            "drop": "DROP (bigbench sdist): discrete reasoning over paragraphs, 6,500 questions",
            "minute-mysteries": "minute_mysteries_qa (bigbench sdist): 274 mystery stories, long-form answers",
            "python-docs-qa": "24 questions over the whole Python 3.11 manual (497 files, Debian python3.11-doc)",
            "quoref-multiaspect": "pairs of Quoref questions about different passages (MRAG-style)",
            "quoref:PATH": "a Quoref task.json-shaped file, e.g. a subset",
            "beir:PATH": "a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)",
            "squad:PATH": "SQuAD v1.1/v2.0 JSON",
            "hotpotqa:PATH": "HotpotQA JSON (distractor setting)",
            "nq-open:PATH": "NQ-open jsonl (questions only: evaluate against --index)",
            "flashrag:PATH": "FlashRAG jsonl (passages from corpus.jsonl beside it, if present)",
            "longbench:PATH": "LongBench jsonl (each context is one long document)"}


def load_dataset(name: str, limit: int | None = None, seed: int = 0) -> RetrievalDataset:
    from . import qa_datasets as qa
    from .bigbench import bigbench_task

    bigbench = {"drop": ("natural_instructions/subtask028_drop_answer_generation", qa.drop_from_examples),
                "minute-mysteries": ("minute_mysteries_qa/freetext", qa.mysteries_from_examples)}
    if name == "quoref":
        return load_quoref().limited(limit)
    if name in bigbench:
        task, parse = bigbench[name]
        return parse(json.loads(bigbench_task(task).read_text())["examples"], name).limited(limit)
    if name == "python-docs-qa":
        return qa.load_python_docs_qa().limited(limit)
    if name == "quoref-multiaspect":
        return multi_aspect(load_quoref(), limit or 500, seed=seed)
    kind, _, path = name.partition(":")
    files = {"quoref": load_quoref, "beir": load_beir, "squad": qa.load_squad, "hotpotqa": qa.load_hotpotqa,
             "nq-open": qa.load_nq_open, "flashrag": qa.load_flashrag, "longbench": qa.load_longbench}
    if kind in files and path:
        if not Path(path).exists():
            raise LongdocError(f"{path}: no such {kind} dataset file or folder")
        return files[kind](path).limited(limit)
    raise LongdocError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def write_corpus(dataset: RetrievalDataset, folder: Path) -> Path:
    """One text file per document, rewritten only when its text changed (so re-indexing is free)."""
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id, doc in dataset.corpus.items():
        text = (doc["title"] + "\n\n" + doc["text"]) if doc.get("title") else doc["text"]
        path = folder / f"{doc_id}.txt"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return folder


def evaluate_retrieval(dataset: RetrievalDataset, workdir: str | Path, modes: list[str], ks: list[int],
                       settings: Settings | None = None, progress: bool = True, embedder=None) -> dict:
    from .. import index_paths, open_index

    bad = [m for m in modes if m not in MODES]
    if bad or not ks or min(ks) < 1:
        raise LongdocError(f"modes must be among {', '.join(MODES)} and k positive (got {modes}, {ks})")
    workdir = Path(workdir)
    corpus = write_corpus(dataset, workdir / "corpus")
    t0 = time.perf_counter()
    report = index_paths(workdir / "index", [corpus], settings, prune=True, progress=progress, embedder=embedder)
    index_seconds = time.perf_counter() - t0
    k_max = max(max(ks), 10)
    per_mode: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    multi = any(len(r) > 1 for r in dataset.qrels.values())
    with open_index(workdir / "index", settings=settings) as ix, \
            Progress(disable=not progress, transient=True) as bar:
        if embedder is not None:
            ix._embedder = embedder
        searcher = ix.searcher
        chunks = ix.catalog.counts()["chunks"]
        retrievers = searcher.retrievers_for(modes)  # one retrieval pass per query serves every mode
        task = bar.add_task("queries", total=len(dataset.queries))
        seconds = 0.0
        for qid, query in dataset.queries.items():
            t = time.perf_counter()
            lists = searcher.ranked_lists(query, retrievers, searcher.depth(k_max, "document"), None)
            results = {m: searcher.combine(lists, m, k_max, per="document") for m in modes}
            seconds += time.perf_counter() - t
            relevant = dataset.qrels[qid]
            for mode, hits in results.items():
                ranking = [Path(h.path).stem for h in hits]
                scores = per_mode[mode]
                for k in ks:
                    scores.setdefault(f"recall@{k}", []).append(recall_at_k(ranking, relevant, k))
                    if qid in dataset.answers:
                        scores.setdefault(f"answer_in_context@{k}", []).append(
                            answer_in_context([h.text for h in hits[:k]], dataset.answers[qid]))
                    if multi:
                        success, ratio = aspect_success(ranking, list(relevant), k)
                        scores.setdefault(f"success@{k}", []).append(success)
                        scores.setdefault(f"success_ratio@{k}", []).append(ratio)
                scores.setdefault("mrr@10", []).append(mrr_at_k(ranking, relevant, 10))
                scores.setdefault("ndcg@10", []).append(ndcg_at_k(ranking, relevant, 10))
            bar.advance(task)
    return {
        "dataset": dataset.name, "fusion": {**searcher.fusion_weights(), "rrf_k": searcher.settings.rrf_k},
        "documents": len(dataset.corpus), "queries": len(dataset.queries),
        "chunks": chunks, "chunks_embedded_now": report.chunks_embedded, "index_seconds": round(index_seconds, 1),
        "retrieval_ms_per_query": round(1000 * seconds / max(1, len(dataset.queries)), 1),
        "modes": {m: {name: float(np.mean(v)) for name, v in scores.items()} for m, scores in per_mode.items()},
    }
