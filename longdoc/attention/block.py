"""Block-Attention: stitch independently computed per-chunk KV into one DynamicCache.

Each block's keys were rotated at the positions it was encoded at (`start`..); here they are re-rotated
to where the block lands in the concatenated context. The question is then prefilled over the cache."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .kv_cache import filled_cache, growing_cache, room_for
from .rope import shift_keys


@dataclass
class KVBlock:
    """Per-layer keys and values (layers, kv_heads, L, head_dim) of one block, encoded at positions start.."""
    keys: torch.Tensor
    values: torch.Tensor
    start: int

    @property
    def length(self) -> int:
        return self.keys.shape[-2]


def stitch_cache(model, blocks: list[KVBlock], dtype: torch.dtype = torch.float32, batch: int = 1):
    """A DynamicCache (growing in place: kv_cache.py) holding the blocks back to back from position 0, keys
    re-rotated to their places, repeated over `batch` rows. Each block is written straight into the
    cache's buffers, so the context is held once (with its spare room), not once per copy on the way."""
    device = next(model.parameters()).device
    if not blocks:
        return growing_cache(model.config)
    total = sum(block.length for block in blocks)
    layers, hkv, _, d = blocks[0].keys.shape
    keys = torch.empty(layers, batch, hkv, room_for(total), d, device=device, dtype=dtype)
    values = torch.empty_like(keys)
    offset = 0
    for block in blocks:
        place = (..., slice(offset, offset + block.length), slice(None))
        if block.start != offset:  # every row moves by the same distance: one rotation, into the buffer
            shift_keys(model, block.keys.to(device).unsqueeze(1), offset - block.start, keys[place])
        else:
            keys[place] = block.keys.to(device, dtype).unsqueeze(1)
        values[place] = block.values.to(device, dtype).unsqueeze(1)
        offset += block.length
    return filled_cache(model.config, keys, values, total)


def with_cache(model, cache) -> dict:
    """The forward keyword for a KV cache: `cache` in newer transformers, `past_key_values` before (which
    newer releases still take, with a deprecation warning on every call)."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return {"cache" if "cache" in params else "past_key_values": cache}


def returned_cache(output):
    """The KV cache a forward returned, under either name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values
