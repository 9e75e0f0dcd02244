"""The exact references for sparse decode attention: block representatives and scores, selection,
attention over kept keys, the log-sum-exp merge and key recall."""
import math

import pytest
import torch

from longdoc.attention.sparse import (attend, block_reps, block_scores, key_mask, key_recall, lse_merge,
                                      select_blocks)


def inputs(seed=0, hq=9, hkv=3, t=203, d=64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(hq, d, generator=g), torch.randn(hkv, t, d, generator=g), torch.randn(hkv, t, d, generator=g)


def full_attention(q, k, v, scaling):
    """The plain reference: repeat KV heads over their query group, softmax, weighted sum."""
    group = q.shape[0] // k.shape[0]
    kk, vv = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
    p = torch.softmax(torch.einsum("hd,htd->ht", q, kk) * scaling, -1)
    return torch.einsum("ht,htd->hd", p, vv)


def test_block_representatives_by_hand():
    keys = torch.tensor([[[1.0, -2.0], [3.0, 0.0], [5.0, 4.0]]])  # 1 head, 3 keys, block 2: [k0 k1] [k2]
    reps = block_reps(keys, 2)
    assert torch.equal(reps.mean, torch.tensor([[[2.0, -1.0], [5.0, 4.0]]]))
    assert torch.equal(reps.kmin, torch.tensor([[[1.0, -2.0], [5.0, 4.0]]]))
    assert torch.equal(reps.kmax, torch.tensor([[[3.0, 0.0], [5.0, 4.0]]]))
    q = torch.tensor([[1.0, -1.0], [0.0, 2.0]])  # two query heads share the one KV head
    # mean: head0 [2+1, 5-4] = [3, 1]; head1 [-2, 8]; max over the group -> [3, 8]
    assert torch.equal(block_scores(q, reps, "mean"), torch.tensor([[3.0, 8.0]]))
    # quest block0: head0 max(1*3, 1*1) + max(-1*0, -1*-2) = 3 + 2 = 5; head1 0 + max(0, -4) = 0 -> 5
    assert torch.equal(block_scores(q, reps, "minmax"), torch.tensor([[5.0, 8.0]]))


def test_quest_bound_is_an_upper_bound_on_every_key_in_the_block():
    q, k, _ = inputs(1)
    reps = block_reps(k, 16)
    bound = block_scores(q, reps, "minmax")
    exact = torch.einsum("hgd,htd->hgt", q.view(3, 3, -1), k).amax(1)  # (Hkv, T) max over the group
    per_block = torch.stack([exact[:, b * 16:(b + 1) * 16].amax(1) for b in range(bound.shape[1])], 1)
    assert (bound >= per_block - 1e-4).all()


def test_selection_keeps_sinks_local_window_and_top_k():
    scores = torch.tensor([[0.0, 9.0, 1.0, 8.0, 2.0, 3.0], [5.0, 0.0, 7.0, 1.0, 6.0, 0.0]])
    keep = select_blocks(scores, top_k=2, sink_blocks=1, local_blocks=1)
    assert keep.tolist() == [[True, True, False, True, False, True], [True, False, True, False, True, True]]
    assert select_blocks(scores, top_k=50).all()  # more than there are: everything


@pytest.mark.parametrize("kind", ["mean", "minmax"])
def test_keeping_every_block_equals_full_attention(kind):
    q, k, v = inputs(2)
    scaling = 64 ** -0.5
    reps = block_reps(k, 32)
    keep = select_blocks(block_scores(q, reps, kind), top_k=reps.mean.shape[1])
    out, _ = attend(q, k, v, scaling, key_mask(keep, 32, k.shape[1]))
    torch.testing.assert_close(out, full_attention(q, k, v, scaling), atol=1e-5, rtol=1e-5)


def test_lse_merge_of_disjoint_parts_equals_attention_over_their_union():
    q, k, v = inputs(3)
    scaling = 64 ** -0.5
    g = torch.Generator().manual_seed(5)
    part = torch.randint(0, 3, (3, k.shape[1]), generator=g)  # each key in exactly one of 3 parts
    parts = [attend(q, k, v, scaling, part == p) for p in range(3)]
    merged, lse = lse_merge(parts)
    full, full_lse = attend(q, k, v, scaling)
    torch.testing.assert_close(merged, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lse, full_lse, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full, full_attention(q, k, v, scaling), atol=1e-5, rtol=1e-5)
    empty = attend(q, k, v, scaling, torch.zeros_like(part, dtype=torch.bool))  # a part with nothing kept
    torch.testing.assert_close(lse_merge(parts + [empty])[0], full, atol=1e-5, rtol=1e-5)


def test_key_recall_by_hand():
    # one head, scores q.k = [ln 1, ln 2, ln 3, ln 4] / scaling 1: softmax = [0.1, 0.2, 0.3, 0.4]
    q = torch.tensor([[1.0]])
    k = torch.tensor([[[math.log(1)], [math.log(2)], [math.log(3)], [math.log(4)]]])
    assert key_recall(q, k, torch.tensor([[False, True, False, True]]), 1.0).item() == pytest.approx(0.6)
    assert key_recall(q, k, torch.tensor([[True] * 4]), 1.0).item() == pytest.approx(1.0)
