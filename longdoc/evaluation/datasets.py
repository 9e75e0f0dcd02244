"""Retrieval datasets as (corpus, queries, qrels, answers): Quoref, BEIR folders, multi-aspect sets."""
from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LongdocError


@dataclass
class RetrievalDataset:
    name: str
    corpus: dict[str, dict]  # doc id -> {"title": ..., "text": ...}
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}
    answers: dict[str, list[str]] = field(default_factory=dict)  # query id -> gold answers, when known
    corpus_name: str = ""  # datasets over the same corpus share one index (defaults to the name)
    evidence: dict[str, str] = field(default_factory=dict)  # query id -> the passage that answers it, when known

    def __post_init__(self):
        self.corpus_name = self.corpus_name or self.name

    def limited(self, limit: int | None) -> "RetrievalDataset":
        """The first `limit` queries (in id order) over the whole corpus."""
        if not limit:
            return self
        keep = sorted(self.queries, key=_natural)[:limit]
        return RetrievalDataset(self.name, self.corpus, {q: self.queries[q] for q in keep},
                                {q: self.qrels[q] for q in keep}, {q: self.answers[q] for q in keep if q in self.answers},
                                self.corpus_name, {q: self.evidence[q] for q in keep if q in self.evidence})


def _natural(key: str):
    return (len(key), key)


def quoref_from_examples(examples: list[dict], name: str = "quoref") -> RetrievalDataset:
    """From bigbench natural-instructions examples: input 'Passage: ... Question: ...', target [answers].
    Each distinct passage is a document; a question's relevant document is its own passage."""
    corpus, by_text, queries, qrels, answers = {}, {}, {}, {}, {}
    for n, ex in enumerate(examples):
        passage, _, question = ex["input"].rpartition("Question:")
        passage = passage.strip().removeprefix("Passage:").strip()
        if not passage or not question.strip():
            raise LongdocError(f"{name}: example {n} is not 'Passage: ... Question: ...'")
        doc_id = by_text.setdefault(passage, f"p{len(by_text):04d}")
        corpus[doc_id] = {"title": "", "text": passage}
        qid = f"q{n}"
        queries[qid] = question.strip()
        qrels[qid] = {doc_id: 1}
        answers[qid] = [a.strip().rstrip(".") or a for a in ex.get("target", [])]
    return RetrievalDataset(name, corpus, queries, qrels, answers)


def load_quoref(path: str | Path | None = None) -> RetrievalDataset:
    """Quoref (CC BY 4.0) from the bigbench sdist, or from a task.json-shaped file (a test subset)."""
    if path is None:
        from .bigbench import bigbench_task

        path = bigbench_task("natural_instructions/subtask002_quoref_answer_generation")
        name = "quoref"
    else:
        name = f"quoref-{Path(path).stem}"  # its own corpus, so its own index
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise LongdocError(f"{path}: cannot read Quoref task file: {e}") from None
    return quoref_from_examples(data["examples"], name)


def load_beir(folder: str | Path, split: str = "test") -> RetrievalDataset:
    """A BEIR folder: corpus.jsonl ({_id, title, text}), queries.jsonl ({_id, text}), qrels/<split>.tsv."""
    folder = Path(folder)
    try:
        corpus = {}
        for line in (folder / "corpus.jsonl").read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                corpus[str(d["_id"])] = {"title": d.get("title", ""), "text": d["text"]}
        all_queries = {}
        for line in (folder / "queries.jsonl").read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                all_queries[str(d["_id"])] = d["text"]
        qrels: dict[str, dict[str, int]] = {}
        with open(folder / "qrels" / f"{split}.tsv", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    except (OSError, KeyError, json.JSONDecodeError, ValueError) as e:
        raise LongdocError(f"{folder}: not a BEIR dataset folder ({type(e).__name__}: {e})") from None
    queries = {q: all_queries[q] for q in qrels if q in all_queries}
    return RetrievalDataset(folder.name, corpus, queries, {q: qrels[q] for q in queries})


def multi_aspect(base: RetrievalDataset, n_queries: int, aspects: int = 2, seed: int = 0) -> RetrievalDataset:
    """Multi-aspect queries in the spirit of MRAG: each joins `aspects` questions about different
    documents, so a full answer needs all of their documents. Relevant: each aspect's document."""
    rng = random.Random(seed)
    pool = sorted(q for q in base.queries if len(base.qrels[q]) == 1)
    queries, qrels = {}, {}
    while len(queries) < n_queries:
        picked = rng.sample(pool, aspects)
        docs = [next(iter(base.qrels[q])) for q in picked]
        if len(set(docs)) < aspects:
            continue
        qid = f"ma{len(queries)}"
        queries[qid] = " ".join(base.queries[q].rstrip("?") + "?" for q in picked)
        qrels[qid] = {d: 1 for d in docs}
    return RetrievalDataset(f"{base.name}-multiaspect{aspects}", base.corpus, queries, qrels, corpus_name=base.corpus_name)
