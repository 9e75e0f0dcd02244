"""Long-context attention on small randomly initialised Llama (GQA) and Qwen2 models: the context memory
(landmark blocks, retrieval clusters) attended sparsely and merged with the KV cache by log-sum-exp."""
import pytest
import torch
from transformers import DynamicCache

from longdoc.attention import AttentionMass, record_attention_mass, register, rerotate_keys, rotary_cos_sin
from longdoc.attention.block import KVBlock
from longdoc.attention.memory import SparseSpec, build_memory, use_memory
from test_attention import kv, tiny

GAP = 40


@pytest.fixture(autouse=True)
def poisoned_outputs(monkeypatch):
    from longdoc.attention import kernels

    monkeypatch.setattr(kernels, "POISON_OUTPUTS", True)


def context(model, seed=0):
    """A prefix and three blocks encoded after it (Block-Attention), as the reader builds them."""
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    prefix_ids = torch.randint(0, 128, (1, 5), generator=g).to(device)
    k, v, _ = kv(model, prefix_ids)
    prefix = KVBlock(k, v, 0)
    blocks = []
    for length in (37, 50, 29):
        ids = torch.randint(0, 128, (1, length), generator=g).to(device)
        bk, bv, _ = kv(model, ids, start=5, cache=prefix_cache(model, prefix))
        blocks.append(KVBlock(bk[:, :, 5:], bv[:, :, 5:], 5))
    suffix = torch.randint(0, 128, (1, 6), generator=g).to(device)
    return prefix, blocks, suffix


def prefix_cache(model, prefix, extra_keys=None, extra_values=None):
    cache = DynamicCache(config=model.config)
    for layer in range(prefix.keys.shape[0]):
        k, v = prefix.keys[layer], prefix.values[layer]
        if extra_keys is not None:
            k, v = torch.cat([k, extra_keys[layer]], 1), torch.cat([v, extra_values[layer]], 1)
        cache.update(k[None], v[None], layer)
    return cache


def exact_logits(model, prefix, blocks, suffix, steps, layout="fixed"):
    """The reference: every memory key in the cache, rotated at the memory's one position 5 (fixed), or
    the blocks one after another from position 5 and the question right after them (ordered)."""
    device = next(model.parameters()).device
    keys, at = [], 5
    for b in blocks:
        dst = torch.arange(at, at + b.length, device=device) if layout == "ordered" else torch.tensor([5], device=device)
        keys.append(rerotate_keys(b.keys, rotary_cos_sin(model, torch.arange(5, 5 + b.length, device=device)),
                                  rotary_cos_sin(model, dst)))
        at += b.length
    values = torch.cat([b.values for b in blocks], -2)
    start = at if layout == "ordered" else 5 + GAP
    return run(model, prefix_cache(model, prefix, torch.cat(keys, -2), values), suffix, steps, start)


def run(model, cache, suffix, steps, start=5 + GAP):
    """Logits of the suffix rows, then of `steps` greedy decode steps, with the question at 5 + GAP."""
    out = []
    pos = start
    ids = suffix
    with torch.no_grad():
        for _ in range(steps + 1):
            positions = torch.arange(pos, pos + ids.shape[1], device=ids.device).unsqueeze(0)
            logits = model(input_ids=ids, past_key_values=cache, position_ids=positions, use_cache=True).logits[0]
            out.append(logits)
            pos += ids.shape[1]
            ids = logits[-1:].argmax(-1, keepdim=True)
    return torch.cat(out)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("kind", ["landmark", "retrieval"])
@pytest.mark.parametrize("impl,layout", [("torch", "ordered"), ("torch", "fixed"), ("triton", "ordered"),
                                         ("triton", "fixed")])
def test_keeping_every_block_equals_exact_attention_over_the_whole_context(family, kind, impl, layout):
    if impl == "triton":
        pytest.importorskip("triton")
    # compiled Triton reads GPU memory only (on a CPU the interpreter runs it over CPU tensors)
    model = tiny(family).to("cuda" if impl == "triton" and torch.cuda.is_available() else "cpu")
    model.set_attn_implementation(register())
    prefix, blocks, suffix = context(model)
    memory = build_memory(model, blocks, 5, SparseSpec(kind, 16, keys=10**6, kernels=impl, layout=layout))
    with use_memory(memory):
        sparse = run(model, prefix_cache(model, prefix), suffix, steps=3, start=memory.question_start(GAP))
    torch.testing.assert_close(sparse, exact_logits(model, prefix, blocks, suffix, 3, layout), atol=2e-4, rtol=1e-4)
    assert memory.share_read() == pytest.approx(1.0)


def test_a_small_budget_reads_fewer_keys_and_changes_the_output():
    model = tiny("llama")
    model.set_attn_implementation(register())
    prefix, blocks, suffix = context(model, seed=1)
    memory = build_memory(model, blocks, 5, SparseSpec("landmark", 16, keys=32))
    with use_memory(memory):
        sparse = run(model, prefix_cache(model, prefix), suffix, steps=0, start=memory.question_start(GAP))
    assert memory.share_read() == pytest.approx(32 / 116)
    assert not torch.allclose(sparse, exact_logits(model, prefix, blocks, suffix, steps=0), atol=1e-4)


def test_recorded_attention_covers_cache_and_memory_exactly_once():
    """Each recorded row's attention sums to 1 per head over cache and memory together."""
    model = tiny("qwen2")
    model.set_attn_implementation(register())
    prefix, blocks, suffix = context(model, seed=2)
    memory = build_memory(model, blocks, 5, SparseSpec("retrieval", 16, keys=10**6))
    recorder = AttentionMass()
    with use_memory(memory), record_attention_mass(recorder):
        run(model, prefix_cache(model, prefix), suffix, steps=2, start=memory.question_start(GAP))
    heads, layers = model.config.num_attention_heads, model.config.num_hidden_layers
    assert recorder.rows == layers * 3
    total = recorder.mass.sum() + memory.mass.sum()
    assert total.item() == pytest.approx(heads * recorder.rows, rel=1e-5)
    assert (memory.mass > 0).all()  # retrieval's reordering maps every key back to its token


@pytest.mark.parametrize("kind", ["landmark", "retrieval"])
def test_record_from_the_logits_attention_kept_equals_record_computed_afresh(kind):
    """The torch path hands record() the last row's logits; the kernel path leaves it to compute them. Both
    give the same attention per context token, turned keys and padding included."""
    from longdoc.attention.memory import Read

    model = tiny("qwen2")
    prefix, blocks, _ = context(model, seed=3)
    memory = build_memory(model, blocks, 5, SparseSpec(kind, 16, keys=48, kernels="torch"))
    q = torch.randn(3, 4, 16, generator=torch.Generator().manual_seed(1))
    masses = []
    for keep in (True, False):
        memory.reset()
        out, lse, read = memory.attend(1, q, 0.25)
        assert read.turn is not None and read.last_logits is not None
        total = lse + 0.5  # as if the cache held some mass too
        memory.record(1, q, read if keep else Read(read.blocks, read.turn, None), total, 0.25)
        masses.append(memory.mass)
    torch.testing.assert_close(masses[0], masses[1])
    share = masses[0].sum() / (q.shape[1] * torch.exp(lse[-1] - total[-1]).mean())
    assert share.item() == pytest.approx(1.0, rel=1e-5)  # the last row's memory attention, all of it


@pytest.mark.parametrize("kind", ["landmark", "retrieval"])
def test_a_memory_keeps_every_tensor_on_its_keys_device(kind):
    """On a GPU, landmark's key order was made on the CPU and record() crashed mixing devices. Tensors on
    the meta device (shapes only, no data) find any tensor the memory makes elsewhere."""
    from longdoc.attention.memory import ContextMemory, Part

    layers, hkv, t, d = 2, 2, 32, 8
    keys = torch.empty(layers, hkv, t, d, device="meta")
    order = None if kind == "landmark" else torch.empty(layers, hkv, t, dtype=torch.long, device="meta")
    part = Part(keys, torch.empty_like(keys), torch.ones(t, dtype=torch.bool, device="meta"), order, t)
    turns = (torch.empty(32, d, device="meta"), torch.empty(32, d, device="meta"))
    memory = ContextMemory([part, part], SparseSpec(kind, 16, keys=32, kernels="torch"), 0, turns)
    assert {memory.order.device.type, memory.valid.device.type, memory.keys.device.type} == {"meta"}
    slots, _, _ = memory.turn(0, torch.zeros(3, hkv, 2, dtype=torch.long, device="meta"))
    assert (slots.shape, slots.device.type) == ((3, hkv, 32), "meta")


def test_the_answers_rows_keep_the_blocks_the_question_read_most():
    """Pinning: a decode row's selection holds the blocks the question's rows attend to most (softmax of
    each row's block scores, summed over rows), then its own best."""
    from longdoc.attention import sparse

    model = tiny("llama")
    prefix, blocks, suffix = context(model, seed=3)
    memory = build_memory(model, blocks, 5, SparseSpec("landmark", 16, keys=64, pin=0.5))
    g = torch.Generator().manual_seed(0)
    hq, d = model.config.num_attention_heads, model.config.hidden_size // model.config.num_attention_heads
    q = torch.randn(6, hq, d, generator=g)
    memory.select(0, q)
    pinned = memory.pinned[0]
    share = torch.softmax(sparse.block_scores(q, memory.reps[0]) * d ** -0.5, dim=-1).sum(0)  # (Hkv, nb)
    assert pinned.shape == (1, share.shape[0], 2)  # half of the 4 blocks
    assert torch.equal(pinned[0].sort().values, share.topk(2).indices.sort().values)
    step = memory.select(0, torch.randn(1, hq, d, generator=g))
    for h in range(step.shape[1]):
        assert set(pinned[0, h].tolist()) <= set(step[0, h].tolist()) and len(set(step[0, h].tolist())) == 4
    memory.reset()
    assert memory.pinned == {}


@pytest.mark.parametrize("kind", ["landmark", "retrieval"])
def test_pinned_sentences_are_kept_by_every_row_and_placed_next_to_the_question_best_last(kind):
    """pin_tokens (scan's sentences): every layer and KV head pins the blocks holding those tokens, best
    sentence first (up to the whole budget); every row keeps them, and the ordered layout places their keys
    after every other kept key, the best sentence's blocks last, each group in reading order."""
    model = tiny("qwen2")
    prefix, blocks, suffix = context(model, seed=4)
    memory = build_memory(model, blocks, 5, SparseSpec(kind, 16, keys=128))  # 8 of 9 blocks kept
    # context tokens of two sentences, the best first: one in the third passage, one in the first
    memory.pin_tokens(torch.tensor([90, 91, 20, 21, 22]), torch.tensor([0, 0, 1, 1, 1]))
    hq, d = model.config.num_attention_heads, model.config.hidden_size // model.config.num_attention_heads
    layers, hkv = memory.keys.shape[:2]
    assert sorted(memory.pinned) == list(range(layers))
    for layer in range(layers):
        pinned = memory.pinned[layer][0]  # (Hkv, 8): the distinct pins, then the last repeated
        rows = memory.select(layer, torch.randn(3, hq, d, generator=torch.Generator().manual_seed(layer)))
        slots, _, _ = memory.turn(layer, rows)
        for h in range(hkv):
            holds = [memory.order[layer, h, b * 16:(b + 1) * 16][memory.valid[b * 16:(b + 1) * 16]].tolist()
                     for b in dict.fromkeys(pinned[h].tolist())]
            assert 2 <= len(holds) <= 5 and sum(t in held for held in holds for t in (90, 91, 20, 21, 22)) == 5
            assert 90 in holds[0] and (20 in holds[1] or 91 in holds[1])  # the best token's block first
            best = [b for b, held in zip(pinned[h].tolist(), holds) if 90 in held or 91 in held]
            for r in range(rows.shape[0]):
                assert set(pinned[h].tolist()) <= set(rows[r, h].tolist())
                ids = (rows[r, h, :, None] * 16 + torch.arange(16)).flatten()
                ok = memory.valid[ids]
                token, slot = memory.order[layer, h, ids][ok], slots[r, h][ok]
                late = torch.isin(ids // 16, pinned[h])[ok]
                last = torch.isin(ids // 16, torch.tensor(best))[ok]
                assert slot[late].min() > slot[~late].max()  # pinned keys sit after the others
                if not last.all():
                    assert slot[last].min() > slot[~last].max()  # the best sentence's blocks last of all
                for group in (~late, late & ~last, last):  # each group in reading order
                    assert torch.equal(token[group][slot[group].argsort()], token[group].sort().values)
    memory.reset()
    assert memory.pinned == {} and memory.pin_after == {}


def test_the_lru_cache_drops_the_least_recently_used_past_its_bytes():
    from longdoc.attention.memory import LruCache, tensor_bytes

    cache = LruCache(max_bytes=3 * 400, size=tensor_bytes)  # three 100-float tensors fit
    for name in "abc":
        cache[(name,)] = torch.zeros(100)
    assert cache.get(("a",)) is not None  # "a" is now the most recently used
    cache[("d",)] = torch.zeros(100)
    assert cache.keys() == [("c",), ("a",), ("d",)] and cache.bytes == 1200
    cache[("c",)] = torch.zeros(50)  # replacing a key counts its new size only
    assert cache.bytes == 1000 and cache.keys()[-1] == ("c",)
    calls = []
    assert cache.get_or_compute(("a",), lambda: calls.append(1)) is not None and not calls
    cache[("big",)] = torch.zeros(1000)  # larger than the cap: it stays, alone
    assert cache.keys() == [("big",)] and cache.bytes == 4000
