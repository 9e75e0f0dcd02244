"""Exact PyTorch references for sparse decode attention over cached keys (DESIGN §4):
block representatives (mean key, or Quest's min/max bounds), per-KV-head block scores (GQA: max over the
query group), top-k block selection that always keeps the sinks and the local window, exact attention
over the kept keys, the log-sum-exp merge of partial attentions, and key recall.

Shapes, for one decode step of one layer: q (Hq, D); keys and values (Hkv, T, D); Hq = G * Hkv."""
from __future__ import annotations

from dataclasses import dataclass

import torch

REPRESENTATIVES = ("mean", "minmax")


@dataclass
class BlockReps:
    block: int
    mean: torch.Tensor  # (Hkv, nb, D)
    kmin: torch.Tensor  # (Hkv, nb, D)
    kmax: torch.Tensor  # (Hkv, nb, D)


def block_reps(keys: torch.Tensor, block: int) -> BlockReps:
    """Representatives of each block of `block` keys; a short last block uses the keys it has."""
    h, t, d = keys.shape
    nb = -(-t // block)
    pad = nb * block - t
    k = keys.float()
    zeros = torch.cat([k, k.new_zeros(h, pad, d)], 1).view(h, nb, block, d)  # for the sums
    edge = torch.cat([k, k[:, -1:].expand(h, pad, d)], 1).view(h, nb, block, d)  # min/max unchanged
    counts = torch.full((nb, 1), float(block), device=keys.device)
    counts[-1] = block - pad
    return BlockReps(block, zeros.sum(2) / counts, edge.amin(2), edge.amax(2))


def block_scores(q: torch.Tensor, reps: BlockReps, kind: str = "mean") -> torch.Tensor:
    """(Hkv, nb): each block's score for each KV head, the max over the heads of its query group."""
    if kind not in REPRESENTATIVES:
        raise ValueError(f"unknown block representative {kind!r}; choose one of {', '.join(REPRESENTATIVES)}")
    hkv = reps.mean.shape[0]
    qg = q.float().view(hkv, -1, q.shape[-1])  # (Hkv, G, D)
    if kind == "mean":
        s = torch.einsum("hgd,hbd->hgb", qg, reps.mean)
    else:  # Quest: an upper bound on q.k over the block
        s = torch.maximum(qg[:, :, None, :] * reps.kmax[:, None], qg[:, :, None, :] * reps.kmin[:, None]).sum(-1)
    return s.amax(1)


def select_blocks(scores: torch.Tensor, top_k: int, sink_blocks: int = 1, local_blocks: int = 1) -> torch.Tensor:
    """(Hkv, nb) bool: the top_k scoring blocks per KV head, plus the first sink_blocks and last local_blocks."""
    hkv, nb = scores.shape
    keep = torch.zeros(hkv, nb, dtype=torch.bool, device=scores.device)
    keep[:, :min(sink_blocks, nb)] = True
    if local_blocks:
        keep[:, max(0, nb - local_blocks):] = True
    free = scores.masked_fill(keep, float("-inf"))
    k = max(0, min(top_k, nb - int(keep[0].sum())))
    if k:
        keep.scatter_(1, free.topk(k, dim=1).indices, True)
    return keep


def key_mask(blocks: torch.Tensor, block: int, length: int) -> torch.Tensor:
    """(Hkv, nb) block selection -> (Hkv, T) key selection."""
    return blocks.repeat_interleave(block, dim=1)[:, :length]


def attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float,
           mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact attention of q over the keys where mask (Hkv, T) is True: (out (Hq, D), lse (Hq,)).
    A head with no key kept gets out 0 and lse -inf, so it carries no weight in a merge."""
    hkv, t, d = keys.shape
    qg = q.float().view(hkv, -1, d)
    s = torch.einsum("hgd,htd->hgt", qg, keys.float()) * scaling
    if mask is not None:
        s = s.masked_fill(~mask[:, None, :], float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # (Hkv, G)
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
    out = torch.einsum("hgt,htd->hgd", p, values.float())
    return out.reshape(-1, d), lse.reshape(-1)


def lse_merge(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge attentions over disjoint key sets: o = sum_p e^(lse_p - lse) o_p, lse = logsumexp_p lse_p."""
    outs = torch.stack([o for o, _ in parts])  # (P, Hq, D)
    lses = torch.stack([l for _, l in parts])  # (P, Hq)
    lse = torch.logsumexp(lses, dim=0)
    w = torch.exp(lses - lse).nan_to_num(0.0)
    return (w[..., None] * outs).sum(0), lse


def key_recall(q: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor, scaling: float) -> torch.Tensor:
    """(Hq,): the share of each query head's exact softmax mass (over all keys) that the kept keys carry."""
    hkv, t, d = keys.shape
    s = torch.einsum("hgd,htd->hgt", q.float().view(hkv, -1, d), keys.float()) * scaling
    p = torch.softmax(s, dim=-1)
    return (p * mask[:, None, :]).sum(-1).reshape(-1)
