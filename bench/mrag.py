"""MRAG's own benchmark with longdoc's packaged embedders: standard RAG (the dense embedding) against MRAG
(per-head votes), per number of aspects, beside the authors' results on the same queries.

Each document and query is embedded whole, as the paper does (title and text, truncated to the embedder's
window). The multi-head vectors of every layer are captured in the same pass (each layer's attention output, before
its output projection, mean-pooled per head). The sweep picks, on a dev split only (the even-numbered
queries of every aspect count), the layer, the head weights (the paper's, uniform, or learned on the dev
split), the per-head vote depth and the vote (MRAG's 2^-rank, or the weighted sum of per-head cosines);
the tables report the odd-numbered (held-out) queries.

Then longdoc's own head vectors (indexing/embedder.py, storage/vectors.py): each head pooled three ways (mean,
max, the first token), all three voting, each head vector less the documents' mean for that head; the
table beside it is the dev split's choice among the poolings, with and without centring.

Beside it, both searched the way longdoc searches a query of several sentences (retrieval/aspects.py): each
sentence embedded on its own, the sentences' rankings merged by best rank.

python bench/mrag.py [--embedders all-minilm-l6-v2,all-mpnet-base-v2] [--sets mrag-wikipedia] [--poolings-only]
Needs $LONGDOC_MRAG_DIR (../shared/data/mrag)."""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from mrag_heads import longdoc_embedder, pooled_vectors, poolings, print_poolings, run_poolings  # noqa: E402
from mrag_scoring import (PICKS, head_sims, head_votes, learned_weights, multihead,  # noqa: E402
                          objective, rankings, standard, table, unit)

from longdoc.config import SearchSettings  # noqa: E402
from longdoc.evaluation import mrag  # noqa: E402
from longdoc.indexing.embedder import attention_output  # noqa: E402
from longdoc.indexing.head_weights import head_means, head_weights  # noqa: E402
from longdoc.models.cache import cache_dir  # noqa: E402
from longdoc.models.embedders import load_embedder_model  # noqa: E402
from longdoc.retrieval.aspects import merge_by_best_rank, query_parts  # noqa: E402

DEPTHS = (8, 32, 128)
WEIGHTS = ("paper", "uniform", "learned")
FUSION = (0.25, 0.5, 1.0, 2.0, 4.0)  # multihead's weight in its fusion with dense
VOTES = ("rank", "cosine")


def embed(name: str, texts: list[str], batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(dense (N, D), heads (layers, N, H, d)): the sentence embedding and every layer's per-head vectors,
    each text truncated to the embedder's window. (Reading a longer text in windows and averaging their
    mean-pooled vectors by token count scored lower on the dev split: 0.439 against 0.459 for dense,
    MiniLM.)"""
    model = load_embedder_model(name)
    backbone = model.model
    layers, heads = backbone.config.num_hidden_layers, backbone.config.num_attention_heads
    captured: list[torch.Tensor] = []
    for layer in range(layers):
        attention_output(backbone, layer).register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
    dense = np.zeros((len(texts), model.dim), np.float32)
    per_head = np.zeros((layers, len(texts), heads, backbone.config.hidden_size // heads), np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    t0 = time.perf_counter()
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        features = model.tokenize([texts[i] for i in idx])
        captured.clear()
        dense[idx] = model(features).float().numpy()
        mask = features["attention_mask"].unsqueeze(-1).float()
        for layer, ctx in enumerate(captured):
            pooled = (ctx * mask).sum(1) / mask.sum(1)
            per_head[layer, idx] = pooled.view(len(idx), heads, -1).numpy()
        print(f"\r{name}: {start + len(idx)}/{len(texts)} texts, {time.perf_counter() - t0:.0f} s", end="", flush=True)
    print()
    return dense, per_head


def vectors(name: str, data, set_name: str):
    """Cached embeddings of the set's documents and queries."""
    path = cache_dir("bench", "mrag") / f"{set_name}-{name}.npz"
    if path.exists():
        z = np.load(path)
        return z["doc_dense"], z["doc_heads"], z["q_dense"], z["q_heads"]
    docs = [f"{d['title']}\n\n{d['text']}" for d in data.corpus.values()]
    doc_dense, doc_heads = embed(name, docs)
    q_dense, q_heads = embed(name, list(data.queries.values()))
    np.savez(path, doc_dense=doc_dense, doc_heads=doc_heads, q_dense=q_dense, q_heads=q_heads)
    return doc_dense, doc_heads, q_dense, q_heads


def sentence_parts(data) -> tuple[np.ndarray, list[str]]:
    """Every query's sentences as longdoc splits them (query_parts after the whole query; a query searched
    whole: itself): (owner query index (P,), texts)."""
    settings = SearchSettings()
    owner, texts = [], []
    for i, query in enumerate(data.queries.values()):
        parts = query_parts(query, settings.aspect_sentences)
        parts = parts[1:] or parts  # the whole query's vectors are vectors()' own
        owner += [i] * len(parts)
        texts += parts
    return np.array(owner), texts


def sentence_vectors(name: str, data, set_name: str):
    """Cached embeddings of every query's sentences: (owner query index (P,), dense (P, D), last layer's
    mean-pooled heads (P, H, d), longdoc's head vectors (P, P*H, d))."""
    path = cache_dir("bench", "mrag") / f"{set_name}-{name}-sentences.npz"
    z = dict(np.load(path)) if path.exists() else {}
    owner, texts = sentence_parts(data)
    if "heads" not in z:
        z["dense"], heads = embed(name, texts)
        z["heads"] = heads[-1]
    if "pooled" not in z:
        z["pooled"] = longdoc_embedder(name).encode(texts)[1]
    np.savez(path, owner=owner, **{k: v for k, v in z.items() if k != "owner"})
    return owner, z["dense"], z["heads"], z["pooled"]


def by_sentences(part_scores: np.ndarray, owner: np.ndarray, whole_scores: np.ndarray) -> np.ndarray:
    """(Q, PICKS): each query's whole ranking (by its row of the (Q, N) whole_scores) and its sentences'
    (by their (P, N) part_scores) merged by best rank, as longdoc merges them."""
    out = []
    for q in range(len(whole_scores)):
        scores = np.concatenate([whole_scores[q:q + 1], part_scores[owner == q]])
        lists = [[(int(d), float(row[d])) for d in np.argsort(-row)] for row in scores]
        out.append([d for d, _ in merge_by_best_rank(lists)[:PICKS]])
    return np.array(out)


def fused(first: np.ndarray, second: np.ndarray, weight: float, n: int, k: int = 60) -> np.ndarray:
    """(Q, PICKS) reciprocal-rank fusion of two rankings (Q, keep) over n documents, the second weighted."""
    scores = np.zeros((first.shape[0], n))
    rows = np.arange(first.shape[0])[:, None]
    ranks = 1.0 / (k + np.arange(first.shape[1]))
    np.add.at(scores, (rows, first), ranks)
    np.add.at(scores, (rows, second), weight * ranks)
    return np.argsort(-scores, axis=1)[:, :PICKS]


def weights_for(weighting: str, heads: np.ndarray, sims: np.ndarray, relevant, dev, depth: int) -> np.ndarray:
    """Head weights: the paper's (from the documents' head vectors at this layer), uniform, or learned on dev."""
    if weighting == "paper":
        return head_weights(heads)
    if weighting == "uniform":
        return np.ones(sims.shape[0])
    return learned_weights(sims, relevant, dev, depth)


def is_paper_config(s: dict, layers: int) -> bool:
    """MRAG as the paper runs it: the last layer, the paper's weights, 2^-rank votes over each head's top 32."""
    return (s["layer"] == layers - 1 and s["weights"] == "paper" and s["depth"] == PICKS and s["vote"] == "rank"
            and "fusion" not in s)


def run(set_name: str, name: str) -> dict:
    data = mrag.load_mrag(set_name)
    doc_dense, doc_heads, q_dense, q_heads = vectors(name, data, set_name)
    qids = list(data.queries)
    dev = [i for i, q in enumerate(qids) if int(q[-2:]) % 2 == 0]
    test = [i for i, q in enumerate(qids) if int(q[-2:]) % 2 == 1]
    index_of = {d: i for i, d in enumerate(data.corpus)}
    relevant = [{index_of[d] for d in data.qrels[q]} for q in qids]
    base = mrag.score_rankings(data, rankings(data, standard(doc_dense, q_dense)))
    sweep = []
    for layer in range(doc_heads.shape[0]):
        sims = head_sims(doc_heads[layer], q_heads[layer])
        for weighting, depth, vote in itertools.product(WEIGHTS, DEPTHS, VOTES):
            if vote == "cosine" and depth != DEPTHS[0]:
                continue  # the cosine sum has no depth
            w = weights_for(weighting, doc_heads[layer], sims, relevant, dev, depth)
            scores = mrag.score_rankings(data, rankings(data, multihead(sims, w, depth, vote)))
            sweep.append({"layer": layer, "weights": weighting, "depth": depth if vote == "rank" else None,
                          "vote": vote, "dev": objective(scores, [qids[i] for i in dev]),
                          "test": objective(scores, [qids[i] for i in test]), "scores": scores})
    # dense fused with multi-head (what hybrid would do), for the two multi-head configurations worth it
    dense_long = standard(doc_dense, q_dense, keep=200)
    ranked = sorted(sweep, key=lambda s: -s["dev"])
    layers = doc_heads.shape[0]
    for cfg in [ranked[0]] + [s for s in sweep if is_paper_config(s, layers)]:
        layer = cfg["layer"]
        sims = head_sims(doc_heads[layer], q_heads[layer])
        w = weights_for(cfg["weights"], doc_heads[layer], sims, relevant, dev, cfg["depth"] or DEPTHS[0])
        mh_long = multihead(sims, w, cfg["depth"] or DEPTHS[0], cfg["vote"], keep=200)
        for beta in FUSION:
            scores = mrag.score_rankings(data, rankings(data, fused(dense_long, mh_long, beta, len(data.corpus))))
            sweep.append({**{k: cfg[k] for k in ("layer", "weights", "depth", "vote")}, "fusion": beta,
                          "dev": objective(scores, [qids[i] for i in dev]),
                          "test": objective(scores, [qids[i] for i in test]), "scores": scores})
    paper_cfg = next(s for s in sweep if is_paper_config(s, layers))
    best = max((s for s in sweep if "fusion" not in s), key=lambda s: s["dev"])
    best_fused = max((s for s in sweep if "fusion" in s), key=lambda s: s["dev"])
    test_q = [qids[i] for i in test]
    out = {"set": set_name, "embedder": name, "documents": len(data.corpus), "queries": len(qids),
           "dev_queries": len(dev), "test_queries": len(test),
           "standard": {"dev": objective(base, [qids[i] for i in dev]), "test": objective(base, test_q),
                        "by_aspects_test": table(base, test_q), "by_aspects_all": table(base, qids)},
           "paper_config": _summary(paper_cfg, test_q, qids), "chosen_on_dev": _summary(best, test_q, qids),
           "fused_chosen_on_dev": _summary(best_fused, test_q, qids),
           "poolings": poolings(data, name, set_name, [qids[i] for i in dev], test_q),
           "by_sentences": split_by_sentences(data, name, set_name, doc_dense, doc_heads, q_dense, q_heads,
                                             [qids[i] for i in dev], test_q),
           "sweep": [{k: v for k, v in s.items() if k != "scores"} for s in sweep]}
    print(f"\n{set_name} {name}: standard dev {out['standard']['dev']:.3f} test {out['standard']['test']:.3f}; "
          f"MRAG as in the paper (last layer, paper weights, depth {PICKS}) dev {paper_cfg['dev']:.3f} test "
          f"{paper_cfg['test']:.3f}; chosen on dev: layer {best['layer']}, {best['weights']} weights, vote "
          f"{best['vote']}, depth {best['depth']}: dev {best['dev']:.3f} test {best['test']:.3f}; dense fused with "
          f"multi-head (layer {best_fused['layer']}, {best_fused['weights']}, {best_fused['vote']}, depth "
          f"{best_fused['depth']}, weight {best_fused['fusion']}): dev {best_fused['dev']:.3f} test {best_fused['test']:.3f}")
    return out


def split_by_sentences(data, name: str, set_name: str, doc_dense, doc_heads, q_dense, q_heads, dev_q, test_q) -> dict:
    """Standard RAG, MRAG (the paper's configuration) and longdoc's head vectors (three poolings, centred)
    with each query searched whole and one sentence at a time."""
    owner, part_dense, part_heads, part_pooled = sentence_vectors(name, data, set_name)
    last, qids = doc_heads.shape[0] - 1, list(data.queries)
    _, doc_pooled, _, q_pooled = pooled_vectors(name, data, set_name)
    mu = head_means(doc_pooled)

    def votes(heads, docs=doc_heads[last], centre=0):
        return head_votes(head_sims(docs - centre, heads - centre), head_weights(docs), PICKS, "rank")

    cosines = unit(doc_dense).T
    out = {}
    for label, part_scores, whole_scores in (("standard", unit(part_dense) @ cosines, unit(q_dense) @ cosines),
                                             ("mrag", votes(part_heads), votes(q_heads[last])),
                                             ("longdoc_heads", votes(part_pooled, doc_pooled, mu),
                                              votes(q_pooled, doc_pooled, mu))):
        scores = mrag.score_rankings(data, rankings(data, by_sentences(part_scores, owner, whole_scores)))
        out[label] = {"dev": objective(scores, dev_q), "test": objective(scores, test_q),
                      "by_aspects_test": table(scores, test_q), "by_aspects_all": table(scores, qids)}
    out["sentences_per_query"] = len(owner) / len(qids)
    return out


def print_by_sentences(result: dict) -> None:
    split = result["by_sentences"]
    print(f"\n{result['set']}, {result['embedder']}, each query searched one sentence at a time "
          f"({split['sentences_per_query']:.1f} sentences per query), rankings merged by best rank. Objective dev / "
          f"test: standard {split['standard']['dev']:.3f} / {split['standard']['test']:.3f}, MRAG "
          f"{split['mrag']['dev']:.3f} / {split['mrag']['test']:.3f}, longdoc's heads "
          f"{split['longdoc_heads']['dev']:.3f} / {split['longdoc_heads']['test']:.3f} (whole queries: standard "
          f"{result['standard']['dev']:.3f} / {result['standard']['test']:.3f}, MRAG "
          f"{result['paper_config']['dev']:.3f} / {result['paper_config']['test']:.3f}). All 25 queries per n:")
    print("| n | standard, whole | MRAG, whole | standard, by sentence | MRAG, by sentence | longdoc's heads, by sentence |")
    for n in split["standard"]["by_aspects_all"]:
        cells = [result["standard"]["by_aspects_all"][n], result["paper_config"]["by_aspects_all"][n],
                 split["standard"]["by_aspects_all"][n], split["mrag"]["by_aspects_all"][n],
                 split["longdoc_heads"]["by_aspects_all"][n]]
        print(f"| {n} | " + " | ".join(f"{c['success_ratio']:.3f} / {c['category_success_ratio']:.3f}" for c in cells) + " |")


def _summary(s: dict, test_q, qids) -> dict:
    return {**{k: v for k, v in s.items() if k != "scores"}, "by_aspects_test": table(s["scores"], test_q),
            "by_aspects_all": table(s["scores"], qids)}


def print_tables(result: dict, paper: dict) -> None:
    print(f"\n{result['set']}, {result['embedder']}: success ratio / category success ratio, averaged over the "
          f"paper's picks (n+1 ... n+21 fetched); test = held-out queries, all = the 25 per n the paper used")
    head = ("| n | standard (test) | MRAG paper config (test) | MRAG chosen (test) | dense + MRAG fused (test) | "
            "standard (all) | MRAG chosen (all) |")
    for model, strategies in paper.items():
        head += f" {model} standard | {model} MRAG |"
    print(head)
    paper_tables = {m: {s: mrag.by_aspects(v[s]) for s in ("standard-rag", "mrag")} for m, v in paper.items()}
    for n in result["standard"]["by_aspects_test"]:
        cells = [result["standard"]["by_aspects_test"][n], result["paper_config"]["by_aspects_test"][n],
                 result["chosen_on_dev"]["by_aspects_test"][n], result["fused_chosen_on_dev"]["by_aspects_test"][n],
                 result["standard"]["by_aspects_all"][n],
                 result["chosen_on_dev"]["by_aspects_all"][n]]
        cells += [paper_tables[m][s][n] for m in paper_tables for s in ("standard-rag", "mrag")]
        print(f"| {n} | " + " | ".join(f"{c['success_ratio']:.3f} / {c['category_success_ratio']:.3f}" for c in cells) + " |")


def print_sweep(result: dict) -> None:
    """Per layer, the dev objective of each weighting and vote at its best depth (test beside it)."""
    print(f"\nsweep on the dev split, {result['embedder']}: dev / test objective (weighted success ratio, n > 1); "
          f"standard RAG {result['standard']['dev']:.3f} / {result['standard']['test']:.3f}")
    cols = [(w, v) for v in VOTES for w in WEIGHTS]
    print("| layer | " + " | ".join(f"{w}, {v}" for w, v in cols) + " |")
    for layer in sorted({s["layer"] for s in result["sweep"]}):
        cells = []
        for w, v in cols:
            rows = [s for s in result["sweep"] if s["layer"] == layer and s["weights"] == w and s["vote"] == v
                    and "fusion" not in s]
            b = max(rows, key=lambda s: s["dev"])
            cells.append(f"{b['dev']:.3f} / {b['test']:.3f}" + (f" (d{b['depth']})" if b["depth"] else ""))
        print(f"| {layer} | " + " | ".join(cells) + " |")
    fused = [s for s in result["sweep"] if "fusion" in s]
    print("fusion with dense (weight: dev / test): " + ", ".join(f"{s['fusion']}: {s['dev']:.3f} / {s['test']:.3f}"
                                                             for s in fused))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedders", default="all-minilm-l6-v2,all-mpnet-base-v2")
    parser.add_argument("--sets", default="mrag-wikipedia")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--poolings-only", action="store_true",
                        help="only standard RAG against longdoc's head vectors by pooling (one embedding pass)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    # mrag.json holds the default set's run; other sets get their own file (mrag-legal-chem.json).
    out = "mrag" if args.sets == "mrag-wikipedia" else "mrag-" + args.sets.replace("mrag-", "").replace(",", "-")
    if args.poolings_only:
        out += "-poolings"
    for set_name in args.sets.split(","):
        paper = mrag.paper_scores(set_name)
        for name in args.embedders.split(","):
            if args.poolings_only:
                results.append(run_poolings(set_name, name))
                print_poolings(results[-1])
                write_result(out, {"results": results})
                continue
            results.append(run(set_name, name))
            print_tables(results[-1], paper)
            print_sweep(results[-1])
            print_poolings(results[-1])
            print_by_sentences(results[-1])
            write_result(out, {"results": results})


if __name__ == "__main__":
    main()
