"""Multi-head votes in hybrid for queries searched by their sentences (search.weight_multihead_aspects),
through longdoc's own Searcher, on indexes built with head vectors, per packaged embedder:

- MRAG Wikipedia (every query has 3 or more sentences, so every one is split): the weight is chosen on
  the dev split (even-numbered queries of each aspect count) from a grid, the other fusion settings at
  their defaults, and reported on the odd-numbered queries against weight 0 (hybrid without the heads),
  paired, with a 95% bootstrap interval. The score is bench/fusion_weights.py's: MRAG's weighted success
  ratio (2 x exact + category) / 3 over the paper's picks, multi-aspect queries.
- Quoref's reported questions (the first 2,000; bench/fusion_weights.py's split): the weight changes only
  the questions longdoc splits (search.aspect_sentences: 3 or more sentences), so those are searched both ways, and the paired
  difference is over all 2,000 (the rest score the same by construction; tests/test_retrieval.py checks
  that an unsplit query's weights do not change).
- python-docs-qa's 24 questions each after its two sentences of context (bench/long_queries.py), over the
  whole Python manual in an index with the default embedder's head vectors: one need, yet split, so the
  weight reaches them. Hybrid MRR@10 of the answer's file and of its evidence chunk, chosen weight against 0,
  paired. (The manual would take hours to embed with mpnet here.)

    python bench/aspect_weights.py [--embedders all-MiniLM-L6-v2,all-mpnet-base-v2] [--no-context]
Needs $LONGDOC_MRAG_DIR. Builds each index once (MRAG: minutes; Quoref with mpnet and the manual with
MiniLM's heads: 25-45 minutes each on 2 cores)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from common import write_result  # noqa: E402
from fusion_weights import MRAG_PICKS, mrag_scores, quoref_scores  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)


def index_for(data, embedder: str) -> Path:
    """The dataset's index with head vectors; the default embedder's is the one bench/fusion_weights.py builds."""
    from longdoc import Settings, index_paths
    from longdoc.config import DEFAULT_EMBEDDER
    from longdoc.evaluation.registry import write_corpus
    from longdoc.evaluation.runner import safe_name
    from longdoc.models.cache import cache_dir

    name = safe_name(data.corpus_name)
    if embedder != DEFAULT_EMBEDDER or name != "quoref":
        name = f"{name}-{embedder}"
    workdir = cache_dir("eval", name)
    t0 = time.perf_counter()
    index_paths(workdir / "index", [write_corpus(data, workdir / "corpus")], Settings(embedder=embedder, head_vectors=True),
                prune=True)
    print(f"{data.corpus_name}, {embedder}: index ready in {time.perf_counter() - t0:.0f} s", flush=True)
    return workdir / "index"


def rankings_by_weight(data, qids: list[str], embedder: str, label: str) -> dict[float, dict[str, list[str]]]:
    """Per weight_multihead_aspects: each question's documents in hybrid's order, from one retrieval pass
    (Searcher.ranked_lists with every retriever), fused as Searcher.search fuses."""
    from rich.progress import track

    from longdoc import open_index

    out: dict[float, dict[str, list[str]]] = {w: {} for w in WEIGHTS}
    with open_index(index_for(data, embedder)) as ix:
        s = ix.searcher
        stem = {d["id"]: Path(d["path"]).stem for d in ix.documents()}
        base = s.settings
        depth = s.depth(MRAG_PICKS, "document")
        for qid in track(qids, description=f"{label}, {embedder}"):
            query = data.queries[qid]
            lists = s.ranked_lists(query, {"dense", "multihead", "bm25"}, depth, None)
            floor = s.bm25_floor(query)
            for w in WEIGHTS:
                s.settings = replace(base, weight_multihead_aspects=w)
                hits = s.combine(lists, "hybrid", MRAG_PICKS, "document", floor, s.fusion_weights(query))
                out[w][qid] = [stem[h.doc_id] for h in hits]
            s.settings = base
    return out


def mean(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores)


def run(embedder: str) -> dict:
    from longdoc.config import SearchSettings
    from longdoc.evaluation.bootstrap import bootstrap_ci, paired_difference
    from longdoc.evaluation.datasets import load_quoref
    from longdoc.evaluation.mrag import load_mrag
    from longdoc.retrieval.aspects import query_parts

    wiki, quoref = load_mrag("mrag-wikipedia"), load_quoref()
    dev = [q for q in wiki.queries if int(q[-2:]) % 2 == 0]
    test = [q for q in wiki.queries if int(q[-2:]) % 2 == 1]
    ranked = rankings_by_weight(wiki, dev + test, embedder, "MRAG")
    by_weight = {w: mrag_scores(wiki, r) for w, r in ranked.items()}
    dev_scores = {w: mean({q: s for q, s in scores.items() if q in dev}) for w, scores in by_weight.items()}
    chosen = max(WEIGHTS, key=lambda w: (dev_scores[w], -w))  # ties: the smaller weight
    reported = {w: {q: s for q, s in scores.items() if q in test} for w, scores in by_weight.items()}

    order = sorted(quoref.queries, key=lambda q: int(q[1:]))[:2000]
    split = [q for q in order if len(query_parts(quoref.queries[q], SearchSettings().aspect_sentences)) > 1]
    q_ranked = rankings_by_weight(quoref, split, embedder, "Quoref, split questions") if split else {}
    q_without = quoref_scores(quoref, q_ranked[0.0]) if split else {}
    q_with = quoref_scores(quoref, q_ranked[chosen]) if split else {}
    # The unsplit questions rank the same with and without the weight: a difference of 0 each.
    q_diff = {q: q_with.get(q, 0.0) - q_without.get(q, 0.0) for q in order}

    result = {"embedder": embedder, "dev_queries": len(dev), "reported_queries": len(reported[0.0]),
              "dev": {str(w): s for w, s in dev_scores.items()}, "chosen_on_dev": chosen,
              "mrag_reported": {str(w): str(bootstrap_ci(list(r.values()))) for w, r in reported.items()},
              "mrag_chosen_minus_0": str(paired_difference(reported[0.0], reported[chosen])),
              "quoref_reported": len(order), "quoref_split": split,
              "quoref_split_mrr@10": {"0": q_without, str(chosen): q_with},
              "quoref_chosen_minus_0": str(bootstrap_ci(list(q_diff.values())))}
    print(f"\n{embedder}: MRAG weighted success ratio by weight_multihead_aspects (dev / reported):")
    for w in WEIGHTS:
        print(f"  {w:4}: {dev_scores[w]:.3f} / {result['mrag_reported'][str(w)]}" + ("  <- chosen on dev" if w == chosen else ""))
    print(f"  MRAG reported, {chosen} - 0 (paired): {result['mrag_chosen_minus_0']}")
    print(f"  Quoref reported: {len(split)} of {len(order)} questions split; MRR@10 {chosen} - 0 (paired, all "
          f"{len(order)}): {result['quoref_chosen_minus_0']}")
    return result


def context_questions(chosen: float) -> dict:
    from long_queries import mrr_by_question, python_docs_qa, with_context

    from longdoc import Settings, index_paths, open_index
    from longdoc.evaluation.bootstrap import bootstrap_ci, paired_difference
    from longdoc.evaluation.corpora import corpus_path
    from longdoc.models.cache import cache_dir

    index = cache_dir("bench", "python-manual-index-heads")
    index_paths(index, [corpus_path("python-docs")], Settings(head_vectors=True))  # a no-op once built
    rows = python_docs_qa()
    scores = {}
    for w in (0.0, chosen):
        with open_index(index, settings=Settings().replace(search_weight_multihead_aspects=w)) as ix:
            scores[w] = mrr_by_question(ix, rows, with_context)
    out = {str(w): {k: str(bootstrap_ci(list(v.values()))) for k, v in s.items()} for w, s in scores.items()}
    out["chosen_minus_0"] = {k: str(paired_difference(scores[0.0][k], scores[chosen][k])) for k in scores[0.0]}
    print(f"\npython-docs-qa with context over the manual (MiniLM heads), MRR@10 file / evidence: "
          f"0: {out['0.0']['file']} / {out['0.0']['evidence']}; {chosen}: {out[str(chosen)]['file']} / "
          f"{out[str(chosen)]['evidence']}; {chosen} - 0 (paired): {out['chosen_minus_0']['file']} / "
          f"{out['chosen_minus_0']['evidence']}")
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedders", default="all-MiniLM-L6-v2,all-mpnet-base-v2")
    parser.add_argument("--no-context", action="store_true",
                        help="skip python-docs-qa over the manual (its index takes 25-45 minutes to build)")
    args = parser.parse_args()
    from longdoc.config import DEFAULT_EMBEDDER

    results = [run(name) for name in args.embedders.split(",")]
    default = next((r for r in results if r["embedder"] == DEFAULT_EMBEDDER), None)
    context = context_questions(default["chosen_on_dev"]) if default and not args.no_context else None
    print(f"wrote {write_result('aspect_weights', {'results': results, 'context_questions': context})}")


if __name__ == "__main__":
    main()
