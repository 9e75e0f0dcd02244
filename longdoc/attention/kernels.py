"""Triton kernels for sparse attention over cached keys, with the exact references in sparse.py:
(1) block scoring: each block's representative against the query group of its KV head;
(2) sparse decode attention over the selected blocks, flash-decoding style: the kept blocks are split
    over programs, each computes a partial attention with its log-sum-exp, and a second kernel merges
    the partials by log-sum-exp.

`impl`: "auto" runs Triton on a GPU and the torch reference on the CPU (Triton's CPU interpreter is for
testing, not speed), "triton" forces the kernels (under TRITON_INTERPRET=1 on the CPU), "torch" the
reference."""
from __future__ import annotations

import torch

from . import sparse

try:
    import triton
    import triton.language as tl
except ImportError:  # the kernels are optional: the torch reference computes the same functions
    triton = None

IMPLS = ("auto", "triton", "torch")
# Tests set this: outputs then start as NaN, so an element a kernel fails to write cannot pass for a result.
POISON_OUTPUTS = False


def use_triton(impl: str, t: torch.Tensor) -> bool:
    if impl not in IMPLS:
        raise ValueError(f"unknown kernel implementation {impl!r}; choose one of {', '.join(IMPLS)}")
    if impl == "triton" and triton is None:
        raise RuntimeError("the Triton kernels were asked for but triton is not installed (pip install triton)")
    return impl == "triton" or (impl == "auto" and triton is not None and t.is_cuda)


def _poisoned(shape, device) -> torch.Tensor:
    if POISON_OUTPUTS:
        return torch.full(shape, float("nan"), device=device, dtype=torch.float32)
    return torch.empty(shape, device=device, dtype=torch.float32)


def _pow2(n: int, least: int = 1) -> int:
    return max(least, 1 << (n - 1).bit_length())


if triton is not None:
    @triton.jit
    def _block_scores_kernel(Q, R1, R2, OUT, NB, sq_s, sq_h, sr_h, sr_b, so_s, so_h,
                             G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, BN: tl.constexpr,
                             QUEST: tl.constexpr, IEEE: tl.constexpr):
        s, h, nblk = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        g = tl.arange(0, GP)
        d = tl.arange(0, D)
        n = nblk * BN + tl.arange(0, BN)
        q = tl.load(Q + s * sq_s + (h * G + g)[:, None] * sq_h + d[None, :], mask=(g < G)[:, None], other=0.0)
        r_off = h * sr_h + n[:, None] * sr_b + d[None, :]
        r1 = tl.load(R1 + r_off, mask=(n < NB)[:, None], other=0.0)
        if QUEST:  # an upper bound of q.k over the block: sum_i max(q_i * max_i, q_i * min_i)
            q = q.to(tl.float32)
            r2 = tl.load(R2 + r_off, mask=(n < NB)[:, None], other=0.0).to(tl.float32)
            sc = tl.sum(tl.maximum(q[:, None, :] * r1.to(tl.float32)[None, :, :], q[:, None, :] * r2[None, :, :]), axis=2)
        elif IEEE:  # float32 representatives: exact float32 products
            sc = tl.dot(q.to(tl.float32), tl.trans(r1.to(tl.float32)), input_precision="ieee")
        else:  # half representatives: the matrix units, float32 accumulation
            sc = tl.dot(q.to(r1.dtype), tl.trans(r1))
        sc = tl.where((g < G)[:, None], sc, float("-inf"))
        tl.store(OUT + s * so_s + h * so_h + n, tl.max(sc, axis=0), mask=n < NB)

    @triton.jit
    def _sparse_partial_kernel(Q, K, V, BLOCKS, VALID, SLOT, COS, SIN, O_PART, L_PART, NK, PER_SPLIT, scale,
                               sq_s, sq_h, sk_h, sk_t, sb_s, sb_h, ss_s, ss_h, sp_s, sp_h, sp_p, sl_s, sl_h,
                               G: tl.constexpr, GP: tl.constexpr, D: tl.constexpr, B: tl.constexpr,
                               IEEE: tl.constexpr, TURN: tl.constexpr):
        s, h, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        g = tl.arange(0, GP)
        d = tl.arange(0, D)
        q = tl.load(Q + s * sq_s + (h * G + g)[:, None] * sq_h + d[None, :], mask=(g < G)[:, None], other=0.0)
        q = q.to(tl.float32)
        m_i = tl.full((GP,), float("-inf"), tl.float32)
        l_i = tl.zeros((GP,), tl.float32)
        acc = tl.zeros((GP, D), tl.float32)
        first = split * PER_SPLIT
        last = tl.minimum(first + PER_SPLIT, NK)
        for j in range(first, last):
            block = tl.load(BLOCKS + s * sb_s + h * sb_h + j)
            t = block * B + tl.arange(0, B)
            k = tl.load(K + h * sk_h + t[:, None] * sk_t + d[None, :]).to(tl.float32)
            v = tl.load(V + h * sk_h + t[:, None] * sk_t + d[None, :]).to(tl.float32)
            if TURN:  # place each key at its slot: k cos + rotate_half(k) sin, at the slot's angles
                slot = tl.load(SLOT + s * ss_s + h * ss_h + j * B + tl.arange(0, B))
                half = (d + D // 2) % D
                k_half = tl.load(K + h * sk_h + t[:, None] * sk_t + half[None, :]).to(tl.float32)
                k_half = tl.where((d < D // 2)[None, :], -k_half, k_half)
                cos = tl.load(COS + slot[:, None] * D + d[None, :])
                sin = tl.load(SIN + slot[:, None] * D + d[None, :])
                k = k * cos + k_half * sin
            if IEEE:
                sc = tl.dot(q, tl.trans(k), input_precision="ieee") * scale
            else:
                sc = tl.dot(q, tl.trans(k)) * scale
            ok = tl.load(VALID + t) != 0
            sc = tl.where(ok[None, :], sc, float("-inf"))  # padding keys
            m_new = tl.maximum(m_i, tl.max(sc, axis=1))
            p = tl.exp(sc - m_new[:, None])
            alpha = tl.exp(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, axis=1)
            if IEEE:
                acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
            else:
                acc = acc * alpha[:, None] + tl.dot(p, v)
            m_i = m_new
        empty = l_i == 0.0  # a split with no blocks: lse -inf, no weight in the merge
        lse = tl.where(empty, float("-inf"), m_i + tl.log(tl.where(empty, 1.0, l_i)))
        out = acc / tl.where(empty, 1.0, l_i)[:, None]
        rows = (h * G + g)
        tl.store(O_PART + s * sp_s + rows[:, None] * sp_h + split * sp_p + d[None, :], out, mask=(g < G)[:, None])
        tl.store(L_PART + s * sl_s + rows * sl_h + split, lse, mask=g < G)

    @triton.jit
    def _lse_merge_kernel(O_PART, L_PART, OUT, LSE, NSPLIT, sp_s, sp_h, sp_p, sl_s, sl_h, so_s, so_h, se_s,
                          D: tl.constexpr, PP: tl.constexpr):
        s, h = tl.program_id(0), tl.program_id(1)
        p = tl.arange(0, PP)
        d = tl.arange(0, D)
        lse = tl.load(L_PART + s * sl_s + h * sl_h + p, mask=p < NSPLIT, other=float("-inf"))
        m = tl.max(lse, axis=0)
        w = tl.where(lse == float("-inf"), 0.0, tl.exp(lse - m))
        total = tl.sum(w, axis=0)
        o = tl.load(O_PART + s * sp_s + h * sp_h + p[:, None] * sp_p + d[None, :], mask=(p < NSPLIT)[:, None], other=0.0)
        tl.store(OUT + s * so_s + h * so_h + d, tl.sum(w[:, None] * o, axis=0) / total)
        tl.store(LSE + s * se_s + h, m + tl.log(total))


def block_scores(q: torch.Tensor, reps: sparse.BlockReps, kind: str = "mean", impl: str = "auto") -> torch.Tensor:
    """(S, Hkv, nb) block scores; the same function as sparse.block_scores."""
    if not use_triton(impl, q):
        return sparse.block_scores(q, reps, kind)
    sparse._check_kind(kind)
    s_rows, hq, d = q.shape
    hkv, nb, _ = reps.mean.shape
    q = q.contiguous()
    r1, r2 = (reps.mean, reps.mean) if kind == "mean" else (reps.kmax, reps.kmin)
    r1, r2 = r1.contiguous(), r2.contiguous()
    out = _poisoned((s_rows, hkv, nb), q.device)
    quest = kind == "minmax"
    bn = 32 if quest else 128
    grid = (s_rows, hkv, triton.cdiv(nb, bn))
    _block_scores_kernel[grid](q, r1, r2, out, nb, q.stride(0), q.stride(1), r1.stride(0), r1.stride(1),
                               out.stride(0), out.stride(1), G=hq // hkv, GP=_pow2(hq // hkv, 1 if quest else 16),
                               D=d, BN=bn, QUEST=quest, IEEE=r1.dtype == torch.float32)
    return out


def sparse_attention(q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, blocks: torch.Tensor, block: int,
                     valid: torch.Tensor, scaling: float, impl: str = "auto", splits: int | None = None,
                     turn: sparse.Turn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(out (S, Hq, D), lse (S, Hq)) over the kept blocks; the same function as sparse.sparse_attend."""
    if not use_triton(impl, q):
        return sparse.sparse_attend(q, keys, values, blocks, block, valid, scaling, turn)
    s_rows, hq, d = q.shape
    hkv = keys.shape[0]
    nk = blocks.shape[-1]
    if splits is None:  # enough programs to fill the GPU, a few blocks each
        splits = max(1, min(nk, triton.cdiv(256, s_rows * hkv)))
    per_split = triton.cdiv(nk, splits)
    splits = triton.cdiv(nk, per_split)
    # No conversions: each would be one more kernel launch per layer and step (bool is read as bytes).
    q, keys, values, blocks = q.contiguous(), keys.contiguous(), values.contiguous(), blocks.contiguous()
    o_part = _poisoned((s_rows, hq, splits, d), q.device)
    l_part = _poisoned((s_rows, hq, splits), q.device)
    g = hq // hkv
    if turn is None:
        slots, cos, sin = blocks, q, q  # placeholders, unread without TURN
    else:
        slots, cos, sin = turn[0].contiguous(), turn[1].float().contiguous(), turn[2].float().contiguous()
    _sparse_partial_kernel[(s_rows, hkv, splits)](
        q, keys, values, blocks, valid.view(torch.uint8), slots, cos, sin, o_part, l_part, nk, per_split, scaling,
        q.stride(0), q.stride(1), keys.stride(0), keys.stride(1), blocks.stride(0), blocks.stride(1),
        slots.stride(0), slots.stride(1), o_part.stride(0), o_part.stride(1), o_part.stride(2), l_part.stride(0),
        l_part.stride(1), G=g, GP=_pow2(g, 16), D=d, B=block, IEEE=keys.dtype == torch.float32,
        TURN=turn is not None)
    out, lse = _poisoned((s_rows, hq, d), q.device), _poisoned((s_rows, hq), q.device)
    _lse_merge_kernel[(s_rows, hq)](o_part, l_part, out, lse, splits, o_part.stride(0), o_part.stride(1),
                                    o_part.stride(2), l_part.stride(0), l_part.stride(1), out.stride(0),
                                    out.stride(1), lse.stride(0), D=d, PP=_pow2(splits))
    return out, lse
