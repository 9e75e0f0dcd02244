"""Weight-only int8 for a reader's Linear layers on the CPU.

Decode on a CPU is bound by reading every weight once per token; int8 weights are a quarter of float32's
bytes. Only the weights are quantised (symmetric, one scale per output channel): activations stay in
bfloat16 through torch's int8-weight matmul kernel. Dynamic int8 (torch.ao's quantize_dynamic) also
quantises each activation row to int8 with a single scale, and Qwen2's activation outliers lose most
answers that way (bench/gold_reader.py: Quoref EM 0.15 against 0.42 in float32)."""
from __future__ import annotations

import ctypes

import torch
from torch import nn


# Up to this many rows go through the int8 kernel: decode, and a short question prefilled after stored
# passage KV. More (a whole prompt) through a bfloat16 GEMM over the int8 values, scaled after. The two
# cost the same near 32 rows on this 2-core CPU (bench/int8_matmul.py, Qwen2.5-1.5B's MLP shapes).
INT8_KERNEL_ROWS = 32
QUANTISE_ROWS = 256  # rows of a weight quantised together: a float32 block that stays in cache


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX). Without it torch emulates
    bfloat16 GEMMs: on an AVX-512 Xeon without BF16, a 512-row prefill GEMM over the 0.5B's MLP weights took
    70.8 ms in bfloat16 against 15.3 ms in float32, dequantising included (bench/int8_matmul.py)."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


# The prefill GEMM's dtype: bfloat16 where the CPU has it (a quarter of the bytes to read), float32 where
# bfloat16 would be emulated. Both multiply the same int8 weights exactly, so the KV a store holds is
# the same model's either way; float32 only rounds the activations less.
PREFILL_DTYPE = torch.bfloat16 if native_bfloat16() else torch.float32


class Int8Linear(nn.Module):
    def __init__(self, weight_int8: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)
        self.out_features, self.in_features = weight_int8.shape

    @classmethod
    def quantise(cls, linear: nn.Linear) -> "Int8Linear":
        w = linear.weight.detach()
        # the kernel takes bfloat16 scales: round them first and quantise with what it will multiply by
        scale = (w.abs().amax(dim=1).float().clamp_min(1e-8) / 127.0).to(torch.bfloat16)
        divisor = scale.float()[:, None]
        q = torch.empty(w.shape, dtype=torch.int8, device=w.device)
        # a few rows at a time, in place: the same int8 values as whole-matrix float32 temporaries, which
        # took 15-21 s for the 1.5B here against 1-3 s (memory traffic and freshly paged-in temporaries)
        for start in range(0, w.shape[0], QUANTISE_ROWS):
            rows = slice(start, start + QUANTISE_ROWS)
            q[rows] = w[rows].to(torch.float32, copy=True).div_(divisor[rows]).round_().clamp_(-127, 127)
        # a copy: a bfloat16 bias would otherwise stay a view of the loaded checkpoint, and one view keeps
        # the whole memory-mapped file resident (3 GB for the 1.5B)
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16, copy=True)
        return cls(q, scale, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1])
        if rows.shape[0] <= INT8_KERNEL_ROWS:
            y = torch._weight_int8pack_mm(rows.to(torch.bfloat16), self.weight_int8, self.scale)
        else:  # a prefill: a GEMM over the int8 values (exact in bfloat16 and float32), scaled after
            y = (rows.to(PREFILL_DTYPE) @ self.weight_int8.to(PREFILL_DTYPE).T) * self.scale
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)


def quantize_int8(model: nn.Module, stored: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Replace every nn.Linear in `model` by an Int8Linear, in place; returns the model. `stored`: the
    int8 tensors saved from an earlier quantisation (int8_tensors), used instead of quantising again,
    so the float weights are never even read."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                key = f"{name}.{child_name}" if name else child_name
                saved = stored.get(f"{key}.weight_int8") if stored is not None else None
                if saved is not None and saved.shape == child.weight.shape:
                    layer = Int8Linear(saved, stored[f"{key}.scale"], stored.get(f"{key}.bias"))
                else:
                    layer = Int8Linear.quantise(child)
                setattr(module, child_name, layer)
    return model


def int8_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """What quantize_int8 made, by module name, to save and pass back as `stored`."""
    return {f"{name}.{buffer}": getattr(module, buffer) for name, module in model.named_modules()
            if isinstance(module, Int8Linear) for buffer in ("weight_int8", "scale", "bias")
            if getattr(module, buffer) is not None}


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS. Quantising frees a float32 temporary per layer, and glibc
    keeps such blocks in its heap once its mmap threshold has grown: 1.2 GB of the 1.5B's load."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
