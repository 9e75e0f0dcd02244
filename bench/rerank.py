"""Does a reranker built from our own models help? Measured on Quoref before it goes in the product.

Candidates: hybrid search's top-20 documents (best chunk each, widened by one neighbour on each side).
Rerankers:
  - token max-sim (ColBERT-style) with MiniLM token embeddings: sum over query tokens of the best
    cosine to any passage token;
  - reader query likelihood: mean log P(question tokens | passage) under SmolLM2-135M-Instruct.
Reports recall@1/5 and MRR@10 against hybrid's own order, on the first N questions.

    python bench/rerank.py [--limit 60 --candidates 10]   # needs the index `longdoc eval run --dataset quoref` built
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@torch.inference_mode()
def maxsim_scores(embedder, query: str, passages: list[str]) -> list[float]:
    model = embedder.model

    def token_embeddings(texts):
        features = model.tokenize(texts)
        emb = torch.nn.functional.normalize(model.model(**features).last_hidden_state, dim=-1)
        return emb, features["attention_mask"].bool()

    q, qmask = token_embeddings([query])
    q = q[0][qmask[0]]
    p, pmask = token_embeddings(passages)
    sims = torch.einsum("qd,btd->bqt", q, p).masked_fill(~pmask[:, None, :], -1.0)
    return sims.max(-1).values.sum(-1).tolist()


@torch.inference_mode()
def loglik_scores(model, tok, query: str, passages: list[str]) -> list[float]:
    scores = []
    for passage in passages:
        prefix = tok(f"Passage: {passage}\nQuestion:", return_tensors="pt")["input_ids"][:, -400:]
        target = tok(" " + query, return_tensors="pt", add_special_tokens=False)["input_ids"]
        ids = torch.cat([prefix, target], 1)
        logits = model(ids).logits[0, prefix.shape[1] - 1:-1]
        logp = torch.log_softmax(logits.float(), -1).gather(-1, target[0][:, None]).squeeze(-1)
        scores.append(float(logp.mean()))
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--candidates", type=int, default=10)
    args = parser.parse_args()
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from common import write_result
    from longdoc import open_index
    from longdoc.evaluation.metrics import mrr_at_k, recall_at_k
    from longdoc.evaluation.registry import load_dataset
    from longdoc.models import load_reader
    from longdoc.models.cache import cache_dir

    data = load_dataset("quoref", args.limit)
    reader, tok = load_reader("smollm2-135m-instruct")
    torch.set_grad_enabled(False)
    results = {name: {"recall@1": [], "recall@5": [], "mrr@10": [], "seconds": []}
               for name in ("hybrid", "hybrid+maxsim", "hybrid+reader-loglik")}
    with open_index(cache_dir("eval", "quoref") / "index") as ix:
        for qid, query in track(list(data.queries.items()), description="questions"):
            t = time.perf_counter()
            hits = ix.search(query, k=args.candidates, per="document", context=1)
            base_s = time.perf_counter() - t
            docs = [Path(h.path).stem for h in hits]
            passages = [h.text for h in hits]
            rel = data.qrels[qid]
            orders = {"hybrid": (docs, base_s)}
            t = time.perf_counter()
            s = maxsim_scores(ix.embedder, query, passages)
            orders["hybrid+maxsim"] = ([docs[i] for i in np.argsort(s)[::-1]], base_s + time.perf_counter() - t)
            t = time.perf_counter()
            s = loglik_scores(reader, tok, query, passages)
            orders["hybrid+reader-loglik"] = ([docs[i] for i in np.argsort(s)[::-1]], base_s + time.perf_counter() - t)
            for name, (ranking, secs) in orders.items():
                r = results[name]
                r["recall@1"].append(recall_at_k(ranking, rel, 1))
                r["recall@5"].append(recall_at_k(ranking, rel, 5))
                r["mrr@10"].append(mrr_at_k(ranking, rel, 10))
                r["seconds"].append(secs)
    summary = {name: {m: float(np.mean(v)) for m, v in r.items()} for name, r in results.items()}
    table = Table(title=f"Reranking hybrid's top-{args.candidates} documents, Quoref, {len(data.queries)} questions")
    for col in ("ranker", "recall@1", "recall@5", "MRR@10", "s/query"):
        table.add_column(col)
    for name, m in summary.items():
        table.add_row(name, f"{m['recall@1']:.3f}", f"{m['recall@5']:.3f}", f"{m['mrr@10']:.3f}", f"{m['seconds']:.2f}")
    Console(width=160).print(table)
    print(f"wrote {write_result('rerank', {'questions': len(data.queries), 'candidates': args.candidates, 'summary': summary})}")


if __name__ == "__main__":
    main()
