"""BERT-family encoders (MiniLM, BGE, E5) and their tokenizer.json, in plain torch and `tokenizers`.

transformers is the general way to run an embedder, but importing it (and through it torch.distributed,
dynamo and the loss functions) took 3-4 s of every cold `longdoc search`, longer than the whole query.
A BERT encoder is a few matrix products; run here it computes what transformers' BertModel computes
(tests/test_embedder.py checks it against BertModel on the packaged MiniLM). The module names match
transformers', so its safetensors load as they are and the multi-head hook finds the same layer. Models
of other families, or with options this does not cover, go through transformers (sentence_encoder.py).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

_WEIGHTS = "model.safetensors"


def bert_config(base: Path) -> SimpleNamespace | None:
    """The model's config when this module can run it: a BERT with absolute positions, GELU and
    safetensors weights, and a tokenizer.json. None sends it to transformers."""
    try:
        config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    fits = (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and (base / _WEIGHTS).exists() and (base / "tokenizer.json").exists())
    return SimpleNamespace(**config) if fits else None


class _Named(nn.Module):
    """A container whose children are named as in transformers' BERT (attention.self, attention.output)."""

    def __init__(container, /, **children: nn.Module):  # noqa: N805 - `self` is a child's name here
        super().__init__()
        for name, child in children.items():
            container.add_module(name, child)


class _Layer(nn.Module):
    def __init__(self, c: SimpleNamespace):
        super().__init__()
        h, eps = c.hidden_size, c.layer_norm_eps
        self.heads = c.num_attention_heads
        self.attention = _Named(self=_Named(query=nn.Linear(h, h), key=nn.Linear(h, h), value=nn.Linear(h, h)),
                                output=_Named(dense=nn.Linear(h, h), LayerNorm=nn.LayerNorm(h, eps=eps)))
        self.intermediate = _Named(dense=nn.Linear(h, c.intermediate_size))
        self.output = _Named(dense=nn.Linear(c.intermediate_size, h), LayerNorm=nn.LayerNorm(h, eps=eps))

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        B, T, H = x.shape
        qkv = self.attention.self

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, heads, T, d)
            return t.view(B, T, self.heads, H // self.heads).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(split(qkv.query(x)), split(qkv.key(x)), split(qkv.value(x)),
                                             attn_mask=bias, scale=1 / math.sqrt(H // self.heads))
        ctx = ctx.transpose(1, 2).reshape(B, T, H)  # the heads concatenated: what the MRAG hook reads
        out = self.attention.output
        x = out.LayerNorm(out.dense(ctx) + x)
        return self.output.LayerNorm(self.output.dense(F.gelu(self.intermediate.dense(x))) + x)


class BertEncoder(nn.Module):
    def __init__(self, config: SimpleNamespace):
        super().__init__()
        c = self.config = config
        self.embeddings = _Named(word_embeddings=nn.Embedding(c.vocab_size, c.hidden_size),
                                 position_embeddings=nn.Embedding(c.max_position_embeddings, c.hidden_size),
                                 token_type_embeddings=nn.Embedding(c.type_vocab_size, c.hidden_size),
                                 LayerNorm=nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps))
        self.encoder = _Named(layer=nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers)))

    @classmethod
    def load(cls, base: Path, config: SimpleNamespace) -> "BertEncoder":
        from safetensors.torch import load_file

        weights = {k.removeprefix("bert."): v for k, v in load_file(str(base / _WEIGHTS)).items()}
        weights = {k: v for k, v in weights.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        model = cls(config)
        model.load_state_dict(weights, strict=True)  # a missing or misshapen tensor is an error, not zeros
        return model.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> SimpleNamespace:
        e = self.embeddings
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        x = e.LayerNorm(e.word_embeddings(input_ids) + e.position_embeddings(positions)[None]
                        + e.token_type_embeddings(types))
        # Padding keys get the dtype's lowest value added, as transformers does (not -inf: a row of
        # padding alone would be NaN). Without padding (one query) there is no mask, and SDPA takes its
        # faster path.
        bias = (None if bool(attention_mask.all()) else
                (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min)
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return SimpleNamespace(last_hidden_state=x)


class FastTokenizer:
    """A tokenizer.json run by `tokenizers` (what transformers' fast tokenizers wrap), answering the two
    calls longdoc makes: the chunker's (token offsets, no special tokens) and the encoder's (padded,
    truncated tensors)."""

    def __init__(self, base: Path):
        from tokenizers import Tokenizer

        self.name_or_path = str(base)
        self._plain = Tokenizer.from_file(str(base / "tokenizer.json"))
        self._plain.no_truncation()
        self._plain.no_padding()
        try:
            settings = json.loads((base / "tokenizer_config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            settings = {}
        self.model_max_length = int(settings.get("model_max_length") or 512)
        self._pad = (settings.get("pad_token") or "[PAD]")
        self._batched: dict[int, object] = {}

    def __call__(self, texts: list[str], add_special_tokens: bool = True, return_offsets_mapping: bool = False,
                 return_attention_mask: bool = False, return_token_type_ids: bool = False, verbose: bool = False) -> dict:
        """Token ids (and offsets) as lists, without padding or truncation. The chunker's other flags ask
        for nothing this returns; padded model input comes from tensors(), and any other keyword (padding=,
        return_tensors=) is a TypeError rather than silently ignored."""
        encodings = self._plain.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        out = {"input_ids": [e.ids for e in encodings]}
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encodings]
        return out

    def tensors(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask and token_type_ids, padded to the longest text, each truncated to
        max_length tokens with its special tokens."""
        tok = self._batched.get(max_length)
        if tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(self._plain.to_str())
            tok.enable_truncation(max_length)
            tok.enable_padding(pad_id=tok.token_to_id(self._pad) or 0, pad_token=self._pad)
            self._batched[max_length] = tok
        encodings = tok.encode_batch(list(texts))
        return {"input_ids": torch.tensor([e.ids for e in encodings]),
                "attention_mask": torch.tensor([e.attention_mask for e in encodings]),
                "token_type_ids": torch.tensor([e.type_ids for e in encodings])}
