"""Longdoc's own head vectors on MRAG's benchmark (indexing/embedder.py, storage/vectors.py): each head pooled
three ways (mean, max, the first token), all voting, each head vector less the documents' mean for that head;
every subset of the poolings, centred or not, beside standard RAG. Run by bench/mrag.py (also alone:
`--poolings-only`)."""
from __future__ import annotations

import numpy as np

from mrag_scoring import PICKS, head_sims, multihead, objective, rankings, standard, table

from longdoc.config import DEFAULT_HEAD_POOLING, parse_head_pooling
from longdoc.evaluation import mrag
from longdoc.indexing.embedder import MultiHeadEmbedder
from longdoc.indexing.head_weights import head_means, head_weights
from longdoc.models.cache import cache_dir


def longdoc_embedder(name: str) -> MultiHeadEmbedder:
    """The embedder as an index with head vectors makes it: every pooling."""
    return MultiHeadEmbedder(name, "cpu", batch_size=16, pooling=DEFAULT_HEAD_POOLING)


def pooled_vectors(name: str, data, set_name: str):
    """Cached vectors as longdoc's embedder makes them, head vectors with every pooling (the default):
    (document dense (N, D), document heads (N, P*H, d), query dense, query heads), heads pooling-major."""
    path = cache_dir("bench", "mrag") / f"{set_name}-{name}-pooled.npz"
    if path.exists():
        z = np.load(path)
        return z["doc_dense"], z["docs"], z["q_dense"], z["queries"]
    embedder = longdoc_embedder(name)
    docs = [f"{d['title']}\n\n{d['text']}" for d in data.corpus.values()]
    done = [0]

    def shown(n):
        done[0] += n
        print(f"\r{name}, pooled head vectors: {done[0]}/{len(docs) + len(data.queries)} texts", end="", flush=True)
    doc_dense, doc_heads = embedder.encode(docs, on_batch=shown)
    q_dense, q_heads = embedder.encode(list(data.queries.values()), on_batch=shown)
    print()
    np.savez(path, doc_dense=doc_dense, docs=doc_heads, q_dense=q_dense, queries=q_heads)
    return doc_dense, doc_heads, q_dense, q_heads


def poolings(data, name: str, set_name: str, dev_q, test_q) -> dict:
    """MRAG (paper's weights from the raw vectors, 2^-rank votes over each head's top 32) with each subset of
    longdoc's poolings, each head raw or less the documents' mean for it (head_means, as an index centres
    them). The dev split picks the row; longdoc's default is every pooling, centred."""
    _, docs, _, queries = pooled_vectors(name, data, set_name)
    names = parse_head_pooling(DEFAULT_HEAD_POOLING)
    heads = docs.shape[1] // len(names)
    qids = list(data.queries)
    rows = []
    for subset in [("mean",), ("mean", "max"), ("mean", "first"), names]:
        take = np.concatenate([np.arange(heads) + names.index(p) * heads for p in subset])
        d_raw, q_raw = docs[:, take], queries[:, take]
        for centred in (False, True):
            mu = head_means(d_raw) if centred else 0
            sims = head_sims(d_raw - mu, q_raw - mu)
            scores = mrag.score_rankings(data, rankings(data, multihead(sims, head_weights(d_raw), PICKS, "rank")))
            rows.append({"pooling": ",".join(subset), "centred": centred, "dev": objective(scores, dev_q),
                         "test": objective(scores, test_q), "by_aspects_test": table(scores, test_q),
                         "by_aspects_all": table(scores, qids)})
    return {"rows": rows, "chosen_on_dev": max(rows, key=lambda r: r["dev"]),
            "default": next(r for r in rows if r["pooling"] == DEFAULT_HEAD_POOLING and r["centred"])}


def print_poolings(result: dict) -> None:
    p = result["poolings"]
    print(f"\n{result['set']}, {result['embedder']}: longdoc's head vectors, by pooling (paper's weights, depth "
          f"{PICKS}); dev / test objective, then 10 aspects success / category, test and all 25 (standard RAG: "
          f"dev / test {result['standard']['dev']:.3f} / {result['standard']['test']:.3f})")
    print("| pooling | centred | dev / test | 10 aspects, test | 10 aspects, all |")
    for r in p["rows"]:
        t, a = r["by_aspects_test"][10], r["by_aspects_all"][10]
        print(f"| {r['pooling']} | {'yes' if r['centred'] else 'no'} | {r['dev']:.3f} / {r['test']:.3f} | "
              f"{t['success_ratio']:.3f} / {t['category_success_ratio']:.3f} | "
              f"{a['success_ratio']:.3f} / {a['category_success_ratio']:.3f} |")
    c = p["chosen_on_dev"]
    print(f"chosen on dev: {c['pooling']}, {'centred' if c['centred'] else 'raw'}")


def run_poolings(set_name: str, name: str) -> dict:
    """--poolings-only: standard RAG against longdoc's head vectors by pooling, from one embedding pass."""
    data = mrag.load_mrag(set_name)
    doc_dense, _, q_dense, _ = pooled_vectors(name, data, set_name)
    qids = list(data.queries)
    dev_q, test_q = [q for q in qids if int(q[-2:]) % 2 == 0], [q for q in qids if int(q[-2:]) % 2 == 1]
    base = mrag.score_rankings(data, rankings(data, standard(doc_dense, q_dense)))
    return {"set": set_name, "embedder": name, "documents": len(data.corpus), "queries": len(qids),
            "standard": {"dev": objective(base, dev_q), "test": objective(base, test_q),
                         "by_aspects_test": table(base, test_q), "by_aspects_all": table(base, qids)},
            "poolings": poolings(data, name, set_name, dev_q, test_q)}
