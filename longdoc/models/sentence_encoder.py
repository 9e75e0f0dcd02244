"""A sentence-transformers model run through transformers alone.

Nearly every retrieval embedder is saved as a Transformer module, then Pooling, then optionally Normalize
(its modules.json). Running those three here gives the same vectors as the sentence-transformers
package without importing it (it brings scikit-learn and pandas): loading the packaged MiniLM and
encoding one text takes 528 MB and 4.4-4.9 s here against 643 MB and 6.1-6.4 s through the package,
paid by every `index` and `search`. BERT-family models skip transformers too (bert.py)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import ModelError
from .bert import BertEncoder, FastTokenizer, bert_config

_SUPPORTED = {"Transformer", "Pooling", "Normalize"}
_POOLING_MODES = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "lasttoken")
_HUB_FILES = ["*.json", "*.txt", "*.model", "*.safetensors", "1_Pooling/*"]


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {path}: {e}") from None


def model_dir(source: str) -> Path:
    """A local directory holding the model: `source` itself, or a hub id's download (network needed
    unless cached; a bare name means sentence-transformers/<name>, as that package reads it)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    repo = source if "/" in source else f"sentence-transformers/{source}"
    return Path(snapshot_download(repo, allow_patterns=_HUB_FILES))


def load_tokenizer(base: str | Path):
    """The tokenizer of the model in `base`: bert.py's for a BERT it runs, else transformers'."""
    base = Path(base)
    if bert_config(base) is not None:
        return FastTokenizer(base)
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return AutoTokenizer.from_pretrained(str(base))


class SentenceEncoder:
    """Tokenize, run the transformer, pool and normalise, as the saved sentence-transformers modules say."""

    def __init__(self, source: str, device: str = "cpu"):
        root = model_dir(source)
        modules = _read_json(root / "modules.json", [{"type": "Transformer", "path": ""}, {"type": "Pooling", "path": "1_Pooling"}])
        kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
        unsupported = [k for k in kinds if k not in _SUPPORTED]
        if kinds[:1] != ["Transformer"] or unsupported:
            raise ModelError(f"embedder {source}: modules {kinds} are not supported; longdoc runs a Transformer, "
                             f"then Pooling and Normalize ({', '.join(unsupported) or 'no Transformer first'})")
        base = root / modules[0].get("path", "")
        config = _read_json(base / "sentence_bert_config.json", None) or _read_json(root / "sentence_bert_config.json", {})
        pooling = next((m for m in modules if m["type"].endswith("Pooling")), None)
        pool = _read_json(root / pooling["path"] / "config.json", {}) if pooling else {"pooling_mode_mean_tokens": True}
        modes = [m for m in _POOLING_MODES if pool.get(f"pooling_mode_{m}")]
        if len(modes) != 1:
            raise ModelError(f"embedder {source}: pooling {modes or 'none'} is not supported; one of {_POOLING_MODES}")
        self.pooling = modes[0]
        self.normalize = "Normalize" in kinds
        self.lower_case = bool(config.get("do_lower_case", False))
        self.tokenizer = load_tokenizer(base)
        bert = bert_config(base)
        if bert is not None:
            self.model = BertEncoder.load(base, bert).to(device)
        else:
            from transformers import AutoModel

            self.model = AutoModel.from_pretrained(str(base), dtype=torch.float32).to(device).eval()
        limit = config.get("max_seq_length") or min(self.tokenizer.model_max_length,
                                                     getattr(self.model.config, "max_position_embeddings", 512))
        self.max_seq_length = int(limit)
        self.device = torch.device(device)
        self.dim = int(pool.get("word_embedding_dimension") or self.model.config.hidden_size)

    def tokenize(self, texts: list[str]) -> dict:
        texts = [t.strip().lower() if self.lower_case else t.strip() for t in texts]
        if isinstance(self.tokenizer, FastTokenizer):
            return {k: v.to(self.device) for k, v in self.tokenizer.tensors(texts, self.max_seq_length).items()}
        enc = self.tokenizer(texts, padding=True, truncation="longest_first", max_length=self.max_seq_length,
                             return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}

    @torch.inference_mode()
    def __call__(self, features: dict) -> torch.Tensor:
        """(B, dim) sentence embeddings of tokenized texts."""
        tokens = self.model(**features).last_hidden_state  # (B, T, H)
        mask = features["attention_mask"].unsqueeze(-1).to(tokens.dtype)
        if self.pooling == "cls_token":
            out = tokens[:, 0]
        elif self.pooling == "max_tokens":
            out = tokens.masked_fill(mask == 0, float("-inf")).max(dim=1).values
        elif self.pooling == "lasttoken":  # right padding: the last real token of each row
            out = tokens[torch.arange(len(tokens)), features["attention_mask"].sum(1) - 1]
        else:
            total, count = (tokens * mask).sum(1), mask.sum(1).clamp(min=1e-9)
            out = total / (count.sqrt() if self.pooling == "mean_sqrt_len_tokens" else count)
        return torch.nn.functional.normalize(out, p=2, dim=1) if self.normalize else out
