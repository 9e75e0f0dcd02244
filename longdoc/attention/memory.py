"""Context memory: long context held outside the model's KV cache and attended sparsely (DESIGN §4).

The prompt's layout while reading a long context:
- sink: the prompt prefix (system turn), positions 0..P-1, in the KV cache, always attended;
- memory: the passages' keys and values, all placed at position P (InfLLM's fixed distance), so any
  amount of context sits at a distance the model was trained on;
- local: the question, then the answer, at positions P + gap.., in the KV cache, always attended.

Each query row, per layer and KV head, scores the memory's blocks and attends exactly over the top-k;
the result is merged with the exact attention over sink and local by log-sum-exp. Two block kinds:
- landmark: blocks of consecutive keys, represented by their mean key or Quest's min/max bounds;
- retrieval: balanced spherical k-means clusters of keys (clusters.py), a query-aware index that reads
  the few keys a query points at, wherever they are.

Because every memory key sits at one position, its rotation is one fixed linear map: keys are stored
already rotated there, and a query's score against them is exactly its attention logit."""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

import torch

from . import sparse
from .block import KVBlock
from .clusters import cluster_order
from .rope import rerotate_keys, rotary_cos_sin

KINDS = ("landmark", "retrieval")
_active: contextvars.ContextVar["ContextMemory | None"] = contextvars.ContextVar("longdoc_memory", default=None)


@dataclass(frozen=True)
class SparseSpec:
    kind: str = "landmark"  # landmark | retrieval
    block: int = 64  # landmark: consecutive keys per block; retrieval: keys per cluster
    keys: int = 2048  # keys read per query row and KV head (top_k = keys // block blocks)
    rep: str = "mean"  # block representative: mean | minmax (Quest)
    kernels: str = "auto"  # auto (Triton on a GPU, torch on the CPU) | triton | torch

    @property
    def top_k(self) -> int:
        return max(1, self.keys // self.block)


class ContextMemory:
    """Per-layer memory: keys (layers, Hkv, nb * block, D) rotated at one position, values alike, padded
    to whole blocks; `order` maps each stored key to its token in the context (retrieval reorders)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int, spec: SparseSpec,
                 order: torch.Tensor | None = None):
        self.spec = spec
        self.length = length
        nb = -(-length // spec.block)
        pad = nb * spec.block - length
        self.keys = torch.nn.functional.pad(keys, (0, 0, 0, pad))
        self.values = torch.nn.functional.pad(values, (0, 0, 0, pad))
        self.reps = [sparse.block_reps(keys[layer], spec.block) for layer in range(keys.shape[0])]
        self.order = order
        self.mass = torch.zeros(length, dtype=torch.float64)  # attention of answer rows per context token
        self.read = 0  # keys read, summed over rows, layers and KV heads
        self.rows = 0  # (row, layer, KV head) triples served

    @property
    def n_blocks(self) -> int:
        return self.reps[0].mean.shape[1]

    def select(self, layer: int, q: torch.Tensor) -> torch.Tensor:
        """(S, Hkv, K) block ids kept for the rows of q (S, Hq, D)."""
        from . import kernels

        scores = kernels.block_scores(q, self.reps[layer], self.spec.rep, self.spec.kernels)
        return sparse.select_blocks(scores, self.spec.top_k)

    def attend(self, layer: int, q: torch.Tensor, scaling: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(out (S, Hq, D), lse (S, Hq), blocks kept) of q's attention over this layer's memory."""
        from . import kernels

        blocks = self.select(layer, q)
        out, lse = kernels.sparse_attention(q, self.keys[layer], self.values[layer], blocks, self.spec.block,
                                            self.length, scaling, self.spec.kernels)
        self.read += blocks.shape[0] * blocks.shape[1] * min(blocks.shape[2] * self.spec.block, self.length)
        self.rows += blocks.shape[0] * blocks.shape[1]
        return out, lse, blocks

    def record(self, layer: int, q: torch.Tensor, blocks: torch.Tensor, lse: torch.Tensor, scaling: float) -> None:
        """Add one row's attention (q (Hq, D), its kept blocks (Hkv, K), total lse (Hq,)) to `mass`."""
        hkv, k = blocks.shape
        idx = (blocks[..., None] * self.spec.block + torch.arange(self.spec.block, device=q.device)).flatten(-2)
        keys = self.keys[layer][torch.arange(hkv, device=q.device)[:, None], idx].float()  # (Hkv, K*B, D)
        s = torch.einsum("hgd,htd->hgt", q.float().view(hkv, -1, q.shape[-1]), keys) * scaling
        p = torch.exp(s - lse.view(hkv, -1, 1).float()).sum(1)  # (Hkv, K*B), summed over the group
        valid = idx < self.length
        tokens = idx if self.order is None else self.order[layer].gather(1, idx.clamp(max=self.length - 1))
        self.mass.index_add_(0, tokens[valid].cpu(), p[valid].double().cpu())

    def share_read(self) -> float:
        """The mean share of the memory's keys read per query row and KV head."""
        return self.read / max(1, self.rows) / self.length


def build_memory(model, blocks: list[KVBlock], position: int, spec: SparseSpec,
                 dtype: torch.dtype = torch.float32) -> ContextMemory:
    """A ContextMemory of these blocks (in order), every key re-rotated to `position`."""
    if spec.kind not in KINDS:
        raise ValueError(f"unknown sparse attention {spec.kind!r}; choose one of {', '.join(KINDS)}")
    device = next(model.parameters()).device
    dst = rotary_cos_sin(model, torch.tensor([position], device=device))
    keys = torch.cat([rerotate_keys(b.keys.to(device, torch.float32),
                                    rotary_cos_sin(model, torch.arange(b.start, b.start + b.length, device=device)),
                                    dst).to(dtype) for b in blocks], dim=-2)
    values = torch.cat([b.values.to(device, dtype) for b in blocks], dim=-2)
    order = None
    if spec.kind == "retrieval":
        layers, hkv, t, d = keys.shape
        order = cluster_order(keys.reshape(layers * hkv, t, d), spec.block).view(layers, hkv, t)
        keys = keys.gather(2, order[..., None].expand(-1, -1, -1, d))
        values = values.gather(2, order[..., None].expand(-1, -1, -1, d))
    return ContextMemory(keys, values, keys.shape[2], spec, order)


@contextlib.contextmanager
def use_memory(memory: ContextMemory):
    """While active, longdoc attention also attends to `memory` (see interface.longdoc_attention)."""
    token = _active.set(memory)
    try:
        yield memory
    finally:
        _active.reset(token)


def active_memory() -> ContextMemory | None:
    return _active.get()
