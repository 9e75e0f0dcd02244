"""Chunk embeddings plus MRAG multi-head vectors from one forward pass of a sentence-transformer
(run through transformers: models/sentence_encoder.py).

A forward pre-hook on the last layer's attention output projection sees the concatenated heads'
attention outputs (B, T, H*d) before they are mixed. Reshaped to (B, T, H, d) and pooled over tokens
they give H vectors of d dims per text (DESIGN §3), once per pooling:
- `mean`: the mask-mean over tokens (MRAG's);
- `max`: the elementwise max over tokens: a topic that a few tokens carry strongly survives it, where the
  mean dilutes it among the text's other topics;
- `first`: the first token's ([CLS], <s>) own attention output: what that token gathers, per head, from
  the whole text, as MRAG's decoders use their last token.
With all three (the default), a text has 3H vectors, pooling-major: on MRAG Wikipedia's dev queries they
vote better together than the mean alone (bench/mrag.py, README).
"""
from __future__ import annotations

import hashlib
import threading
from typing import Callable

import numpy as np
import torch

from ..config import DEFAULT_HEAD_POOLING, parse_head_pooling
from ..errors import ModelError
from ..models.embedders import embedder_source, load_embedder_model

# Where a layer's attention output projection lives, per architecture family ({layer}: its index).
_ATTN_OUT_PATHS = [
    "encoder.layer.{layer}.attention.output.dense",  # BERT, RoBERTa, XLM-R, MiniLM, E5, BGE
    "encoder.layer.{layer}.attention.attn.o",  # MPNet
    "transformer.layer.{layer}.attention.out_lin",  # DistilBERT
]


def attention_output(model: torch.nn.Module, layer: int = -1) -> torch.nn.Module:
    """The output projection of attention layer `layer` (negative: from the last): its input is the
    heads' attention outputs, concatenated."""
    for path in _ATTN_OUT_PATHS:
        node = model
        try:
            for part in path.format(layer=layer).split("."):
                node = node[int(part)] if part.lstrip("-").isdigit() else getattr(node, part)
            return node
        except (AttributeError, IndexError, TypeError):
            continue
    raise ModelError(f"cannot find attention layer {layer}'s output projection in {type(model).__name__}; "
                     "multi-head embeddings support BERT-, MPNet- and DistilBERT-style encoders")


class MultiHeadEmbedder:
    def __init__(self, name: str, device: str = "auto", batch_size: int = 32,
                 pooling: str | None = DEFAULT_HEAD_POOLING):
        """pooling None: no head vectors (an index without them), so no capture at all."""
        self.name = name
        self.pooling = parse_head_pooling(pooling) if pooling is not None else ()
        self.source = embedder_source(name)
        self.model = load_embedder_model(name, device)
        self.batch_size = batch_size
        backbone = self.model.model
        self.model_heads = int(backbone.config.num_attention_heads)
        self.head_dim = int(backbone.config.hidden_size) // self.model_heads
        self.heads = self.model_heads * len(self.pooling)  # head vectors per text
        self.dim = self.model.dim
        self.tokenizer = self.model.tokenizer
        self.max_tokens = self.model.max_seq_length
        self._captured: list[torch.Tensor] = []
        self._lock = threading.Lock()
        if self.pooling:
            attention_output(backbone).register_forward_pre_hook(lambda _m, args: self._captured.append(args[0]))
        self.fingerprint = self._fingerprint()

    def _fingerprint(self) -> str:
        """Identifies the weights by what they compute: a hash of a probe text's rounded embedding."""
        dense, _ = self.encode(["longdoc embedder fingerprint: the quick brown fox."])
        return hashlib.sha256(np.round(dense, 3).tobytes()).hexdigest()[:16]

    @torch.inference_mode()
    def _encode_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        # One batch at a time: the hook's capture is shared state. Locking per batch, not per encode,
        # lets a served query slip in between an indexing job's batches.
        with self._lock:
            return self._encode_batch_locked(texts)

    def _encode_batch_locked(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        features = self.model.tokenize(texts)
        self._captured.clear()
        dense = self.model(features)
        if not self.pooling:
            return dense.float().cpu().numpy(), np.zeros((len(texts), 0, self.head_dim), np.float32)
        if len(self._captured) != 1:
            raise ModelError(f"expected one pass through the last attention layer, saw {len(self._captured)}")
        ctx = self._captured.pop()  # (B, T, H*d)
        pooled = torch.cat([pool(ctx, features["attention_mask"], name) for name in self.pooling], 1)
        heads = pooled.view(len(texts), self.heads, self.head_dim)
        return dense.float().cpu().numpy(), heads.float().cpu().numpy()

    def encode(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(dense (N, D) float32, heads (N, H, d) float32) in input order. Batches are length-sorted."""
        dense = np.zeros((len(texts), self.dim), np.float32)
        heads = np.zeros((len(texts), self.heads, self.head_dim), np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            d, h = self._encode_batch([texts[i] for i in idx])
            dense[idx], heads[idx] = d, h
            if on_batch:
                on_batch(len(idx))
        return dense, heads


def pool(ctx: torch.Tensor, attention_mask: torch.Tensor, name: str) -> torch.Tensor:
    """(B, H*d): the attention outputs ctx (B, T, H*d) pooled over each text's tokens (mask (B, T))."""
    mask = attention_mask.to(ctx.device).unsqueeze(-1)  # (B, T, 1)
    if name == "mean":
        m = mask.to(ctx.dtype)
        return (ctx * m).sum(1) / m.sum(1).clamp(min=1)
    if name == "max":
        return ctx.masked_fill(mask == 0, float("-inf")).amax(1)
    return ctx[:, 0]  # first: tokenizers put [CLS] / <s> first, and padding on the right
