"""MRAG's multi-aspect benchmark (Besta et al. 2024, "Multi-Head RAG"): Wikipedia, legal and chemical-plant
accident documents in 25 categories, with queries of 1 to 25 aspects, read from the authors' files and scored
with the paper's metrics.

The package ships no data: $LONGDOC_MRAG_DIR names the folder holding the authors' files
(wikipedia_articles_v1.json.bz2, legal_documents_v1.tar.bz2, ..., paper_results.tar.bz2).

- wikipedia: an aspect is one article (by title); its category is the article's label;
- legal, chem: an aspect is a topic, a file of 10 documents inside a category folder; fetching any of
  its documents finds the aspect. The authors' files lack 5 of the 625 legal topics the queries name
  (some held a "/" in their names); those aspects are left out of their queries.

Metrics, per query with n aspects, after fetching p documents: the success ratio (the share of aspects
found) and the category success ratio (the share of the aspects' categories among those fetched). The
paper's figures average them over the queries and over p = n+1, n+3, ..., n+21 (at most 32 fetched: the
authors' results stop there)."""
from __future__ import annotations

import bz2
import json
import os
import tarfile
from pathlib import Path
from statistics import fmean

from ..errors import LongdocError
from .datasets import RetrievalDataset

ENV = "LONGDOC_MRAG_DIR"
_FILES = {  # set -> (documents, queries); the wikipedia ones are bz2 JSON, the others bz2 tarballs
    "mrag-wikipedia": ("wikipedia_articles_v1.json.bz2", "wikipedia_queries_v1.json.bz2"),
    "mrag-legal": ("legal_documents_v1.tar.bz2", "legal_queries.tar.bz2"),
    "mrag-chem": ("chem_documents_v1.tar.bz2", "chem_queries.tar.bz2"),
}
SETS = tuple(_FILES)
# The authors' per-query results for each set: file stem in paper_results.tar.bz2 -> the embedder's name.
PAPER_RUNS = {"mrag-wikipedia": {"25_random_sfr": "SFR-Embedding-Mistral", "25_random_e5": "e5-mistral-7b-instruct"},
              "mrag-legal": {"25_random_sfr_legal": "SFR-Embedding-Mistral"},
              "mrag-chem": {"25_random_sfr_chemical_manufacturing": "SFR-Embedding-Mistral"}}
MAX_PICKS = 32


def mrag_dir(root: str | Path | None = None) -> Path:
    folder = root or os.environ.get(ENV)
    if not folder:
        raise LongdocError(f"the MRAG data is not shipped with longdoc: set {ENV} to the folder holding the "
                           "authors' files (wikipedia_articles_v1.json.bz2, ...)")
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise LongdocError(f"{folder} ({ENV}): no such folder")
    return folder


def present(name: str) -> bool:
    folder = os.environ.get(ENV)
    return bool(folder) and all((Path(folder) / f).exists() for f in _FILES[name])


def _read_json(path: Path):
    try:
        with bz2.open(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, EOFError, ValueError) as e:
        raise LongdocError(f"{path}: cannot read MRAG data ({type(e).__name__}: {e})") from None


def _tar_json(path: Path) -> dict[str, object]:
    """Every .json member of a bz2 tarball by its path inside."""
    try:
        with tarfile.open(path, "r:bz2") as tar:
            return {m.name: json.load(tar.extractfile(m)) for m in tar.getmembers()
                    if m.isfile() and m.name.endswith(".json")}
    except (OSError, EOFError, tarfile.TarError, ValueError) as e:
        raise LongdocError(f"{path}: cannot read MRAG data ({type(e).__name__}: {e})") from None


def _documents(name: str, path: Path) -> list[dict]:
    """[{title, text, label (category), topic (what an aspect names)}] in the authors' order."""
    if name == "mrag-wikipedia":
        return [{"title": a["title"], "text": a["text"], "label": a["label"], "topic": a["title"]}
                for a in _read_json(path)]
    docs = []
    for member, items in sorted(_tar_json(path).items()):
        category = Path(member).parent.name
        topic = Path(member).stem.removeprefix(category + "_")
        docs += [{"title": d["title"], "text": d["text"], "label": category, "topic": topic} for d in items]
    return docs


def _queries(name: str, path: Path) -> list[tuple[list[str], str]]:
    """[(aspects, text)] grouped by number of aspects, in the authors' order."""
    if name == "mrag-wikipedia":
        return [(q["topics"], q["text"]) for q in _read_json(path)]
    generated = next((v for k, v in _tar_json(path).items() if k.endswith("generated_random.json")), None)
    if generated is None:
        raise LongdocError(f"{path}: no generated_random.json inside")
    return [(q["related"], q["text"]) for n in sorted(generated, key=int) for q in generated[n]]


def load_mrag(name: str, root: str | Path | None = None) -> RetrievalDataset:
    """An MRAG set as a RetrievalDataset: each corpus entry carries its `label` and `topic`; a query's
    relevant documents are all documents of its aspects. Query ids say the aspect count: n10-03."""
    if name not in _FILES:
        raise LongdocError(f"unknown MRAG set {name!r}; choose one of {', '.join(SETS)}")
    folder = mrag_dir(root)
    doc_file, query_file = (folder / f for f in _FILES[name])
    for f in (doc_file, query_file):
        if not f.exists():
            raise LongdocError(f"{f}: missing ({name} needs it; {ENV}={folder})")
    corpus = {f"d{i:05d}": d for i, d in enumerate(_documents(name, doc_file))}
    by_topic: dict[str, list[str]] = {}
    for doc_id, d in corpus.items():
        by_topic.setdefault(d["topic"], []).append(doc_id)
    queries, qrels, seen = {}, {}, {}
    for aspects, text in _queries(name, query_file):
        n = len(aspects)
        qid = f"n{n:02d}-{seen.setdefault(n, 0):02d}"
        seen[n] += 1
        found = [a for a in aspects if a in by_topic]
        if found:  # the few aspects no document has are left out (see the module's docstring)
            queries[qid] = text
            qrels[qid] = {doc_id: 1 for a in found for doc_id in by_topic[a]}
    return RetrievalDataset(name, corpus, queries, qrels)


def aspects_of(data: RetrievalDataset, qid: str) -> set[str]:
    return {data.corpus[d]["topic"] for d in data.qrels[qid]}


def paper_picks(n: int) -> list[int]:
    """Documents fetched at which the paper reports n-aspect queries: n+1, n+3, ..., n+21, at most 32."""
    return [p for p in range(n + 1, n + 22, 2) if p <= MAX_PICKS]


def aspect_ratios(data: RetrievalDataset, qid: str, ranking: list[str], picks: list[int]) -> tuple[list[float], list[float]]:
    """(success ratio, category success ratio) of one query's document ranking at each pick."""
    wanted = aspects_of(data, qid)
    categories = {data.corpus[d]["label"] for d in data.qrels[qid]}
    rat, cat = [], []
    for p in picks:
        fetched = [data.corpus[d] for d in ranking[:p]]
        rat.append(len(wanted & {d["topic"] for d in fetched}) / len(wanted))
        cat.append(len(categories & {d["label"] for d in fetched}) / len(categories))
    return rat, cat


def aspect_count(qid: str) -> int:
    return int(qid[1:3])


def _scores(rat_at, cat_at, n: int) -> dict[str, float]:
    """One query's scores from its success ratio and category success ratio at p fetched (rat_at(p), cat_at(p)):
    each averaged over the paper's picks, and each at exactly n fetched."""
    picks = paper_picks(n)
    return {"success_ratio": fmean(rat_at(p) for p in picks), "category_success_ratio": fmean(cat_at(p) for p in picks),
            "success_ratio@n": rat_at(n), "category_success_ratio@n": cat_at(n)}


def score_rankings(data: RetrievalDataset, rankings: dict[str, list[str]]) -> dict[str, dict[str, float]]:
    """Per query, the paper's scores of its document ranking (see _scores)."""
    scores = {}
    for qid, ranking in rankings.items():
        n = aspect_count(qid)
        picks = [n, *paper_picks(n)]
        rat, cat = (dict(zip(picks, values)) for values in aspect_ratios(data, qid, ranking, picks))
        scores[qid] = _scores(rat.__getitem__, cat.__getitem__, n)
    return scores


def paper_scores(name: str, root: str | Path | None = None) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """The authors' own per-query results, scored as score_rankings scores ours:
    {embedder: {strategy: {qid: scores}}}; qids match load_mrag's (the same queries in the same order).
    Their files hold rat[p - 1][query] for p = 1..32 fetched."""
    runs = {Path(k).stem: v for k, v in _tar_json(mrag_dir(root) / "paper_results.tar.bz2").items()}
    out = {}
    for stem, model in PAPER_RUNS[name].items():
        out[model] = {}
        for strategy, by_n in runs[stem].items():
            per = {}
            for n, m in by_n.items():
                n = int(n)
                for i in range(len(m["rat"][0])):
                    per[f"n{n:02d}-{i:02d}"] = _scores(lambda p: m["rat"][p - 1][i],
                                                       lambda p: m["category_rat"][p - 1][i], n)
            out[model][strategy] = per
    return out


def by_aspects(scores: dict[str, dict[str, float]], qids=None) -> dict[int, dict[str, float]]:
    """Mean of each score per aspect count, over qids (default: all scored)."""
    groups: dict[int, list[dict]] = {}
    for qid in qids if qids is not None else scores:
        groups.setdefault(aspect_count(qid), []).append(scores[qid])
    return {n: {k: fmean(s[k] for s in rows) for k in rows[0]} | {"queries": len(rows)}
            for n, rows in sorted(groups.items())}
