"""Triton kernels against their exact PyTorch references (sparse.py), under TRITON_INTERPRET=1 on this
CPU (tests/conftest.py) and compiled where a GPU is present. Fresh random inputs each case, never zeros;
kernel outputs start poisoned (NaN), so an unwritten element fails."""
import pytest
import torch

from longdoc.attention import kernels, sparse

pytest.importorskip("triton")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# relative error ||out - ref|| / ||ref|| per key dtype (the device tool's METHOD.md): float32 on a GPU goes
# through tf32 unless asked otherwise; the kernels ask for IEEE float32, so 1e-5 holds on both.
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3}
@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    monkeypatch.setattr(kernels, "POISON_OUTPUTS", True)


SHAPES = {"smollm2": (9, 3, 64), "llama3-8b": (32, 8, 128)}


def rel_err(out, ref):
    assert not torch.isnan(out).any(), "the kernel left outputs unwritten"
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


def case(seed, shape, t, rows, dtype):
    hq, hkv, d = SHAPES[shape]
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(rows, hq, d, generator=g)
    k = torch.randn(hkv, t, d, generator=g) * 2
    v = torch.randn(hkv, t, d, generator=g)
    return q.to(DEVICE), k.to(DEVICE, dtype), v.to(DEVICE, dtype)


@pytest.mark.parametrize("kind", ["mean", "minmax"])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_block_scores_kernel_matches_reference(kind, shape, dtype):
    for seed, (t, block, rows) in enumerate([(203, 16, 1), (1000, 64, 3)]):
        q, k, _ = case(seed, shape, t, rows, torch.float32)
        full = sparse.block_reps(k, block)
        reps = sparse.BlockReps(block, full.mean.to(dtype), full.kmin.to(dtype), full.kmax.to(dtype))
        ref = sparse.block_scores(q.cpu().double(), sparse.BlockReps(
            block, *(x.cpu().double() for x in (reps.mean, reps.kmin, reps.kmax))), kind)
        out = kernels.block_scores(q, reps, kind, "triton").cpu()
        assert rel_err(out, ref) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("block,t,top_k,rows,splits", [(16, 333, 5, 2, 3), (64, 700, 4, 1, None), (16, 100, 7, 1, 4)])
def test_sparse_attention_kernel_matches_reference(dtype, shape, block, t, top_k, rows, splits):
    q, k, v = case(block + t + rows, shape, t, rows, dtype)
    pad = -t % block
    kp, vp = (torch.nn.functional.pad(x, (0, 0, 0, pad)) for x in (k, v))
    blocks = sparse.select_blocks(sparse.block_scores(q, sparse.block_reps(k, block)), top_k)
    scaling = q.shape[-1] ** -0.5
    valid = torch.arange(t + pad, device=DEVICE) < t
    valid[block // 2:block // 2 + 3] = False  # padding inside the context too, as between passages
    ref_out, ref_lse = sparse.sparse_attend(q.cpu().double(), kp.cpu().double(), vp.cpu().double(), blocks.cpu(),
                                            block, valid.cpu(), scaling)
    out, lse = kernels.sparse_attention(q, kp, vp, blocks, block, valid, scaling, "triton", splits)
    assert rel_err(out.cpu(), ref_out) < TOLERANCE[dtype]
    assert rel_err(lse.cpu(), ref_lse) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_keys_turned_to_their_slots_match_the_reference(dtype, shape):
    """The ordered memory layout: each kept key rotated further by its slot's angles inside the kernel."""
    block, t, top_k, rows = 16, 300, 5, 2
    q, k, v = case(11, shape, t, rows, dtype)
    pad = -t % block
    kp, vp = (torch.nn.functional.pad(x, (0, 0, 0, pad)) for x in (k, v))
    blocks = sparse.select_blocks(sparse.block_scores(q, sparse.block_reps(k, block)), top_k)
    d, n = q.shape[-1], top_k * block
    g = torch.Generator().manual_seed(3)
    slots = torch.stack([torch.randperm(n, generator=g) for _ in range(rows * blocks.shape[1])]).view(rows, -1, n)
    angles = torch.arange(n)[:, None] * 0.5 ** torch.arange(d // 2).repeat(2)[None, :]
    turn = (slots.to(DEVICE), angles.cos().to(DEVICE), angles.sin().to(DEVICE))
    valid = torch.arange(t + pad, device=DEVICE) < t
    scaling = d ** -0.5
    ref_out, ref_lse = sparse.sparse_attend(q.cpu().double(), kp.cpu().double(), vp.cpu().double(), blocks.cpu(),
                                            block, valid.cpu(), scaling, tuple(x.cpu() for x in turn))
    plain, _ = sparse.sparse_attend(q.cpu().double(), kp.cpu().double(), vp.cpu().double(), blocks.cpu(), block,
                                    valid.cpu(), scaling)
    assert rel_err(plain, ref_out) > 10 * TOLERANCE[dtype]  # the turn matters
    out, lse = kernels.sparse_attention(q, kp, vp, blocks, block, valid, scaling, "triton", turn=turn)
    assert rel_err(out.cpu(), ref_out) < TOLERANCE[dtype]
    assert rel_err(lse.cpu(), ref_lse) < TOLERANCE[dtype]


def test_more_splits_than_blocks_leave_empty_partials_out_of_the_merge():
    q, k, v = case(7, "smollm2", 64, 1, torch.float32)
    blocks = torch.tensor([[[0, 2], [1, 3], [3, 0]]], device=DEVICE)
    valid = torch.ones(64, dtype=torch.bool, device=DEVICE)
    ref = sparse.sparse_attend(q, k, v, blocks, 16, valid, 0.125)
    out = kernels.sparse_attention(q, k, v, blocks, 16, valid, 0.125, "triton", splits=2)
    assert rel_err(out[0].cpu(), ref[0].cpu()) < 1e-5
    lone = kernels.sparse_attention(q, k, v, blocks[..., :1], 16, valid, 0.125, "triton", splits=1)
    assert rel_err(lone[0].cpu(), sparse.sparse_attend(q, k, v, blocks[..., :1], 16, valid, 0.125)[0].cpu()) < 1e-5


def test_auto_uses_the_reference_on_the_cpu_and_refuses_unknown_impls():
    q = torch.randn(1, 9, 64)
    assert kernels.use_triton("auto", q) is False
    assert kernels.use_triton("triton", q) is True
    with pytest.raises(ValueError, match="unknown kernel implementation"):
        kernels.use_triton("cuda", q)
