"""The reader's attention: exact torch attention registered with transformers, attention-mass recording
for citations, RoPE re-rotation and Block-Attention stitching of cached per-chunk KV, and long context:
a context memory attended sparsely (memory.py: landmark blocks, retrieval clusters) with Triton kernels
(kernels.py) and their exact torch references (sparse.py)."""
from .interface import ATTN_IMPLEMENTATION, AttentionMass, record_attention_mass, register
from .rope import rerotate_keys, rotary_cos_sin
from .block import stitch_cache

__all__ = ["ATTN_IMPLEMENTATION", "AttentionMass", "record_attention_mass", "register", "rerotate_keys",
           "rotary_cos_sin", "stitch_cache"]
