"""Where the reader's int8 weight-only Linear should switch from torch's int8 kernel to a dequantised GEMM.

For each weight shape of the packaged Qwen readers and a range of row counts (1 = a decoded token, ~30 =
a question prefilled after stored passages, hundreds = a whole prompt), time the int8 kernel and the
GEMM over dequantised weights in bfloat16 and in float32 against the baseline of a plain bfloat16 GEMM
over weights kept in bfloat16, and check they agree. Which prefill dtype wins depends on whether the CPU
multiplies bfloat16 in hardware (printed; Int8Linear chooses by the same test).

    python bench/int8_matmul.py [--quick]
"""
from __future__ import annotations

import argparse
import time

import torch

from common import write_result

from longdoc.models.int8 import PREFILL_DTYPE, native_bfloat16

# (in, out) of the MLP and attention projections: Qwen2.5-0.5B (896 wide) and -1.5B (1536 wide)
SHAPES = [(896, 4864), (4864, 896), (1536, 8960), (8960, 1536), (1536, 1536)]
ROWS = [1, 8, 16, 32, 64, 128, 512]


def timed(fn, repeats: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    shapes, rows_list, repeats = (SHAPES[2:4], [1, 32, 128], 3) if args.quick else (SHAPES, ROWS, 5)
    results = []
    print(f"native bfloat16: {native_bfloat16()}; Int8Linear prefills in {PREFILL_DTYPE}")
    print("| in x out | rows | bf16 GEMM ms (baseline) | int8 kernel ms (×) | dequantised bf16 GEMM ms (×) | "
          "dequantised f32 GEMM ms (×) | max rel. diff |")
    print("|---|---|---|---|---|---|---|")
    for k, n in shapes:
        w = torch.randn(n, k) / k**0.5
        scale = (w.abs().amax(dim=1) / 127).to(torch.bfloat16)
        q = torch.round(w / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
        w_bf16 = w.to(torch.bfloat16)
        for m in rows_list:
            x = torch.randn(m, k, dtype=torch.bfloat16)
            x32 = x.float()
            kernel = torch._weight_int8pack_mm(x, q, scale)
            deq = (x @ q.to(torch.bfloat16).T) * scale
            deq32 = (x32 @ q.float().T) * scale
            diff = max(float((kernel.float() - d.float()).abs().max() / d.float().abs().max()) for d in (deq, deq32))
            base = timed(lambda: x @ w_bf16.T, repeats)
            t_kernel = timed(lambda: torch._weight_int8pack_mm(x, q, scale), repeats)
            t_deq = timed(lambda: (x @ q.to(torch.bfloat16).T) * scale, repeats)
            t_deq32 = timed(lambda: (x32 @ q.float().T) * scale, repeats)
            results.append({"in": k, "out": n, "rows": m, "bf16_ms": base, "int8_kernel_ms": t_kernel,
                            "dequantised_ms": t_deq, "dequantised_f32_ms": t_deq32, "max_rel_diff": diff})
            print(f"| {k}x{n} | {m} | {base:.2f} | {t_kernel:.2f} ({t_kernel / base:.2f}×) | "
                  f"{t_deq:.2f} ({t_deq / base:.2f}×) | {t_deq32:.2f} ({t_deq32 / base:.2f}×) | {diff:.1e} |", flush=True)
    write_result("int8_matmul-quick" if args.quick else "int8_matmul",
                 {"threads": torch.get_num_threads(), "native_bfloat16": native_bfloat16(),
                  "prefill_dtype": str(PREFILL_DTYPE), "rows": results})


if __name__ == "__main__":
    main()
