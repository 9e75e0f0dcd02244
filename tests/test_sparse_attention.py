"""The exact references for sparse attention: block representatives and scores, selection, attention
over kept blocks, the log-sum-exp merge, key recall, and the balanced clusters of retrieval attention."""
import math

import pytest
import torch

from longdoc.attention.clusters import cluster_order
from longdoc.attention.sparse import (attend, block_key_mask, block_reps, block_scores, exact_block_lse, key_recall,
                                      lse_merge, select_blocks, sparse_attend)


def inputs(seed=0, rows=2, hq=9, hkv=3, t=203, d=64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, hq, d, generator=g), torch.randn(hkv, t, d, generator=g),
            torch.randn(hkv, t, d, generator=g))


def full_attention(q, k, v, scaling):
    """The plain reference: repeat KV heads over their query group, softmax, weighted sum."""
    group = q.shape[1] // k.shape[0]
    kk, vv = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
    p = torch.softmax(torch.einsum("shd,htd->sht", q, kk) * scaling, -1)
    return torch.einsum("sht,htd->shd", p, vv)


def padded(x, block):
    return torch.nn.functional.pad(x, (0, 0, 0, -x.shape[1] % block))


def valid(t, block):
    return torch.arange(t + -t % block) < t


def test_block_representatives_by_hand():
    keys = torch.tensor([[[1.0, -2.0], [3.0, 0.0], [5.0, 4.0]]])  # 1 head, 3 keys, block 2: [k0 k1] [k2]
    reps = block_reps(keys, 2)
    assert torch.equal(reps.mean, torch.tensor([[[2.0, -1.0], [5.0, 4.0]]]))
    assert torch.equal(reps.kmin, torch.tensor([[[1.0, -2.0], [5.0, 4.0]]]))
    assert torch.equal(reps.kmax, torch.tensor([[[3.0, 0.0], [5.0, 4.0]]]))
    q = torch.tensor([[[1.0, -1.0], [0.0, 2.0]]])  # one row; two query heads share the one KV head
    # mean: head0 [2+1, 5-4] = [3, 1]; head1 [-2, 8]; max over the group -> [3, 8]
    assert torch.equal(block_scores(q, reps, "mean"), torch.tensor([[[3.0, 8.0]]]))
    # quest block0: head0 max(1*3, 1*1) + max(-1*0, -1*-2) = 3 + 2 = 5; head1 0 + max(0, -4) = 0 -> 5
    assert torch.equal(block_scores(q, reps, "minmax"), torch.tensor([[[5.0, 8.0]]]))


def test_quest_bound_is_an_upper_bound_on_every_key_in_the_block():
    q, k, _ = inputs(1)
    reps = block_reps(k, 16)
    bound = block_scores(q, reps, "minmax")
    exact = torch.einsum("shgd,htd->shgt", q.view(2, 3, 3, -1), k).amax(2)  # (S, Hkv, T) max over the group
    per_block = torch.stack([exact[..., b * 16:(b + 1) * 16].amax(-1) for b in range(bound.shape[-1])], -1)
    assert (bound >= per_block - 1e-4).all()


def test_representatives_leave_padding_out():
    keys = torch.tensor([[[1.0, -2.0], [3.0, 0.0], [5.0, 4.0], [9.0, 9.0]]])
    reps = block_reps(keys, 2, torch.tensor([True, True, True, False]))  # the last key is padding
    assert torch.equal(reps.mean, torch.tensor([[[2.0, -1.0], [5.0, 4.0]]]))
    assert torch.equal(reps.kmax, torch.tensor([[[3.0, 0.0], [5.0, 4.0]]]))
    assert torch.equal(reps.kmin, torch.tensor([[[1.0, -2.0], [5.0, 4.0]]]))


def test_selection_takes_the_top_k_per_row_and_head():
    scores = torch.tensor([[[0.0, 9.0, 1.0, 8.0, 2.0, 3.0], [5.0, 0.0, 7.0, 1.0, 6.0, 0.0]]])
    assert select_blocks(scores, 2).sort(-1).values.tolist() == [[[1, 3], [2, 4]]]
    assert select_blocks(scores, 50).shape == (1, 2, 6)  # more than there are: everything
    mask = block_key_mask(torch.tensor([[[1], [0]]]), 2, 5)
    assert mask.tolist() == [[[False, False, True, True, False], [True, True, False, False, False]]]


@pytest.mark.parametrize("kind", ["mean", "minmax"])
def test_keeping_every_block_equals_full_attention(kind):
    q, k, v = inputs(2)
    scaling = 64 ** -0.5
    reps = block_reps(k, 32)
    blocks = select_blocks(block_scores(q, reps, kind), reps.mean.shape[1])
    out, lse = sparse_attend(q, padded(k, 32), padded(v, 32), blocks, 32, valid(k.shape[1], 32), scaling)
    torch.testing.assert_close(out, full_attention(q, k, v, scaling), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lse, attend(q, k, v, scaling)[1], atol=1e-5, rtol=1e-5)


def test_sparse_attention_reads_only_the_kept_blocks():
    q, k, v = inputs(4)
    blocks = select_blocks(block_scores(q, block_reps(k, 16), "mean"), 3)
    sparse = sparse_attend(q, padded(k, 16), padded(v, 16), blocks, 16, valid(k.shape[1], 16), 0.125)
    masked = attend(q, k, v, 0.125, block_key_mask(blocks, 16, k.shape[1]))
    torch.testing.assert_close(sparse, masked, atol=1e-5, rtol=1e-5)
    poisoned = padded(k, 16).clone()
    poisoned[:, block_key_mask(blocks, 16, poisoned.shape[1]).sum((0, 1)) == 0] = float("nan")
    torch.testing.assert_close(sparse_attend(q, poisoned, padded(v, 16), blocks, 16, valid(k.shape[1], 16), 0.125), sparse)


def test_lse_merge_of_disjoint_parts_equals_attention_over_their_union():
    q, k, v = inputs(3)
    scaling = 64 ** -0.5
    g = torch.Generator().manual_seed(5)
    part = torch.randint(0, 3, (2, 3, k.shape[1]), generator=g)  # each key in exactly one of 3 parts
    parts = [attend(q, k, v, scaling, part == p) for p in range(3)]
    merged, lse = lse_merge(parts)
    full, full_lse = attend(q, k, v, scaling)
    torch.testing.assert_close(merged, full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lse, full_lse, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(full, full_attention(q, k, v, scaling), atol=1e-5, rtol=1e-5)
    empty = attend(q, k, v, scaling, torch.zeros_like(part, dtype=torch.bool))  # a part with nothing kept
    torch.testing.assert_close(lse_merge(parts + [empty])[0], full, atol=1e-5, rtol=1e-5)


def test_exact_block_lse_is_each_blocks_log_mass_from_every_keys_logit():
    """The key-recall bench's "exact" selection: per row and query head, the log-sum-exp of a block's keys'
    logits, padding left out; computed a few rows at a time, the same as all at once by hand."""
    g = torch.Generator().manual_seed(5)
    q, keys = torch.randn(5, 4, 8, generator=g), torch.randn(2, 48, 8, generator=g)
    valid = torch.ones(48, dtype=torch.bool)
    valid[40:] = False  # the last block is half padding
    got = exact_block_lse(q, keys, valid, 16, 0.3, rows=2)
    for s in range(5):
        for h in range(4):
            logits = (keys[h // 2] @ q[s, h]) * 0.3
            for b in range(3):
                want = torch.logsumexp(logits[b * 16:min(b * 16 + 16, 40)], 0)
                assert torch.allclose(got[s, h, b], want, atol=1e-5)


def test_key_recall_by_hand():
    # one head, scores q.k = [ln 1, ln 2, ln 3, ln 4] / scaling 1: softmax = [0.1, 0.2, 0.3, 0.4]
    q = torch.tensor([[[1.0]]])
    k = torch.tensor([[[math.log(1)], [math.log(2)], [math.log(3)], [math.log(4)]]])
    assert key_recall(q, k, torch.tensor([[[False, True, False, True]]]), 1.0).item() == pytest.approx(0.6)
    assert key_recall(q, k, torch.tensor([[[True] * 4]]), 1.0).item() == pytest.approx(1.0)
    # plus keys always attended with total weight 10 (lse ln 10): all weights [1,2,3,4,10] / 20
    rest = torch.tensor([[math.log(10)]])
    assert key_recall(q, k, torch.tensor([[[False, True, False, True]]]), 1.0, rest).item() == pytest.approx(16 / 20)


def test_clusters_are_balanced_permutations_that_group_similar_keys():
    g = torch.Generator().manual_seed(0)
    centers = torch.nn.functional.normalize(torch.randn(8, 32, generator=g), dim=-1)
    # each window of 128 keys: 16 keys around each of 8 directions, shuffled; then a short window of 40
    which = torch.cat([torch.stack([torch.randperm(128, generator=g) % 8 for _ in range(2)]),
                       torch.randint(0, 8, (2, 40), generator=g)], 1)
    keys = 3 * centers[which] + 0.1 * torch.randn(2, 168, 32, generator=g)
    order = cluster_order(keys, size=16, window=128)
    for row in range(2):
        assert sorted(order[row].tolist()) == list(range(168))  # a permutation
        assert (order[row, :128] < 128).all() and (order[row, 128:] >= 128).all()  # within windows
    labels = which.gather(1, order)[:, :128].reshape(2, 8, 16)
    purity = (labels == labels.mode(-1).values[..., None]).float().mean()
    assert purity > 0.95  # the clusters found are the directions planted


def test_kept_keys_gathered_by_block_and_turned_equal_their_definitions():
    """gather_blocks copies whole blocks, turned rotates by halves: the same numbers as indexing key by key
    and k cos + rotate_half(k) sin at each key's slot."""
    from longdoc.attention.rope import rotate_half
    from longdoc.attention.sparse import block_key_ids, gather_blocks, turned

    q, k, _ = inputs(seed=6)
    kp, block = padded(k, 16), 16
    blocks = select_blocks(block_scores(q, block_reps(k, block)), 4)  # (2, 3, 4)
    idx = block_key_ids(blocks, block)
    heads = torch.arange(k.shape[0])[None, :, None]
    kept = gather_blocks(kp, blocks, block)
    assert torch.equal(kept, kp[heads, idx])
    order = torch.randperm(kp.shape[0] * kp.shape[1]).view(kp.shape[0], -1)
    assert torch.equal(gather_blocks(order, blocks, block), order[heads, idx])
    n, d = idx.shape[-1], k.shape[-1]
    slots = torch.stack([torch.randperm(n) for _ in range(6)]).view(2, 3, n)
    angles = torch.arange(n)[:, None] * 0.5 ** torch.arange(d // 2).repeat(2)[None, :]
    cos, sin = angles.cos(), angles.sin()
    torch.testing.assert_close(turned(kept, (slots, cos, sin)), kept * cos[slots] + rotate_half(kept) * sin[slots])
