"""Selective re-encoding of a stitched Block-Attention cache (EPIC, CacheBlend).

Blocks encoded apart never saw each other. Re-encoding a few of their tokens with everything before them
in view, and writing the new keys and values over the old, lets the context mix again at a fraction of a
full prefill's cost. EPIC re-encodes each block's first tokens (where a block's own attention sink forms;
`first_tokens`). `reencode` takes any positions, so CacheBlend's choice (the tokens whose KV deviates
most) would use the same pass; that selection is not built. Re-encoding every block token reproduces full
prefill exactly: each re-encoded token sees the prefix and the re-encoded tokens before it, as in one pass.

The tokens that follow the cache (the question) can ride in the same forward pass: they see the re-encoded
keys and never the stale ones, which is what they would see after a separate pass, at one pass's fixed
cost (on a CPU, reading every weight once) instead of two."""
from __future__ import annotations

import contextvars

import torch

from .block import with_cache
from .scoped import scoped

_key_mask: contextvars.ContextVar["torch.Tensor | None"] = contextvars.ContextVar("longdoc_key_mask", default=None)


def key_mask_override() -> torch.Tensor | None:
    """(Q, K) bool, True = attend, while a re-encoding pass runs; the attention function uses it as is."""
    return _key_mask.get()


def first_tokens(block_spans: list[tuple[int, int]], n: int) -> list[int]:
    """EPIC's choice: the first n positions of each block span [start, end)."""
    return [p for start, end in block_spans for p in range(start, min(end, start + n))]


@torch.inference_mode()
def reencode(model, cache, token_ids: list[int], positions: list[int], feed: list[int] = (), start: int = 0,
             recorder=None):
    """Re-encode the tokens at `positions` (sorted, distinct; token_ids[p] is the token at p) over a
    DynamicCache that holds positions 0..N-1 and write their new KV into the cache in place; in the same
    pass, prefill `feed` at positions start.. after them. Returns the forward's output (logits of the last
    row). With a `recorder` (AttentionMass), the last row's attention to a re-encoded key is credited to
    that key's position, as if the passes had been separate."""
    if not positions and not feed:
        return None
    device = next(model.parameters()).device
    n_cached = cache.get_seq_length()
    chosen = torch.tensor(positions, dtype=torch.long, device=device)
    n, m = len(positions), len(feed)
    # Re-encoded row i sees the cached keys before its position, except the stale ones being re-encoded,
    # and the re-encoded keys (appended after the cache) up to its own. Fed rows see every cached key but
    # the stale ones, every re-encoded key, and the fed keys up to their own.
    stale = torch.zeros(n_cached, dtype=torch.bool, device=device)
    stale[chosen] = True
    before = (torch.arange(n_cached, device=device)[None, :] < chosen[:, None]) & ~stale[None, :]
    rows = torch.cat([before, (~stale)[None, :].expand(m, -1)])
    mask = torch.cat([rows, torch.ones(n + m, n + m, dtype=torch.bool, device=device).tril()], dim=1)
    ids = torch.tensor([[token_ids[p] for p in positions] + list(feed)], device=device)
    position_ids = torch.cat([chosen, torch.arange(start, start + m, device=device)])[None, :]
    with scoped(_key_mask, mask):
        out = model(input_ids=ids, position_ids=position_ids, **with_cache(model, cache), use_cache=True,
                    logits_to_keep=1)
    for layer in cache.layers:
        for name in ("keys", "values"):
            t = getattr(layer, name)
            t[:, :, chosen] = t[:, :, n_cached:n_cached + n]
            setattr(layer, name, torch.cat([t[:, :, :n_cached], t[:, :, n_cached + n:]], dim=2))
    if recorder is not None:
        recorder.relocate(n_cached, n, chosen)
    return out
