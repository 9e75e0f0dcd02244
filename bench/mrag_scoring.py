"""MRAG's benchmark scoring shared by bench/mrag.py and bench/mrag_heads.py: rankings by cosine or by per-head
votes, the paper's metrics per number of aspects, and the dev split's objective."""
from __future__ import annotations

import numpy as np

from longdoc.evaluation import mrag

PICKS = mrag.MAX_PICKS


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def standard(doc_dense, q_dense, keep: int = PICKS) -> np.ndarray:
    """(Q, keep) document indices by cosine of the sentence embeddings."""
    return np.argsort(-(unit(q_dense) @ unit(doc_dense).T), axis=1)[:, :keep]


def head_sims(doc_heads, q_heads) -> np.ndarray:
    """(H, Q, N) per-head cosine similarities at one layer."""
    return np.einsum("qhd,nhd->hqn", unit(q_heads), unit(doc_heads))


def learned_weights(sims: np.ndarray, relevant: list[set[int]], dev: list[int], depth: int) -> np.ndarray:
    """Each head's share of relevant documents in its top-`depth`, over the dev queries."""
    top = np.argsort(-sims[:, dev], axis=2)[:, :, :depth]  # (H, dev, depth)
    return np.array([np.mean([len(relevant[q] & set(top[h, i])) / min(depth, len(relevant[q]))
                              for i, q in enumerate(dev)]) for h in range(sims.shape[0])]) + 1e-6


def multihead(sims: np.ndarray, weights: np.ndarray, depth: int, vote: str, keep: int = PICKS) -> np.ndarray:
    """(Q, keep) document indices by MRAG's votes (w_h 2^-rank over each head's top-depth) or by the
    weighted sum of per-head cosines."""
    return np.argsort(-head_votes(sims, weights, depth, vote), axis=1)[:, :keep]


def head_votes(sims: np.ndarray, weights: np.ndarray, depth: int, vote: str) -> np.ndarray:
    """(Q, N) each document's multi-head score for `multihead`."""
    if vote == "cosine":
        return np.einsum("h,hqn->qn", weights, sims)
    h, q, n = sims.shape
    top = np.argsort(-sims, axis=2)[:, :, :depth]  # (H, Q, depth)
    scores = np.zeros((q, n))
    rows = np.arange(q)[:, None]
    for head in range(h):
        np.add.at(scores, (rows, top[head]), weights[head] * 2.0 ** -np.arange(depth))
    # ties (documents no head voted for) break by the summed cosine, so every ranking is complete
    return scores + 1e-9 * sims.mean(0)


def rankings(data, picks: np.ndarray) -> dict[str, list[str]]:
    ids = list(data.corpus)
    return {qid: [ids[i] for i in row] for qid, row in zip(data.queries, picks)}


def table(scores, qids) -> dict[int, dict[str, float]]:
    return mrag.by_aspects(scores, qids)


def objective(scores, qids) -> float:
    """What the dev split maximises: the mean over multi-aspect queries of the paper's weighted success ratio
    (2 x exact + category) / 3, so one aspect count does not set the choice."""
    rows = [scores[q] for q in qids if mrag.aspect_count(q) > 1]
    return float(np.mean([(2 * r["success_ratio"] + r["category_success_ratio"]) / 3 for r in rows]))
