"""Pick the hybrid fusion weights on a dev split that mixes lexical, paraphrased and multi-aspect questions,
never on the questions reported:
- Quoref (questions copy the passage's words): dev = questions 2000-2999, reported = the first 2000;
- essay-paraphrase (questions share no content word with their passage): dev = the even-numbered
  questions, reported = the odd-numbered ones;
- MRAG Wikipedia (queries of 1-25 aspects): dev = the even-numbered queries of each aspect count,
  reported = the odd-numbered ones.

Grid over per-mode weights (dense, multi-head, BM25; as ratios, the largest 1), rrf_k and the BM25 floor
(Searcher.bm25_floor: BM25 hits under bm25_min_terms query terms' worth left out). The objective is the
mean of Quoref's MRR@10 (documents), the paraphrase set's MRR@10 (the chunk holding the needle) and
MRAG's weighted success ratio ((2 x exact + category) / 3 over the paper's picks, multi-aspect queries),
from one retrieval pass per question through longdoc's Searcher. Then, on the reported questions: the
best fusion with multi-head, the best without, the shipped default, the previous default (rank fusion
alone) and the old one (chosen on Quoref and MRAG), with paired bootstrap intervals. The fusion here is
hybrid's in an index without head vectors; in one with them, a query searched by its sentences also fuses
multi-head votes at search.weight_multihead_aspects, chosen and measured by bench/aspect_weights.py.

    python bench/fusion_weights.py    # builds the two indexes where `longdoc eval run` keeps them
"""
from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

GRID = [0.0, 0.25, 0.5, 1.0, 2.0]
MULTIHEAD_GRID = [0.0, 0.25, 1.0]
RRF_K = (10, 30, 60)
MIN_TERMS = (0.0, 0.5, 1.0, 1.5)  # Searcher.bm25_floor: BM25 hits under this many query terms' worth left out
MRAG_PICKS = 32


def index_for(data):
    """The dataset's index (built once, where `longdoc eval run` builds it)."""
    from longdoc import Settings, index_paths
    from longdoc.evaluation.registry import write_corpus
    from longdoc.evaluation.runner import safe_name
    from longdoc.models.cache import cache_dir

    workdir = cache_dir("eval", safe_name(data.corpus_name))
    index_paths(workdir / "index", [write_corpus(data, workdir / "corpus")], Settings(head_vectors=True), prune=True)
    return workdir / "index"


def ranked(data, qids, label):
    """Per question: each retriever's own chunk ranking, the chunk -> document map, the ids of the chunks
    holding the question's evidence where the dataset has it (a needle's first or last 40 characters: a
    chunk boundary may cut it), and the query's BM25 term weight and term count (TextIndex.term_weight)."""
    from rich.progress import track

    from longdoc import open_index
    from longdoc.retrieval.bm25 import query_terms

    out = {}
    with open_index(index_for(data)) as ix:
        s = ix.searcher
        paths = {d["id"]: Path(d["path"]).stem for d in ix.documents()}
        ids = {stem: doc_id for doc_id, stem in paths.items()}
        for qid in track(qids, description=f"{label}: retrieval"):
            lists = s.ranked_lists(data.queries[qid], {"dense", "multihead", "bm25"}, s.depth(MRAG_PICKS, "document"), None)
            doc_of = ix.catalog.doc_ids_of(list({c for l in lists.values() for c, _ in l}))
            gold = set()
            if qid in data.evidence:
                needle = data.evidence[qid]
                chunks = ix.chunks(ids[next(iter(data.qrels[qid]))])
                gold = {c["id"] for c in chunks if needle[:40] in c["text"] or needle[-40:] in c["text"]}
            terms = query_terms(data.queries[qid])
            out[qid] = (lists, doc_of, gold, (ix.text_index.term_weight(terms), len(terms)))
    return out, paths


def convex_fusion(lists, alpha: float, bm25) -> list[tuple[int, float]]:
    """Another fusion family, measured and not shipped: alpha x dense cosine + (1 - alpha) x BM25 score
    over the query's BM25 ceiling, the score of a chunk holding every query term as often as BM25
    rewards (term weight x term count). A chunk missing from the dense list gets its lowest cosine;
    from BM25, 0."""
    unit, n_terms = bm25
    ceiling = unit * n_terms
    dense, scores_bm25 = dict(lists["dense"]), dict(lists["bm25"])
    floor = min(dense.values()) if dense else 0.0
    scores = {c: alpha * dense.get(c, floor) + (1 - alpha) * (scores_bm25.get(c, 0.0) / ceiling if ceiling > 0 else 0.0)
              for c in dense.keys() | scores_bm25.keys()}
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def rrf(weights: dict, rrf_k: int, min_terms: float = 0.0):
    """The shipped fusion (retrieval/fusion.py, with Searcher.bm25_floor) as fuse(lists, bm25) -> [(chunk id, score)]."""
    from longdoc.retrieval.fusion import reciprocal_rank_fusion

    return lambda lists, bm25: reciprocal_rank_fusion(lists, weights, rrf_k, {"bm25": min_terms * bm25[0]})[0]


def rankings(cached, paths, fuse) -> dict[str, list[str]]:
    """Per question, the documents in fused order."""
    return {qid: list(dict.fromkeys(paths[doc_of[c]] for c, _ in fuse(lists, bm25) if c in doc_of))
            for qid, (lists, doc_of, _, bm25) in cached.items()}


def passage_scores(cached, fuse) -> dict[str, float]:
    """MRR@10 of the first chunk holding the question's evidence, in fused order."""
    out = {}
    for qid, (lists, _, gold, bm25) in cached.items():
        rank = next((r for r, (c, _) in enumerate(fuse(lists, bm25)[:10], 1) if c in gold), None)
        out[qid] = 1 / rank if rank else 0.0
    return out


def convex_family(evaluate, row, dev, test, console) -> dict:
    """The convex fusion at each alpha on the dev split, and its best on the reported questions: printed
    beside the shipped family, not used to choose the default."""
    from rich.table import Table

    rows = {alpha: row(*evaluate(lambda lists, c, a=alpha: convex_fusion(lists, a, c), *dev))
            for alpha in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)}
    best = max(rows, key=lambda a: rows[a]["objective"])
    held = row(*evaluate(lambda lists, c: convex_fusion(lists, best, c), *test))
    table = Table(title="Convex fusion (not shipped): alpha x dense cosine + (1 - alpha) x BM25 / its query ceiling")
    for col in ("alpha", "split", "Quoref MRR@10", "paraphrase MRR@10", "MRAG weighted ratio", "objective"):
        table.add_column(col)
    for alpha, r in [*rows.items(), (best, held)]:
        table.add_row(str(alpha), "reported" if r is held else "dev", *(f"{r[k]:.3f}" for k in
                      ("quoref_mrr@10", "paraphrase_mrr@10", "mrag_ratio", "objective")))
    console.print(table)
    return {"dev": rows, "best_alpha": best, "reported": held}


def quoref_scores(data, ranks) -> dict[str, float]:
    from longdoc.evaluation.metrics import mrr_at_k

    return {q: mrr_at_k(r, data.qrels[q], 10) for q, r in ranks.items()}


def mrag_scores(data, ranks) -> dict[str, float]:
    from longdoc.evaluation import mrag

    scores = mrag.score_rankings(data, {q: r for q, r in ranks.items() if mrag.aspect_count(q) > 1})
    return {q: (2 * s["success_ratio"] + s["category_success_ratio"]) / 3 for q, s in scores.items()}


def main():
    from rich.console import Console
    from rich.table import Table

    from common import write_result
    from longdoc.evaluation.bootstrap import bootstrap_ci, paired_difference
    from longdoc.evaluation.datasets import load_quoref
    from longdoc.evaluation.mrag import load_mrag
    from longdoc.evaluation.qa_datasets import load_essay_paraphrase

    quoref, wiki, para = load_quoref(), load_mrag("mrag-wikipedia"), load_essay_paraphrase()
    order = sorted(quoref.queries, key=lambda q: int(q[1:]))
    q_dev, q_test = order[2000:3000], order[:2000]
    m_dev = [q for q in wiki.queries if int(q[-2:]) % 2 == 0]
    m_test = [q for q in wiki.queries if int(q[-2:]) % 2 == 1]
    p_dev = [q for q in para.queries if int(q.split("-")[1]) % 2 == 0]
    p_test = [q for q in para.queries if int(q.split("-")[1]) % 2 == 1]
    q_cache, q_paths = ranked(quoref, q_dev + q_test, "quoref")
    m_cache, m_paths = ranked(wiki, m_dev + m_test, "mrag-wikipedia")
    p_cache, _ = ranked(para, p_dev + p_test, "essay-paraphrase")

    def evaluate(fuse, q_ids, m_ids, p_ids):
        q = quoref_scores(quoref, rankings({i: q_cache[i] for i in q_ids}, q_paths, fuse))
        m = mrag_scores(wiki, rankings({i: m_cache[i] for i in m_ids}, m_paths, fuse))
        p = passage_scores({i: p_cache[i] for i in p_ids}, fuse)
        return q, m, p

    def row(q, m, p) -> dict:
        means = {"quoref_mrr@10": float(np.mean(list(q.values()))), "mrag_ratio": float(np.mean(list(m.values()))),
                 "paraphrase_mrr@10": float(np.mean(list(p.values())))}
        return {**means, "objective": sum(means.values()) / 3}

    def ratios(wd, wm, wb):
        """Rank fusion depends only on the weights' ratios: the largest weight is 1."""
        top = max(wd, wm, wb)
        return {"dense": wd / top, "multihead": wm / top, "bm25": wb / top}

    grid, seen = [], set()
    for wd, wm, wb, rrf_k, min_terms in itertools.product(GRID, MULTIHEAD_GRID, GRID, RRF_K, MIN_TERMS):
        if not max(wd, wm, wb) or (min_terms and not wb):
            continue
        weights = ratios(wd, wm, wb)
        key = (*weights.values(), rrf_k, min_terms)
        if key in seen:
            continue
        seen.add(key)
        grid.append({**{f"weight_{k}": v for k, v in weights.items()}, "rrf_k": rrf_k, "bm25_min_terms": min_terms,
                     **row(*evaluate(rrf(weights, rrf_k, min_terms), q_dev, m_dev, p_dev))})
    grid.sort(key=lambda r: -r["objective"])
    best = grid[0]
    no_mh = next(r for r in grid if r["weight_multihead"] == 0)
    with_mh = next(r for r in grid if r["weight_multihead"] > 0)

    def setting(wd, wm, wb, rrf_k, min_terms):
        want = (*ratios(wd, wm, wb).values(), rrf_k, min_terms)
        return next(r for r in grid if (r["weight_dense"], r["weight_multihead"], r["weight_bm25"], r["rrf_k"],
                                        r["bm25_min_terms"]) == want)

    from longdoc import Settings

    shipped = Settings().search
    default = setting(shipped.weight_dense, shipped.weight_multihead, shipped.weight_bm25, shipped.rrf_k,
                      shipped.bm25_min_terms)
    old = setting(0.25, 0, 2.0, 10, 0.0)  # chosen on Quoref and MRAG alone
    previous = setting(1.0, 0, 0.5, 10, 0.0)  # session 13: rank fusion alone, with the paraphrase set
    dense_only = setting(1.0, 0, 0, 10, 0.0)

    table = Table(title=f"Fusion on the dev split (Quoref {len(q_dev)}, paraphrase {len(p_dev)}, "
                        f"MRAG {len(m_dev)} queries), by the mean objective")
    for col in ("weights dense/multihead/bm25", "rrf_k", "BM25 min terms", "Quoref MRR@10", "paraphrase MRR@10",
                "MRAG weighted ratio", "objective"):
        table.add_column(col)
    labelled = [("best", grid[0]), ("2nd", grid[1]), ("3rd", grid[2]), ("best with multihead", with_mh),
                ("best without multihead", no_mh), ("the default (longdoc/config.py)", default),
                ("best with no BM25 floor", next(r for r in grid if not r["bm25_min_terms"])),
                ("previous default (rank fusion alone)", previous), ("old default (Quoref and MRAG)", old),
                ("dense alone", dense_only)]
    for label, r in labelled:
        table.add_row(f"{label}: {r['weight_dense']}/{r['weight_multihead']}/{r['weight_bm25']}", str(r["rrf_k"]),
                      str(r["bm25_min_terms"]), f"{r['quoref_mrr@10']:.3f}", f"{r['paraphrase_mrr@10']:.3f}",
                      f"{r['mrag_ratio']:.3f}", f"{r['objective']:.3f}")
    console = Console(width=190)
    console.print(table)

    def fusion_of(r):
        return rrf({m: r[f"weight_{m}"] for m in ("dense", "multihead", "bm25")}, r["rrf_k"], r["bm25_min_terms"])

    sets = ("quoref", "mrag", "paraphrase")  # evaluate's order
    shown = ("quoref", "paraphrase", "mrag")  # the tables' columns
    reported = {}
    for label, r in (("best", best), ("best with multihead", with_mh), ("best without multihead", no_mh),
                     ("the default", default), ("previous default", previous), ("old default", old), ("dense alone", dense_only)):
        reported[label] = {"config": r, **dict(zip(sets, evaluate(fusion_of(r), q_test, m_test, p_test)))}
    multi = len(reported["best"]["mrag"])  # MRAG's ratio is scored on multi-aspect queries only
    report = Table(title=f"Reported questions (Quoref {len(q_test)}, paraphrase {len(p_test)}, MRAG {multi} "
                         f"multi-aspect), 95% bootstrap intervals")
    for col in ("fusion", "Quoref MRR@10", "paraphrase MRR@10", "MRAG weighted ratio"):
        report.add_column(col)
    summary = {}
    for label, r in reported.items():
        summary[label] = {"config": r["config"], **{name: str(bootstrap_ci(list(r[name].values()))) for name in sets}}
        report.add_row(label, *(summary[label][name] for name in shown))
    for label, (a, b) in {"with multihead - without (paired)": ("best without multihead", "best with multihead"),
                          "best - the default (paired)": ("the default", "best"),
                          "best - previous default (paired)": ("previous default", "best"),
                          "best - old default (paired)": ("old default", "best")}.items():
        summary[label] = {name: str(paired_difference(reported[a][name], reported[b][name])) for name in sets}
        report.add_row(label, *(summary[label][name] for name in shown))
    console.print(report)
    convex = convex_family(evaluate, row, (q_dev, m_dev, p_dev), (q_test, m_test, p_test), console)
    dev = {"quoref": len(q_dev), "mrag": len(m_dev), "paraphrase": len(p_dev)}
    print(f"wrote {write_result('fusion_weights', {'dev': dev, 'best': best, 'reported': summary, 'grid': grid, 'convex': convex})}")


if __name__ == "__main__":
    main()
