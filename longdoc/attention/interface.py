"""longdoc's attention function, registered with transformers' AttentionInterface.

It is exact attention (torch SDPA, GQA-aware), merged with sparse attention over a context memory while
one is active (memory.py), that can also record, for citations, how much attention the
query rows that produce answer tokens pay to each key position, summed over heads and layers. Models load
with `attn_implementation="longdoc"`, so Llama/Qwen2-family modelling code runs unchanged."""
from __future__ import annotations

import contextvars

import torch
import torch.nn.functional as F

from .ape import active_ape, ape_attend
from .memory import active_memory
from .recompute import key_mask_override
from .scoped import scoped
from .sparse import attend, lse_merge

ATTN_IMPLEMENTATION = "longdoc"
_recorder: contextvars.ContextVar["AttentionMass | None"] = contextvars.ContextVar("longdoc_attention_mass", default=None)


class AttentionMass:
    """Attention paid by recorded query rows to each key position, summed over layers and query heads.
    It accumulates where the model runs (no host sync per layer and token on a GPU); `mass` is on the CPU.
    By default each call records its last query row (the row that produces the next token); `query_rows`
    records the last that many rows of a prefill (a question's rows) instead."""

    def __init__(self, query_rows: int = 1):
        self._sum: torch.Tensor | None = None
        self.rows = 0  # attention calls recorded (one per layer per forward pass)
        self.query_rows = query_rows

    def add(self, probs: torch.Tensor) -> None:
        """probs: (K,) summed over heads for one query row of one layer."""
        probs = probs.detach()
        dtype = torch.float64 if probs.device.type == "cpu" else torch.float32
        k = probs.shape[-1]
        if self._sum is None:
            self._sum = torch.zeros(k, dtype=dtype, device=probs.device)
        elif k > self._sum.shape[0]:
            self._sum = torch.cat([self._sum, self._sum.new_zeros(k - self._sum.shape[0])])
        self._sum[:k] += probs.to(dtype)
        self.rows += 1

    def relocate(self, at: int, n: int, positions: torch.Tensor) -> None:
        """Keys [at, at + n) were moved to `positions` in the cache (a re-encoding pass): so is their mass."""
        if self._sum is None:
            return
        moved = self._sum[at:at + n]
        self._sum = torch.cat([self._sum[:at], self._sum[at + n:]])
        self._sum[positions.to(self._sum.device)] += moved

    @property
    def mass(self) -> torch.Tensor:
        return torch.zeros(0, dtype=torch.float64) if self._sum is None else self._sum.to("cpu", torch.float64)


def record_attention_mass(recorder: AttentionMass):
    """While active, every attention call adds its last query row's attention to `recorder`."""
    return scoped(_recorder, recorder)


def _bool_mask(attention_mask: torch.Tensor | None, q_len: int, k_len: int, device) -> torch.Tensor | None:
    """A boolean (True = attend) mask, or None where SDPA needs none: one query row (it sees every key) or
    a plain causal square (passed as is_causal, which keeps SDPA on its fused kernels). Queries after a
    cache (q_len < k_len) get a bottom-right aligned causal mask, which is_causal cannot express."""
    if attention_mask is not None:
        return attention_mask if attention_mask.dtype == torch.bool else attention_mask > torch.finfo(attention_mask.dtype).min / 2
    if q_len == 1 or q_len == k_len:
        return None
    return _bottom_right_causal(q_len, k_len, device)


def _bottom_right_causal(q_len: int, k_len: int, device) -> torch.Tensor:
    """(1, 1, Q, K) bool: query row i, the last Q of K positions, sees keys up to its own."""
    rows = torch.arange(q_len, device=device)[:, None] + (k_len - q_len)
    return (torch.arange(k_len, device=device)[None, :] <= rows)[None, None]


def last_rows_softmax(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float,
                      rows: int = 1) -> torch.Tensor:
    """Softmax attention of the last `rows` query rows in float32, (Hkv, G, rows, K): query heads grouped
    by their KV head (GQA). Batch 1."""
    _, hq, q_len, d = query.shape
    hkv, k_len = key.shape[1], key.shape[2]
    rows = min(rows, q_len)
    q = query[0, :, -rows:].float().reshape(hkv, -1, d)  # (Hkv, G * rows, D): one matrix product per KV head
    scores = torch.matmul(q, key[0].float().transpose(-1, -2)).view(hkv, hq // hkv, rows, k_len) * scaling
    if mask is None and q_len > 1:
        mask = _bottom_right_causal(q_len, k_len, query.device)
    if mask is not None:
        scores = scores.masked_fill(~mask[0, :, -rows:].reshape(1, 1, rows, -1), float("-inf"))
    return torch.softmax(scores, dim=-1)


def last_rows_probs(query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None, scaling: float,
                    rows: int = 1) -> torch.Tensor:
    """Softmax attention of the last `rows` query rows, summed over them and the query heads: (K,). Batch 1."""
    return last_rows_softmax(query, key, mask, scaling, rows).sum(dim=(0, 1, 2))


def decode_attention(query, key, value, mask, scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One query row (a decode step), batch 1, mask None or (1, 1, 1, K): exact attention (1, 1, Hq, D) and
    its probabilities (K,) summed over the heads, from one pass over the keys in float32. On a CPU this is
    ~3x faster than SDPA, whose flash kernel is built for many rows (2.2 against 0.9 ms over 17K keys of
    the 0.5B's layer shape), and the recorder gets the probabilities without reading the keys again."""
    hq, d = query.shape[1], query.shape[-1]
    p = last_rows_softmax(query, key, mask, scaling)  # (Hkv, G, 1, K)
    out = torch.matmul(p.flatten(1, 2), value[0].float())  # (Hkv, G, D)
    return out.reshape(1, 1, hq, d).to(query.dtype), p.sum(dim=(0, 1, 2))


def memory_attention(memory, layer: int, query, key, value, mask, scaling: float, recorder):
    """Exact attention over the KV cache (sink and local window) merged by log-sum-exp with sparse attention
    over the context memory. Batch 1. Returns (1, Q, Hq, D)."""
    q = query[0].transpose(0, 1)  # (Q, Hq, D)
    q_len, k_len = q.shape[0], key.shape[2]
    if mask is None:
        mask = _bottom_right_causal(q_len, k_len, q.device)
    local_mask = mask[0, 0].expand(q_len, k_len)[:, None, :].expand(-1, key.shape[1], -1)
    local = attend(q, key[0], value[0], scaling, local_mask)
    out, lse, read = memory.attend(layer, q, scaling)
    merged, total = lse_merge([local, (out, lse)])
    if recorder is not None:
        hkv = key.shape[1]
        s = torch.einsum("hgd,hkd->hgk", q[-1].float().view(hkv, -1, q.shape[-1]), key[0].float()) * scaling
        s = s.masked_fill(~local_mask[-1][:, None, :], float("-inf"))
        recorder.add(torch.exp(s - total[-1].view(hkv, -1, 1)).sum(dim=(0, 1)))
        memory.record(layer, q, read, total, scaling)
    return merged.to(query.dtype).unsqueeze(0)


def longdoc_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """query (B, Hq, Q, D); key/value (B, Hkv, K, D). Returns ((B, Q, Hq, D), None) as transformers expects."""
    q_len, k_len = query.shape[2], key.shape[2]
    scaling = scaling if scaling is not None else query.shape[-1] ** -0.5
    override = key_mask_override()  # a re-encoding pass brings its own mask (recompute.py)
    mask = override[None, None] if override is not None else _bool_mask(attention_mask, q_len, k_len, query.device)
    recorder = _recorder.get()
    memory = active_memory()
    if memory is not None:
        return memory_attention(memory, module.layer_idx, query, key, value, mask, scaling, recorder), None
    ape = active_ape()
    if ape is not None and query.shape[0] == 1:
        if mask is None:
            mask = _bottom_right_causal(q_len, k_len, query.device)
        out, last = ape_attend(query[0].transpose(0, 1), key[0], value[0], scaling,
                               mask[0, 0].expand(q_len, k_len), ape)
        if recorder is not None:
            recorder.add(last)
        return out.to(query.dtype).unsqueeze(0), None
    if q_len == 1 and query.shape[0] == 1 and (mask is None or mask.shape[1] == 1):
        out, probs = decode_attention(query, key, value, mask, scaling)
        if recorder is not None:
            recorder.add(probs)
        return out, None
    if recorder is not None and query.shape[0] == 1:
        recorder.add(last_rows_probs(query, key, mask, scaling, recorder.query_rows))
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling,
                                         is_causal=mask is None and q_len > 1,
                                         enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Register longdoc's attention (and sdpa's boolean masks for it) with transformers; idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_IMPLEMENTATION, longdoc_attention)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
    return ATTN_IMPLEMENTATION
