"""Context memory: long context held outside the model's KV cache and attended sparsely (DESIGN §4).

The prompt's layout while reading a long context:
- sink: the prompt prefix (system turn), positions 0..P-1, in the KV cache, always attended;
- memory: the passages' keys and values, placed by the layout:
  - ordered (the default): each query row's kept keys are placed at P.., one position each, in their
    reading order and right-aligned against the question (Landmark Attention's contiguous placement), so
    whatever is read sits at distances the model was trained on and keeps its word order;
  - fixed: every key at position P (InfLLM's fixed distance); word order inside the memory is lost,
    so a model cannot copy a sequence (a pass key's digits) from it;
- local: the question, then the answer, after the memory (ordered: at P + the keys a row may read;
  fixed: at P + gap), in the KV cache, always attended.

Each query row, per layer and KV head, scores the memory's blocks and attends exactly over the top-k;
the result is merged with the exact attention over sink and local by log-sum-exp. Two block kinds:
- landmark: blocks of consecutive keys, represented by their mean key or Quest's min/max bounds;
- retrieval: balanced spherical k-means clusters of keys (clusters.py), a query-aware index that reads
  the few keys a query points at, wherever they are.
Some blocks are pinned, kept by every row whatever it scores them: those holding given context tokens
(pin_tokens: the sentences the reader's scan picks), or else the blocks the question's rows score highest.

Keys are stored rotated at position P. Block scores use them as stored (under `fixed` they are exactly
the attention logits; under `ordered`, a kept key is then turned by its offset from P before it is
attended, which rotation composes exactly)."""
from __future__ import annotations

import contextvars
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import torch

from . import sparse
from .block import KVBlock
from .clusters import cluster_order
from .rope import rerotate_keys, rotary_cos_sin
from .scoped import scoped

KINDS = ("landmark", "retrieval")
LAYOUTS = ("ordered", "fixed")
_active: contextvars.ContextVar["ContextMemory | None"] = contextvars.ContextVar("longdoc_memory", default=None)


@dataclass(frozen=True)
class SparseSpec:
    kind: str = "landmark"  # landmark | retrieval
    block: int = 64  # landmark: consecutive keys per block; retrieval: keys per cluster
    keys: int = 2048  # keys read per query row and KV head (top_k = keys // block blocks)
    rep: str = "mean"  # block representative: mean | minmax (Quest)
    kernels: str = "auto"  # auto (Triton on a GPU, torch on the CPU) | triton | torch
    layout: str = "ordered"  # where kept keys are placed: ordered | fixed (see the module's docstring)
    pin: float = 0.5  # share of the budget the answer's rows spend on the blocks the question read most

    @property
    def top_k(self) -> int:
        return max(1, self.keys // self.block)

    @property
    def slots(self) -> int:
        """Positions a row's kept keys take under the ordered layout."""
        return self.top_k * self.block


@dataclass
class Read:
    """What one layer's query rows read from the memory: the kept blocks (S, Hkv, K), their turn (ordered
    layout) and, where the torch reference attended, the last row's logits (Hkv, G, K*B)."""
    blocks: torch.Tensor
    turn: sparse.Turn | None
    last_logits: torch.Tensor | None


@dataclass
class Part:
    """One passage made ready for the memory: keys rotated to the memory's position, reordered into
    clusters for retrieval, and padded to whole blocks. It depends only on the passage, so it is cached."""
    keys: torch.Tensor  # (layers, Hkv, Tp, D)
    values: torch.Tensor
    valid: torch.Tensor  # (Tp,) False on padding
    order: torch.Tensor | None  # (layers, Hkv, Tp): token of each stored key within the passage
    tokens: int


def prepare_part(model, block: KVBlock, position: int, spec: SparseSpec, dtype: torch.dtype) -> Part:
    device = next(model.parameters()).device
    src = rotary_cos_sin(model, torch.arange(block.start, block.start + block.length, device=device))
    keys = rerotate_keys(block.keys.to(device, torch.float32), src,
                         rotary_cos_sin(model, torch.tensor([position], device=device))).to(dtype)
    values = block.values.to(device, dtype)
    layers, hkv, t, d = keys.shape
    order = None
    if spec.kind == "retrieval":  # the passage is one clustering window: a short cluster goes last
        window = -(-t // spec.block) * spec.block
        # Keys share a large common component, which would dominate their directions; a query's logits
        # shift by a constant under it, so cluster on what sets keys apart: keys minus the passage mean.
        flat = keys.float()
        centred = flat - flat.mean(dim=2, keepdim=True)
        order = cluster_order(centred.reshape(layers * hkv, t, d), spec.block, window).view(layers, hkv, t)
        keys = keys.gather(2, order[..., None].expand(-1, -1, -1, d))
        values = values.gather(2, order[..., None].expand(-1, -1, -1, d))
    pad = -t % spec.block
    valid = torch.arange(t + pad, device=device) < t
    if order is not None:
        order = torch.nn.functional.pad(order, (0, pad))
    return Part(torch.nn.functional.pad(keys, (0, 0, 0, pad)), torch.nn.functional.pad(values, (0, 0, 0, pad)),
                valid, order, t)


class ContextMemory:
    """Per-layer memory: keys (layers, Hkv, T, D) rotated at one position, values alike, passages padded
    to whole blocks (`valid` marks real keys); `order` maps each stored key to its context token."""

    def __init__(self, parts: list[Part], spec: SparseSpec, position: int,
                 turns: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.spec = spec
        self.position = position  # where the stored keys are rotated
        self.turns = turns  # ordered layout: (cos, sin) (slots, D) of the offsets 0..slots-1 from position
        self.keys = torch.cat([p.keys for p in parts], dim=2)
        self.values = torch.cat([p.values for p in parts], dim=2)
        self.valid = torch.cat([p.valid for p in parts])
        self.length = sum(p.tokens for p in parts)  # context tokens
        self.slots = min(spec.slots, self.length)  # ordered layout: the positions kept keys are placed at
        orders, offset = [], 0
        for p in parts:
            local = p.order if p.order is not None else torch.arange(p.valid.shape[0], device=p.keys.device).expand(
                *p.keys.shape[:3])
            orders.append(local + offset)
            offset += p.tokens
        self.order = torch.cat(orders, dim=2)
        self.reps = [sparse.block_reps(self.keys[layer], spec.block, self.valid) for layer in range(self.keys.shape[0])]
        self.reset()

    def question_start(self, gap: int) -> int:
        """The position of the question's first token: after the slots (ordered) or `gap` after P (fixed)."""
        return self.position + (self.slots if self.spec.layout == "ordered" else gap)

    def turn(self, layer: int, blocks: torch.Tensor) -> sparse.Turn | None:
        """Ordered layout: (slots (..., Hkv, K*B), cos, sin) placing each kept key (blocks (..., Hkv, K)) at
        its slot: kept keys in reading order, the last one next to the question (padding sorts first, and
        its slot is unused: it is masked); blocks pinned by pin_tokens come after the rest, by pin_after."""
        if self.spec.layout != "ordered":
            return None
        tokens = sparse.gather_blocks(self.order[layer], blocks, self.spec.block)  # (..., Hkv, K*B)
        after = self.pin_after.get(layer)
        if after is not None:  # pinned sentences go last, the best last of all, where a small reader looks most
            late = after.expand(*blocks.shape[:-1], -1).gather(-1, blocks)
            tokens = tokens + late.repeat_interleave(self.spec.block, dim=-1) * self.length
        ok = self.valid.view(-1, self.spec.block)[blocks].flatten(-2)
        rank = tokens.masked_fill(~ok, -1).argsort(-1).argsort(-1)
        slot = (rank + (self.slots - tokens.shape[-1])).clamp(min=0)
        return slot, *self.turns

    def reset(self) -> None:
        """Clear what one answer recorded, so the memory can serve the next question."""
        # Attention of answer rows per context token, summed where the keys are: no host sync per layer and token.
        device = self.keys.device
        self._mass = torch.zeros(self.length, dtype=torch.float64 if device.type == "cpu" else torch.float32,
                                 device=device)
        self.read = 0  # keys read, summed over rows, layers and KV heads
        self.rows = 0  # (row, layer, KV head) triples served
        self.pinned: dict[int, torch.Tensor] = {}  # layer -> (1, Hkv, P) blocks the question read most
        # layer -> (Hkv, blocks): where each block goes under the ordered layout, after every block with a
        # lower value (pin_tokens' blocks: above 0, the best sentence's highest; the rest 0, in reading order)
        self.pin_after: dict[int, torch.Tensor] = {}

    def pin_tokens(self, tokens: torch.Tensor, ranks: torch.Tensor) -> None:
        """Pin, in every layer and KV head, the blocks holding these context tokens (of sentences ranked
        `ranks`, 0 best; best first), up to the whole budget (the caller bounds the tokens): every row keeps
        them, then its own best blocks, instead of the blocks the question's rows score highest, and the
        ordered layout places them after the other kept keys, the best sentence's last, nearest the
        question. Set after reset(), which clears pins; no tokens pin nothing."""
        if len(tokens) == 0:
            return
        budget, device = self.spec.top_k, self.keys.device
        tokens, ranks = tokens.to(device), ranks.tolist()
        top = max(ranks) + 1  # the best sentence's blocks go last of all
        slots = torch.arange(self.order.shape[-1], device=device)
        hkv, n_blocks = self.order.shape[1], self.order.shape[-1] // self.spec.block
        for layer in range(self.order.shape[0]):
            where = torch.zeros(hkv, self.length, dtype=torch.long, device=device)
            for head in range(hkv):  # stored slot of each context token
                where[head, self.order[layer, head][self.valid]] = slots[self.valid]
            rows, after = [], torch.zeros(hkv, n_blocks, dtype=torch.long)
            for head, blocks in enumerate((where[:, tokens] // self.spec.block).tolist()):
                first = dict(zip(reversed(blocks), reversed(ranks)))  # each block's best sentence rank
                picked = list(dict.fromkeys(blocks))[:budget]  # distinct, in the tokens' order
                rows.append(picked + picked[-1:] * (budget - len(picked)))
                after[head, picked] = torch.tensor([top - first[b] for b in picked])
            self.pinned[layer] = torch.tensor(rows, device=device).unsqueeze(0)
            self.pin_after[layer] = after.to(device)

    def select(self, layer: int, q: torch.Tensor) -> torch.Tensor:
        """(S, Hkv, K) block ids kept for the rows of q (S, Hq, D)."""
        from . import kernels

        scores = kernels.block_scores(q, self.reps[layer], self.spec.rep, self.spec.kernels)
        pinned = self.pinned.get(layer)
        if pinned is not None:  # the answer's rows keep what the question's rows read
            scores = scores.scatter(-1, pinned.expand(scores.shape[0], -1, -1), float("inf"))
        blocks = sparse.select_blocks(scores, self.spec.top_k)
        if pinned is None and self.spec.pin:
            # The blocks the question's rows together attend to most: each row's softmax over the block
            # scores, summed over rows. (Pinning the last row's picks found the same passkeys at 16K and
            # fewer at 128K: that row is the chat template's, not the question's.)
            share = torch.softmax(scores.float() * q.shape[-1] ** -0.5, dim=-1).sum(0, keepdim=True)
            self.pinned[layer] = sparse.select_blocks(share, max(1, int(self.spec.top_k * self.spec.pin)))
        return blocks

    def attend(self, layer: int, q: torch.Tensor, scaling: float) -> tuple[torch.Tensor, torch.Tensor, Read]:
        """(out (S, Hq, D), lse (S, Hq), what was read) of q's attention over this layer's memory."""
        from . import kernels

        blocks = self.select(layer, q)
        turn = self.turn(layer, blocks)
        keys, values, block = self.keys[layer], self.values[layer], self.spec.block
        last = None
        if kernels.use_triton(self.spec.kernels, q):
            out, lse = kernels.sparse_attention(q, keys, values, blocks, block, self.valid, scaling,
                                                self.spec.kernels, turn=turn)
        else:  # the reference keeps its logits, so record() need not gather and turn the keys again
            logits = sparse.kept_logits(q, keys, blocks, block, self.valid, scaling, turn)
            out, lse = sparse.attend_kept(logits, values, blocks, block)
            last = logits[-1]
        self.read += blocks.shape[0] * blocks.shape[1] * min(blocks.shape[2] * block, self.length)
        self.rows += blocks.shape[0] * blocks.shape[1]
        return out, lse, Read(blocks, turn, last)

    def record(self, layer: int, q: torch.Tensor, read: Read, lse: torch.Tensor, scaling: float) -> None:
        """Add the last row's attention to `mass`: q (S, Hq, D), what attend() read for it, and the total
        lse (S, Hq) over cache and memory. No host sync (nothing sized by the data)."""
        blocks, lse, block = read.blocks[-1:], lse[-1], self.spec.block
        logits = read.last_logits
        if logits is None:
            turn = None if read.turn is None else (read.turn[0][-1:], *read.turn[1:])
            logits = sparse.kept_logits(q[-1:], self.keys[layer], blocks, block, self.valid, scaling, turn)[0]
        hkv = logits.shape[0]
        p = torch.exp(logits - lse.view(hkv, -1, 1).float()).sum(1)  # (Hkv, K*B), summed over the group; 0 on padding
        tokens = sparse.gather_blocks(self.order[layer], blocks, block)[0].clamp(max=self.length - 1)
        self._mass.index_add_(0, tokens.flatten(), p.flatten().to(self._mass.dtype))

    @property
    def mass(self) -> torch.Tensor:
        return self._mass.to("cpu", torch.float64)

    def share_read(self) -> float:
        """The mean share of the context's keys read per query row and KV head."""
        return self.read / max(1, self.rows) / self.length


class LruCache:
    """Values by key, least recently used dropped once their `size` (bytes) passes max_bytes; the newest
    value always stays. Holds the reader's prepared passages and the scan's per-segment baselines."""

    def __init__(self, max_bytes: int, size: Callable[[object], int]):
        self.max_bytes = max_bytes
        self.size = size
        self.bytes = 0
        self._items: OrderedDict = OrderedDict()

    def get(self, key: tuple):
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def __setitem__(self, key: tuple, value) -> None:
        if key in self._items:
            self.bytes -= self.size(self._items.pop(key))
        self._items[key] = value
        self.bytes += self.size(value)
        while self.bytes > self.max_bytes and len(self._items) > 1:
            self.bytes -= self.size(self._items.popitem(last=False)[1])

    def get_or_compute(self, key: tuple, compute: Callable[[], object]):
        value = self.get(key)
        if value is None:
            value = self[key] = compute()
        return value

    def keys(self) -> list[tuple]:
        return list(self._items)


def tensor_bytes(*tensors: torch.Tensor | None) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def part_cache(max_bytes: int) -> LruCache:
    """Prepared passages by content key (build_memory's cache)."""
    return LruCache(max_bytes, lambda part: tensor_bytes(part.keys, part.values, part.order))


def part_key(name: str, position: int, spec: SparseSpec, dtype: torch.dtype) -> tuple:
    return name, position, spec.kind, spec.block, dtype


def build_memory(model, blocks: list[KVBlock | None], position: int, spec: SparseSpec,
                 dtype: torch.dtype = torch.float32, names: list[str] | None = None,
                 cache: LruCache | dict | None = None) -> ContextMemory:
    """A ContextMemory of these blocks (in order), every key re-rotated to `position`. With `names`
    (a content key per block) and a `cache`, prepared passages are reused across calls; a block may
    then be None where its part is cached."""
    if spec.kind not in KINDS:
        raise ValueError(f"unknown sparse attention {spec.kind!r}; choose one of {', '.join(KINDS)}")
    if spec.layout not in LAYOUTS:
        raise ValueError(f"unknown memory layout {spec.layout!r}; choose one of {', '.join(LAYOUTS)}")
    parts = []
    for i, block in enumerate(blocks):
        key = part_key(names[i], position, spec, dtype) if names is not None and cache is not None else None
        part = cache.get(key) if key is not None else None
        if part is None:
            part = prepare_part(model, block, position, spec, dtype)
            if key is not None:
                cache[key] = part
        parts.append(part)
    turns = None
    if spec.layout == "ordered":
        slots = min(spec.slots, sum(p.tokens for p in parts))
        turns = rotary_cos_sin(model, torch.arange(slots, device=next(model.parameters()).device))
    return ContextMemory(parts, spec, position, turns)


def use_memory(memory: ContextMemory):
    """While active, longdoc attention also attends to `memory` (see interface.longdoc_attention)."""
    return scoped(_active, memory)


def active_memory() -> ContextMemory | None:
    return _active.get()
