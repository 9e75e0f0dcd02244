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


class Int8Linear(nn.Module):
    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()
        # the kernel takes bfloat16 scales: round them first and quantise with what it will multiply by
        scale = (w.abs().amax(dim=1).clamp_min(1e-8) / 127.0).to(torch.bfloat16)
        q = torch.round(w / scale.float()[:, None]).clamp(-127, 127)
        self.register_buffer("weight_int8", q.to(torch.int8))
        self.register_buffer("scale", scale)
        # a copy: a bfloat16 bias would otherwise stay a view of the loaded checkpoint, and one view keeps
        # the whole memory-mapped file resident (3 GB for the 1.5B)
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16, copy=True)
        self.register_buffer("bias", bias)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, shape[-1]).to(torch.bfloat16)
        if rows.shape[0] <= INT8_KERNEL_ROWS:
            y = torch._weight_int8pack_mm(rows, self.weight_int8, self.scale)
        else:  # a prefill: a bfloat16 GEMM over the int8 values (exact in bfloat16), scaled after
            y = (rows @ self.weight_int8.to(torch.bfloat16).T) * self.scale
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace every nn.Linear in `model` by an Int8Linear, in place; returns the model."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, child_name, Int8Linear(child))
    return model


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS. Quantising frees a float32 temporary per layer, and glibc
    keeps such blocks in its heap once its mmap threshold has grown: 1.2 GB of the 1.5B's load."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
