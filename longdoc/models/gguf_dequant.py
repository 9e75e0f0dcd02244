"""GGUF k-quant dequantisation in torch, for converting a packaged reader once.

gguf's own dequantisation is numpy, single-threaded and grouped 16 rows at a time in Python: 21 s for the
1.5B's Q4_K_M weights on this CPU, most of the conversion. These are the same formulas vectorised over a
whole tensor in torch (multi-threaded, and identical float32 results: tests/test_gguf_dequant.py compares them
with gguf's). Q4_K_M files hold Q4_K and Q6_K; every other type goes to gguf's own code.

Layouts (256 weights per block, ggml's k-quants):
- Q4_K, 144 bytes: float16 d, float16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32,
  then 128 bytes of 4-bit values; each 32 bytes hold two sub-blocks, low nibbles first.
  weight = d * scale[j] * q - dmin * min[j].
- Q6_K, 210 bytes: 128 bytes of low 4 bits, 64 bytes of high 2 bits, 16 int8 scales (one per 16
  weights), float16 d. weight = d * scale[j] * (q - 32)."""
from __future__ import annotations

import numpy as np
import torch

QK_K = 256
BLOCKS_PER_STEP = 1024


def _float16(blocks: torch.Tensor, start: int) -> torch.Tensor:
    return blocks[:, start:start + 2].contiguous().view(torch.float16).float()


def _nibbles(packed: torch.Tensor) -> torch.Tensor:
    """(..., 1, n) bytes -> (..., 2, n): low nibbles, then high."""
    return torch.cat([packed & 0x0F, packed >> 4], dim=-2)


def _q4_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    d, dmin = _float16(blocks, 0), _float16(blocks, 2)
    packed = blocks[:, 4:16].reshape(n, 3, 4)
    low, mins, high = packed[:, 0], packed[:, 1], packed[:, 2]
    # sub-blocks 0-3 keep their 6 bits whole; 4-7 take 4 bits from the last row and 2 from the top of the first two
    scale = torch.cat([low & 0x3F, (high & 0x0F) | ((low >> 2) & 0x30)], dim=1)
    minimum = torch.cat([mins & 0x3F, (high >> 4) | ((mins >> 2) & 0x30)], dim=1)
    d = (d * scale.float()).reshape(n, 8, 1)
    dm = (dmin * minimum.float()).reshape(n, 8, 1)
    q = _nibbles(blocks[:, 16:].reshape(n, 4, 1, 32)).reshape(n, 8, 32).float()
    return (d * q - dm).reshape(n, QK_K)


def _q6_k(blocks: torch.Tensor) -> torch.Tensor:
    n = blocks.shape[0]
    scales = blocks[:, 192:208].contiguous().view(torch.int8).float()
    d = (_float16(blocks, 208) * scales).reshape(n, QK_K // 16, 1)
    low = _nibbles(blocks[:, :128].reshape(n, 2, 1, 64)).reshape(n, 8, 32)
    high = blocks[:, 128:192].reshape(n, 2, 1, 32)
    high = torch.cat([(high >> shift) & 0x03 for shift in (0, 2, 4, 6)], dim=-2).reshape(n, 8, 32)
    q = ((low | (high << 4)).to(torch.int8) - 32).reshape(n, QK_K // 16, 16).float()
    return (d * q).reshape(n, QK_K)


_KERNELS = {"Q4_K": (_q4_k, 144), "Q6_K": (_q6_k, 210)}


def dequantize(data: np.ndarray, qtype) -> np.ndarray:
    """gguf.dequantize's contract: a tensor's bytes as stored (rows of blocks) -> float32 weights."""
    from gguf.quants import dequantize as numpy_dequantize  # gguf's own (gguf.dequantize may be this one)

    kernel = _KERNELS.get(getattr(qtype, "name", ""))
    if kernel is None:
        return numpy_dequantize(data, qtype)
    fn, type_size = kernel
    raw = np.asarray(data).view(np.uint8)
    if raw.shape[-1] % type_size:
        raise ValueError(f"{qtype.name} row of {raw.shape[-1]} bytes is not a whole number of blocks")
    blocks = raw.reshape(-1, type_size)  # still the file's read-only memory map
    out = torch.empty(blocks.shape[0], QK_K)
    for start in range(0, blocks.shape[0], BLOCKS_PER_STEP):  # temporaries that stay in cache
        # each step's bytes copied out of the map (torch wants writable memory), not the whole tensor's
        step = torch.from_numpy(np.array(blocks[start:start + BLOCKS_PER_STEP]))
        out[start:start + BLOCKS_PER_STEP] = fn(step)
    return out.reshape(*raw.shape[:-1], raw.shape[-1] // type_size * QK_K).numpy()
