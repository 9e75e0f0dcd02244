"""The reader LLM, loaded once with longdoc's registered attention, plus a fingerprint that keys its KV."""
from __future__ import annotations

import hashlib
import re

from ..attention import register
from ..models.embedders import pick_device
from ..models.readers import load_reader, resolve_precision


class ReaderModel:
    def __init__(self, name: str, device: str = "auto", precision: str = "auto"):
        self.name = name
        self.device = pick_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model, self.tokenizer = load_reader(name, self.device, self.precision)
        self.reader_id = self._fingerprint()
        self.model.set_attn_implementation(register())
        self.dtype = next(self.model.parameters()).dtype
        self.stop_ids = self._stop_ids()

    def _stop_ids(self) -> set[int]:
        ids = set()
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            ids.update(source if isinstance(source, (list, tuple)) else [source] if source is not None else [])
        for token in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            tid = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id:
                ids.add(tid)
        vocab = self.model.get_input_embeddings().num_embeddings
        return {i for i in ids if 0 <= i < vocab}  # a tokenizer may name tokens the model cannot emit

    def _fingerprint(self) -> str:
        """Name plus a digest of the config, the precision and a sample of the weights: KV from other
        weights, or the same weights at another precision, never matches."""
        h = hashlib.sha256(self.model.config.to_json_string(use_diff=False).encode())
        if self.precision != "float32":  # float32 keeps the ids that KV stores were written under
            h.update(self.precision.encode())
        for p in list(self.model.parameters())[:2] + list(self.model.parameters())[-2:]:
            h.update(p.detach().flatten()[:4096].float().cpu().numpy().tobytes())
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name.rstrip("/").split("/")[-1])[:48]
        return f"{slug}-{h.hexdigest()[:12]}"
