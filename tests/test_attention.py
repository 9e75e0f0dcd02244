"""The reader's attention on small randomly initialised Llama (GQA) and Qwen2 models: the registered
attention function, attention-mass recording, RoPE re-rotation and Block-Attention stitching."""
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from longdoc.attention import AttentionMass, record_attention_mass, register, rerotate_keys, rotary_cos_sin, stitch_cache
from longdoc.attention.block import KVBlock
from longdoc.attention.rope import shift_keys


def tiny(family: str, rope_scaling: dict | None = None):
    torch.manual_seed(0)
    common = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    if rope_scaling:
        common["rope_parameters"] = {"rope_theta": 10000.0, **rope_scaling}
    model = (LlamaForCausalLM(LlamaConfig(**common)) if family == "llama"
             else Qwen2ForCausalLM(Qwen2Config(**common)))
    return model.float().eval()


def kv(model, ids, start=0, cache=None):
    """(keys, values) per layer as (layers, kv_heads, T, D), encoding ids at positions start.."""
    positions = torch.arange(start, start + ids.shape[1], device=ids.device).unsqueeze(0)
    with torch.no_grad():
        out = model(input_ids=ids, position_ids=positions, past_key_values=cache, use_cache=True)
    cache = out.past_key_values
    return torch.stack([l.keys[0] for l in cache.layers]), torch.stack([l.values[0] for l in cache.layers]), out


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_longdoc_attention_equals_eager_and_records_the_last_rows_attention(family):
    model = tiny(family)
    ids = torch.randint(0, 128, (1, 23))
    with torch.no_grad():
        model.set_attn_implementation("eager")
        eager = model(input_ids=ids, output_attentions=True)
        model.set_attn_implementation(register())
        recorder = AttentionMass()
        with record_attention_mass(recorder):
            ours = model(input_ids=ids)
    torch.testing.assert_close(ours.logits, eager.logits, atol=1e-5, rtol=1e-5)
    expected = sum(a[0, :, -1].sum(0) for a in eager.attentions).double()
    assert recorder.rows == 2
    torch.testing.assert_close(recorder.mass, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_recording_several_query_rows_sums_their_attention(family):
    """A question's rows after a cache: each row sees the cache and the rows before it, as eager attention says."""
    model = tiny(family)
    ids = torch.randint(0, 128, (1, 30))
    with torch.no_grad():
        model.set_attn_implementation("eager")
        eager = model(input_ids=ids, output_attentions=True)
        model.set_attn_implementation(register())
        _, _, out = kv(model, ids[:, :22])
        recorder = AttentionMass(query_rows=8)
        with record_attention_mass(recorder):
            model(input_ids=ids[:, 22:], past_key_values=out.past_key_values,
                  position_ids=torch.arange(22, 30).unsqueeze(0), use_cache=True)
    expected = sum(a[0, :, 22:].sum((0, 1)) for a in eager.attentions).double()
    torch.testing.assert_close(recorder.mass, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family,scaling", [("llama", None), ("qwen2", None),
                                            ("llama", {"rope_type": "linear", "factor": 2.0}),
                                            ("llama", {"rope_type": "yarn", "factor": 4.0,
                                                       "original_max_position_embeddings": 128})])
def test_rerotated_keys_equal_keys_computed_at_the_global_positions(family, scaling):
    """A block alone sees only itself, so shifting all its positions changes only the RoPE of its keys."""
    model = tiny(family, scaling)
    ids = torch.randint(0, 128, (1, 17))
    local_k, local_v, _ = kv(model, ids, start=0)
    global_k, global_v, _ = kv(model, ids, start=300)
    src = rotary_cos_sin(model, torch.arange(0, 17))
    dst = rotary_cos_sin(model, torch.arange(300, 317))
    torch.testing.assert_close(rerotate_keys(local_k, src, dst), global_k, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(local_v, global_v, atol=2e-5, rtol=1e-4)
    buffer = torch.zeros(2, 3, 2, 40, local_k.shape[-1])  # (layers, batch, kv heads, room, D), as a cache's
    shift_keys(model, local_k.unsqueeze(1), 300, buffer[:, :, :, 5:22])
    for row in range(3):
        torch.testing.assert_close(buffer[:, row, :, 5:22], global_k, atol=2e-5, rtol=1e-4)
    assert not buffer[:, :, :, :5].any() and not buffer[:, :, :, 22:].any()
    assert (local_k - global_k).abs().max() > 1e-2  # the rotation really moved them


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_rows_taken_from_a_block_lie_contiguously_as_if_encoded_there(family):
    """reader/slices.py: a block's rows r kept as rows j = 0, 1, ... A block alone sees only itself, so its
    row r encoded with the whole block shifted by j - r is that token's key at position start + j."""
    from longdoc.reader.slices import take_rows

    model = tiny(family)
    ids = torch.randint(0, 128, (1, 21))
    keys, values, _ = kv(model, ids, start=40)
    rows = [0, 1, 5, 6, 7, 13, 20]
    taken = take_rows(model, KVBlock(keys, values, 40), rows)
    assert taken.start == 40 and taken.length == len(rows)
    for j, r in enumerate(rows):
        shifted, _, _ = kv(model, ids, start=40 + j - r)
        torch.testing.assert_close(taken.keys[:, :, j], shifted[:, :, r], atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(taken.values[:, :, j], values[:, :, r])
    assert (taken.keys[:, :, 3] - keys[:, :, 6]).abs().max() > 1e-2  # a moved row really was re-rotated


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_stitched_blocks_give_the_same_logits_as_full_prefill_when_blocks_are_independent(family):
    """With one block after the prefix, Block-Attention is exact: prefix KV + block KV encoded after it,
    then the question over the stitched cache, equals one pass over everything."""
    model = tiny(family)
    model.set_attn_implementation(register())
    prefix, block, question = (torch.randint(0, 128, (1, n)) for n in (7, 19, 5))
    _, _, full = kv(model, torch.cat([prefix, block, question], 1))
    pk, pv, out = kv(model, prefix)
    bk, bv, _ = kv(model, block, start=7, cache=out.past_key_values)
    cache = stitch_cache(model, [KVBlock(pk, pv, 0), KVBlock(bk[:, :, 7:], bv[:, :, 7:], 7)])
    _, _, stitched = kv(model, question, start=26, cache=cache)
    torch.testing.assert_close(stitched.logits[0, -1], full.logits[0, -1], atol=1e-5, rtol=1e-5)


def test_blocks_stitched_at_new_offsets_are_re_rotated():
    """Two blocks each encoded after the prefix at the same positions; stitched, the second moves.
    Its keys must then equal those of the same KV re-rotated by hand, and attention over the cache must
    equal attention over explicitly placed keys."""
    model = tiny("llama")
    prefix, a, b = (torch.randint(0, 128, (1, n)) for n in (6, 9, 11))
    pk, pv, out = kv(model, prefix)
    ak, av, _ = kv(model, a, start=6, cache=out.past_key_values)
    _, _, out = kv(model, prefix)
    bk, bv, _ = kv(model, b, start=6, cache=out.past_key_values)
    blocks = [KVBlock(pk, pv, 0), KVBlock(ak[:, :, 6:], av[:, :, 6:], 6), KVBlock(bk[:, :, 6:], bv[:, :, 6:], 6)]
    cache = stitch_cache(model, blocks)
    keys = torch.stack([l.keys[0] for l in cache.layers])
    moved = rerotate_keys(bk[:, :, 6:], rotary_cos_sin(model, torch.arange(6, 17)), rotary_cos_sin(model, torch.arange(15, 26)))
    torch.testing.assert_close(keys[:, :, 15:], moved)
    torch.testing.assert_close(keys[:, :, 6:15], ak[:, :, 6:])


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_decode_steps_over_a_growing_cache_equal_eager_and_record_each_steps_attention(family):
    """Decode rows take decode_attention (one pass over the keys) over a cache that grows in place: the
    logits and each step's recorded attention are eager's over the whole sequence."""
    from longdoc.attention.kv_cache import growing_cache

    model = tiny(family)
    ids = torch.randint(0, 128, (1, 26), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        model.set_attn_implementation("eager")
        eager = model(input_ids=ids, output_attentions=True)
        model.set_attn_implementation(register())
        cache = growing_cache(model.config)
        model(input_ids=ids[:, :23], past_key_values=cache, use_cache=True)
        for step in range(23, 26):
            recorder = AttentionMass()
            with record_attention_mass(recorder):
                out = model(input_ids=ids[:, step:step + 1], past_key_values=cache, use_cache=True,
                            position_ids=torch.tensor([[step]]))
            torch.testing.assert_close(out.logits[0, -1], eager.logits[0, step], atol=1e-5, rtol=1e-5)
            expected = sum(a[0, :, step, :step + 1].sum(0) for a in eager.attentions).double()
            torch.testing.assert_close(recorder.mass, expected, atol=1e-5, rtol=1e-5)
    assert cache.get_seq_length() == 26


def test_a_growing_cache_appends_in_place_and_adopts_tensors_put_in_its_place():
    from transformers import DynamicCache

    from longdoc.attention.kv_cache import growing_cache

    model = tiny("qwen2")
    ours, plain = growing_cache(model.config), DynamicCache(config=model.config)
    g = torch.Generator().manual_seed(5)
    steps = [torch.randn(1, 2, n, 16, generator=g) for n in (10, 1, 1, 3)]
    pointers = []
    for i, k in enumerate(steps):
        if i == 3:  # a re-encoding pass puts new tensors in (recompute.py): the next update adopts them
            for cache in (ours, plain):
                cache.layers[0].keys = cache.layers[0].keys[..., :8, :].clone()
                cache.layers[0].values = cache.layers[0].values[..., :8, :].clone()
        for cache in (ours, plain):
            got = cache.update(k, -k, 0)
        pointers.append(ours.layers[0].keys.data_ptr())
        torch.testing.assert_close(got[0], plain.layers[0].keys, rtol=0, atol=0)
        torch.testing.assert_close(got[1], plain.layers[0].values, rtol=0, atol=0)
        assert ours.get_seq_length() == plain.get_seq_length()
    assert pointers[0] == pointers[1] == pointers[2] != pointers[3]  # single steps wrote into spare room
    assert type(ours.layers[0]).__name__ == "GrowingLayer"
    ours.layers[0].reset()
    assert torch.equal(ours.update(steps[1], steps[1], 0)[0], steps[1])


def test_stitched_blocks_are_written_once_into_the_growing_caches_buffers():
    """No copy between stitching and decoding: each layer's keys are a view of its buffer, with room for
    the answer, and a decode step writes into that room."""
    from longdoc.attention.kv_cache import room_for

    model = tiny("qwen2")
    ids = torch.randint(0, 128, (1, 40), generator=torch.Generator().manual_seed(7))
    k, v, _ = kv(model, ids)
    cache = stitch_cache(model, [KVBlock(k[:, :, :25], v[:, :, :25], 0), KVBlock(k[:, :, 25:], v[:, :, 25:], 25)])
    layer = cache.layers[1]
    buffer = layer._buffers[0]
    assert buffer.shape[-2] == room_for(40) and layer.keys.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(layer.keys[0], k[1], rtol=0, atol=0)
    torch.testing.assert_close(layer.values[0], v[1], rtol=0, atol=0)
    keys, _ = layer.update(k[1:2, :, :1], v[1:2, :, :1])
    assert keys.shape[-2] == 41 and keys.data_ptr() == buffer.data_ptr()
