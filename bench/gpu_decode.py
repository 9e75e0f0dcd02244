"""GPU decode-attention microbenchmark, one layer, one decode step, fp16 (DESIGN §6 anchors): full SDPA
against block selection with longdoc's Triton kernels (block scoring -> top-k -> split-K sparse attention
with log-sum-exp merge), at 32K-2M cached tokens, Llama-3-8B and SmolLM2-135M layer shapes.

Each config also checks the sparse output against the exact torch reference over the same kept blocks,
and keeping every block against SDPA. Run on a GPU: python bench/gpu_decode.py [--quick]"""
from __future__ import annotations

import json
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F
import triton

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from longdoc.attention import kernels, sparse  # noqa: E402

SHAPES = {"llama3-8b": (32, 8, 128), "smollm2-135m": (9, 3, 64)}
BLOCK, KEYS = 64, 2048


def bench(fn):
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")


def graphed(fn):
    """Capture fn in a CUDA graph: launch gaps between the step's kernels shrink to the replay's."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def run(shape: str, n: int) -> dict:
    hq, hkv, d = SHAPES[shape]
    g = torch.Generator(device="cuda").manual_seed(n)
    q = torch.randn(1, hq, d, device="cuda", dtype=torch.float16, generator=g)
    k = torch.randn(hkv, n, d, device="cuda", dtype=torch.float16, generator=g)
    v = torch.randn(hkv, n, d, device="cuda", dtype=torch.float16, generator=g)
    reps = sparse.block_reps(k, BLOCK)  # built once when the memory is built, not per step
    reps = sparse.BlockReps(BLOCK, reps.mean.half(), reps.kmin.half(), reps.kmax.half())
    scale = d ** -0.5
    valid = torch.ones(n, dtype=torch.bool, device="cuda")
    top_k = KEYS // BLOCK

    def full():
        return F.scaled_dot_product_attention(q[:, :, None], k[None], v[None], scale=scale, enable_gqa=True)

    def step():
        scores = kernels.block_scores(q, reps, "mean", "triton")
        blocks = scores.topk(top_k, dim=-1, sorted=False).indices
        return kernels.sparse_attention(q, k, v, blocks, BLOCK, valid, scale, "triton")

    scores = kernels.block_scores(q, reps, "mean", "triton")
    blocks = scores.topk(top_k, dim=-1, sorted=False).indices
    out, lse = kernels.sparse_attention(q, k, v, blocks, BLOCK, valid, scale, "triton")
    ref, ref_lse = sparse.sparse_attend(q.float(), k, v, blocks, BLOCK, valid, scale)
    err = rel(out, ref)
    score_err = rel(scores, sparse.block_scores(q.float(), reps, "mean"))
    row = {"shape": shape, "N": n, "kv_MB": 2 * k.numel() * 2 / 1e6, "block": BLOCK, "keys_read": KEYS,
           "frac_keys_read": KEYS / n, "rel_err_vs_torch_ref": err, "score_rel_err": score_err,
           "full_sdpa_ms": bench(full), "sparse_ms": bench(step),
           "score_ms": bench(lambda: kernels.block_scores(q, reps, "mean", "triton")),
           "topk_ms": bench(lambda: scores.topk(top_k, dim=-1, sorted=False)),
           "attend_ms": bench(lambda: kernels.sparse_attention(q, k, v, blocks, BLOCK, valid, scale, "triton"))}
    replay = graphed(step)
    row["sparse_graph_ms"] = bench(replay)
    # The attend kernels alone, in a graph (no launch gaps), against reading the kept K and V once.
    row["attend_graph_ms"] = bench(graphed(lambda: kernels.sparse_attention(q, k, v, blocks, BLOCK, valid, scale, "triton")))
    row["floor_attend_ms"] = 2 * hkv * KEYS * d * 2 / 3.0e9
    row["attend_vs_floor"] = row["attend_graph_ms"] / row["floor_attend_ms"]
    row["floor_full_ms"] = 2 * k.numel() * 2 / 3.0e9  # K and V read once at ~3.0 TB/s (measured copy rate)
    row["speedup"] = row["full_sdpa_ms"] / row["sparse_ms"]
    row["speedup_graph"] = row["full_sdpa_ms"] / row["sparse_graph_ms"]
    if n <= 131072:  # every block kept equals full attention
        every = torch.arange(-(-n // BLOCK), device="cuda").expand(1, hkv, -1).contiguous()
        all_out, _ = kernels.sparse_attention(q, k, v, every, BLOCK, valid, scale, "triton")
        row["all_blocks_vs_sdpa_rel_err"] = rel(all_out, full()[:, :, 0].float())
    del k, v, reps
    torch.cuda.empty_cache()
    return row


def main():
    quick = "--quick" in sys.argv
    sizes = [32768, 131072, 1048576] if quick else [32768, 131072, 524288, 1048576, 2097152]
    rows = []
    for shape in SHAPES:
        for n in sizes:
            rows.append(run(shape, n))
            r = rows[-1]
            print(f"{shape:13s} N={n:8d} full {r['full_sdpa_ms']:.4f} ms  sparse {r['sparse_ms']:.4f} ms "
                  f"(graph {r['sparse_graph_ms']:.4f})  x{r['speedup']:.1f} (graph x{r['speedup_graph']:.1f})  "
                  f"score {r['score_ms']:.4f} topk {r['topk_ms']:.4f} attend {r['attend_ms']:.4f} "
                  f"(graph {r['attend_graph_ms']:.4f}, {r['attend_vs_floor']:.1f}x floor)  "
                  f"err {r['rel_err_vs_torch_ref']:.1e} all-blocks {r.get('all_blocks_vs_sdpa_rel_err', float('nan')):.1e}",
                  flush=True)
    result = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"), "gpu": torch.cuda.get_device_name(),
              "torch": torch.__version__, "triton": triton.__version__, "python": platform.python_version(),
              "rows": rows}
    out = os.environ.get("OUT", "bench/results")
    with open(os.path.join(out, "gpu_decode.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
