"""APE (Adaptive Parallel Encoding) over a stitched Block-Attention cache, training-free.

Blocks encoded apart each carry their own share of attention mass; stitched together, the question's
attention over them is flatter than over the same text encoded in one pass. APE sharpens it with an
attention temperature T on the context keys (logits / T) and re-weights the context as a whole against
the rest (the shared prefix, the question, the answer so far) by scaling the context's log-sum-exp by S:
    w_context = e^(S * lse_context) / (e^(S * lse_context) + e^(lse_other)).
T = S = 1 is exact attention."""
from __future__ import annotations

import contextvars
from dataclasses import dataclass

import torch

from .scoped import scoped


@dataclass(frozen=True)
class ApeSpec:
    start: int  # the context keys are positions [start, end) of the cache: the stitched passages
    end: int
    temperature: float = 1.0
    scale: float = 1.0


_spec: contextvars.ContextVar[ApeSpec | None] = contextvars.ContextVar("longdoc_ape", default=None)


def use_ape(spec: ApeSpec):
    return scoped(_spec, spec)


def active_ape() -> ApeSpec | None:
    return _spec.get()


def ape_attend(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float, mask: torch.Tensor,
               spec: ApeSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """q (Q, Hq, D), keys/values (Hkv, K, D), mask (Q, K) bool. Returns (out (Q, Hq, D), the last row's
    attention over the keys summed over query heads (K,))."""
    q_len, hq, d = q.shape
    hkv, k_len, _ = keys.shape
    s = torch.einsum("qhgd,hkd->qhgk", q.float().view(q_len, hkv, hq // hkv, d), keys.float()) * scaling
    s = s.masked_fill(~mask[:, None, None, :], float("-inf"))
    context = torch.zeros(k_len, dtype=torch.bool, device=q.device)
    context[spec.start:spec.end] = True
    s_ctx = torch.where(context, s / spec.temperature, float("-inf"))
    s_other = torch.where(context, float("-inf"), s)
    lse_ctx = torch.logsumexp(s_ctx, dim=-1, keepdim=True)
    weighted = spec.scale * lse_ctx
    total = torch.logaddexp(weighted, torch.logsumexp(s_other, dim=-1, keepdim=True))
    logp = torch.where(context, s_ctx - lse_ctx + weighted, s_other) - total
    p = torch.exp(logp).nan_to_num(0.0)  # a row that sees no context key: its context terms are 0
    out = torch.einsum("qhgk,hkd->qhgd", p, values.float()).reshape(q_len, hq, d)
    return out, p[-1].sum(dim=(0, 1))
