"""The Reader: retrieved passages in, a cited answer out, with the full or Block-Attention backend."""
from __future__ import annotations

import contextlib
import itertools
import time
from pathlib import Path
from typing import Callable

import torch

from ..attention.block import KVBlock, stitch_cache
from ..attention.ape import ApeSpec, use_ape
from ..attention.recompute import first_tokens, reencode
from ..attention.memory import LruCache, build_memory, part_cache, part_key, tensor_bytes, use_memory
from ..config import SPARSE_ATTENTIONS, ReaderSettings, check_attention
from ..storage.kvstore import KVStore
from .answer import Answer
from .blocks import BlockEncoder
from .citations import cite, passage_shares, with_markers
from .generate import generate
from .model import ReaderModel
from .prompt import build_prompt
from .scan import context_tokens, excerpts, scanned
from .slices import excerpt_read

ABSTAIN_TEXT = "I could not find this in the indexed documents."


class Reader:
    def __init__(self, name: str, kv_root: str | Path | None = None, settings: ReaderSettings | None = None,
                 device: str = "auto"):
        self.settings = settings or ReaderSettings()
        self.model = ReaderModel(name, device, self.settings.precision)
        self.store = (KVStore(kv_root, self.model.reader_id, self.settings.kv_dtype, self.settings.kv_max_bytes)
                      if kv_root is not None else None)
        self.encoder = BlockEncoder(self.model, self.store)
        # Passages made ready for the long-context memory, and the last memory built from them: the
        # same passages asked about again (a document read whole) skip building it.
        self.parts = part_cache(self.settings.kv_max_bytes)
        self._last_memory: tuple[tuple, object] | None = None
        # The scan's generic-question attention per segment (a float per token: 4K segments in 64 MiB).
        self.scan_baselines = LruCache(64 << 20, tensor_bytes)

    @property
    def memory_dtype(self) -> torch.dtype:
        """The context memory holds keys as the KV store does: float16 unless the store keeps float32."""
        if self.model.dtype != torch.float32 or self.settings.kv_dtype == "float32":
            return self.model.dtype
        return torch.float16

    def prompt(self, question: str, hits, in_order: bool = False):
        return build_prompt(self.model.tokenizer, self.settings.instruction, question, hits, in_order)

    def fill_kv(self, hits, progress: Callable[[int], None] | None = None, batch: int = 64) -> int:
        """Compute and store the KV of these passages where the store lacks it; returns how many were computed."""
        before = self.encoder.computed
        for start in range(0, len(hits), batch):
            part = hits[start:start + batch]
            prompt = self.prompt("", part)
            self.encoder.blocks(prompt, list(range(len(prompt.blocks))))
            if progress:
                progress(len(part))
        return self.encoder.computed - before

    def answer(self, question: str, hits, attention: str | None = None, recompute_top: int | None = None,
               max_new_tokens: int | None = None, on_token: Callable[[str], None] | None = None,
               timings: dict | None = None, in_order: bool = False, reencode_first: int | None = None,
               reencode_focus: int | None = None) -> Answer:
        """Answer from `hits` (best first; in_order: a document's passages in reading order). Block-Attention
        recovers cross-passage attention by re-encoding the `recompute_top` best passages whole, the first
        `reencode_first` tokens of every other passage, and the matched chunk of the `reencode_focus` best
        of those (None: the settings' values)."""
        attention = check_attention(attention or self.settings.attention)
        recompute_top = self.settings.recompute_top if recompute_top is None else recompute_top
        reencode_first = self.settings.reencode_first if reencode_first is None else reencode_first
        reencode_focus = self.settings.reencode_focus if reencode_focus is None else reencode_focus
        max_new_tokens = max_new_tokens or self.settings.max_new_tokens
        t0 = time.perf_counter()
        prompt = self.prompt(question, hits, in_order)
        if attention == "auto":
            attention = self.auto_attention(prompt.length)
        computed = self.encoder.computed
        scan_times = {}
        excerpt = None
        if attention == "scan":  # the sentences the question attends to, segment by segment, read exactly
            picked = self._scanned(prompt, hits, question)
            scan_times = {"scan_s": time.perf_counter() - t0}
            if self.settings.scan_read == "kv":  # their rows of the passages' KV (slices.py)
                excerpt = excerpt_read(self, prompt, hits, picked)
                hits, prompt = excerpt.hits, excerpt.prompt
            else:  # encoded again
                hits = excerpts(hits, picked)
                prompt = self.prompt(question, hits, in_order)
            scan_times["excerpts"] = len(hits)
        memory = None
        if excerpt is not None:
            cache = stitch_cache(self.model.model, [self.encoder.prefix(prompt)] + excerpt.blocks, self.model.dtype)
            feed, start, stale = prompt.suffix, prompt.length - len(prompt.suffix), excerpt.stale(reencode_focus)
        elif attention in ("full", "scan"):
            cache, feed, start, stale = None, prompt.ids(), 0, ([], [])
        elif attention in SPARSE_ATTENTIONS:
            memory, cache = self._memory(prompt, attention)
            feed, start, stale = prompt.suffix, memory.question_start(self.settings.memory_gap), ([], [])
            if self.settings.sparse_pin == "scan":  # the answer's rows keep the sentences scan picks
                memory.pin_tokens(*context_tokens(prompt, self._scanned(prompt, hits, question)))
                scan_times = {"scan_s": time.perf_counter() - t0}
        else:
            cache, feed, start, stale = self._stitched(prompt, recompute_top, reencode_first, reencode_focus)
        scoped = use_memory(memory) if memory is not None else contextlib.nullcontext()
        if attention == "block" and (self.settings.ape_temperature, self.settings.ape_scale) != (1.0, 1.0):
            # APE over the passages, wherever they were encoded (cached, re-encoded or prefilled). It finds
            # them by cache position, so re-encoded keys go back in place before the question's pass.
            reencode(self.model.model, cache, *stale)
            stale = ([], [])
            scoped = use_ape(ApeSpec(len(prompt.prefix), len(prompt.prefix) + sum(map(len, prompt.blocks)),
                                     self.settings.ape_temperature, self.settings.ape_scale))
        with scoped:
            gen = generate(self.model, cache, feed, start, max_new_tokens, on_token, t0=t0, stale=stale)
        mass = gen.mass
        if memory is not None:  # the recorded mass is over [prefix | question, answer]; the memory's between
            p = len(prompt.prefix)
            mass = torch.cat([mass[:p], memory.mass, mass[p:]])
        citations = cite(hits, passage_shares(mass, prompt.spans()), self.settings.cite_ratio)
        n = len(gen.tokens)
        times = {**(timings or {}), **scan_times, "ttft_s": gen.ttft_s, "decode_s": gen.decode_s, "new_tokens": n,
                 "ms_per_token": 1000 * gen.decode_s / gen.decode_steps if gen.decode_steps else None,
                 "prompt_tokens": prompt.length, "blocks_computed": self.encoder.computed - computed,
                 "total_s": time.perf_counter() - t0 + (timings or {}).get("retrieve_s", 0.0)}
        if memory is not None:
            times["keys_read_share"] = memory.share_read()
        return Answer(question, with_markers(gen.text, citations), gen.text, citations, attention, False, times)

    def _scanned(self, prompt, hits, question: str):
        """The sentences of `hits` that scan picks for the question, with the settings' scan parameters."""
        s = self.settings
        return scanned(self, prompt, hits, question, s.scan_segment, s.scan_keep, s.scan_context, s.scan_lexical)

    def auto_attention(self, prompt_tokens: int) -> str:
        """block while the prompt fits both the exact budget and the reader's window, else long_attention."""
        window = getattr(self.model.model.config, "max_position_embeddings", None) or prompt_tokens
        exact = prompt_tokens <= min(self.settings.exact_up_to, window)
        return "block" if exact else self.settings.long_attention

    def _stitched(self, prompt, recompute_top: int, reencode_first: int, reencode_focus: int):
        """Block-Attention: (cache, tokens to prefill, their first position, stale: (the cached tokens,
        positions of theirs to re-encode)). The blocks nearest the question (the best passages) are prefilled
        whole with it when recompute_top > 0; every cached block's first reencode_first tokens (EPIC) and the
        matched chunk of the reencode_focus best cached blocks are re-encoded, in the prefill's pass."""
        n_cached = max(0, len(prompt.blocks) - recompute_top)
        blocks: list[KVBlock] = [self.encoder.prefix(prompt)] + self.encoder.blocks(prompt, list(range(n_cached)))
        cache = stitch_cache(self.model.model, blocks, self.model.dtype)
        starts = list(itertools.accumulate(b.length for b in blocks))  # starts[i]: where prompt block i begins
        positions = set(first_tokens(list(zip(starts[:-1], starts[1:])), reencode_first)) if reencode_first else set()
        for i in range(n_cached):
            focus = prompt.focus[i] if prompt.focus else None
            if focus is not None and prompt.order[i] < reencode_focus:
                positions.update(range(starts[i] + focus[0], starts[i] + focus[1]))
        cached = prompt.prefix + [t for b in prompt.blocks[:n_cached] for t in b]
        feed = [t for b in prompt.blocks[n_cached:] for t in b] + prompt.suffix
        return cache, feed, sum(b.length for b in blocks), (cached, sorted(positions))

    def _memory(self, prompt, attention: str):
        """Long context: the passages as a context memory attended sparsely, and a cache of the prefix."""
        prefix = self.encoder.prefix(prompt)
        spec = self.settings.sparse_spec(attention)
        names = [part_key(name, prefix.length, spec, self.memory_dtype) for name in prompt.block_keys]
        if self._last_memory is not None and self._last_memory[0] == (spec, *names):
            memory = self._last_memory[1]
            memory.reset()
        else:
            # Passages already prepared for the memory need not even be read from the KV store.
            need = [i for i, name in enumerate(names) if self.parts.get(name) is None]
            loaded = dict(zip(need, self.encoder.blocks(prompt, need)))
            memory = build_memory(self.model.model, [loaded.get(i) for i in range(len(names))], prefix.length,
                                  spec, self.memory_dtype, prompt.block_keys, self.parts)
            self._last_memory = ((spec, *names), memory)
        return memory, stitch_cache(self.model.model, [prefix], self.model.dtype)

    @staticmethod
    def abstain(question: str, attention: str, timings: dict) -> Answer:
        return Answer(question, ABSTAIN_TEXT, "", [], attention, True, dict(timings))
