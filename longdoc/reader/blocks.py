"""Per-block KV for Block-Attention: read from the KV store, or computed (in batches) and stored.

A passage block is encoded after the prompt prefix, as the Block-Attention paper encodes each block after
the shared instructions: the block sees the system turn but no other passage. Its keys are therefore
rotated at positions len(prefix).. and are re-rotated when stitched at another offset."""
from __future__ import annotations

import torch

from ..attention.block import KVBlock, returned_cache, stitch_cache, with_cache
from ..storage.kvstore import KVStore
from .model import ReaderModel
from .prompt import Prompt, block_key


def _layers(cache) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys, values) of a DynamicCache as (layers, batch, kv_heads, T, head_dim)."""
    return (torch.stack([layer.keys for layer in cache.layers]), torch.stack([layer.values for layer in cache.layers]))


class BlockEncoder:
    def __init__(self, reader: ReaderModel, store: KVStore | None, batch_size: int | None = None):
        self.reader = reader
        self.store = store
        # A CPU is compute-bound already at one block (a few hundred rows per GEMM), and padding a batch
        # to its longest block is paid in full: the demo's four windows (302-636 tokens) encoded at
        # 51 tokens/s batched against ~120 one by one. A GPU gains from batches of similar lengths.
        self.batch_size = batch_size or (8 if str(reader.device).startswith("cuda") else 1)
        self._prefix: dict[str, KVBlock] = {}
        self.computed = 0  # blocks encoded (not found in the store) since creation

    @torch.inference_mode()
    def prefix(self, prompt: Prompt) -> KVBlock:
        key = block_key(prompt.prefix_text, "")
        if key not in self._prefix:
            cached = self.store.get(key) if self.store else None
            if cached is None:
                ids = torch.tensor([prompt.prefix], device=self.reader.device)
                out = self.reader.model(input_ids=ids, use_cache=True, logits_to_keep=1)
                k, v = _layers(returned_cache(out))
                cached = (k[:, 0], v[:, 0], 0)
                if self.store:
                    self.store.put(key, cached[0], cached[1], 0)
                    cached = (*self.store.as_stored(cached[0], cached[1]), 0)
            self._prefix[key] = KVBlock(cached[0], cached[1], cached[2])
        return self._prefix[key]

    def blocks(self, prompt: Prompt, which: list[int]) -> list[KVBlock]:
        """The KV of prompt.blocks[i] for i in `which`, from the store where present."""
        found: dict[int, KVBlock] = {}
        missing = []
        for i in which:
            cached = self.store.get(prompt.block_keys[i]) if self.store else None
            if cached is None:
                missing.append(i)
            else:
                found[i] = KVBlock(*cached)
        missing.sort(key=lambda i: len(prompt.blocks[i]))  # batches of similar lengths pad little
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start:start + self.batch_size]
            for i, block in zip(batch, self.encode(prompt, [prompt.blocks[i] for i in batch])):
                if self.store:
                    self.store.put(prompt.block_keys[i], block.keys, block.values, block.start)
                    block = KVBlock(*self.store.as_stored(block.keys, block.values), block.start)
                found[i] = block
        return [found[i] for i in which]

    @torch.inference_mode()
    def encode(self, prompt: Prompt, token_blocks: list[list[int]]) -> list[KVBlock]:
        """Encode blocks after the prefix, in one right-padded batch. Causal attention means padding after a
        block's tokens never reaches them, so no padding mask is needed."""
        prefix = self.prefix(prompt)
        n, width = len(token_blocks), max(map(len, token_blocks))
        pad = self.reader.tokenizer.pad_token_id or 0
        ids = torch.full((n, width), pad, dtype=torch.long, device=self.reader.device)
        for row, block in enumerate(token_blocks):
            ids[row, :len(block)] = torch.tensor(block)
        cache = stitch_cache(self.reader.model, [prefix], self.reader.dtype, batch=n)
        start = prefix.length
        positions = torch.arange(start, start + width, device=self.reader.device).expand(n, -1)
        out = self.reader.model(input_ids=ids, **with_cache(self.reader.model, cache), position_ids=positions, use_cache=True,
                                logits_to_keep=1)  # only the KV is wanted; skip the vocabulary projection
        keys, values = _layers(returned_cache(out))
        self.computed += n
        return [KVBlock(keys[:, row, :, start:start + len(b)].clone(), values[:, row, :, start:start + len(b)].clone(), start)
                for row, b in enumerate(token_blocks)]
