"""Block-Attention recoveries, each with its exact case: re-encoding every block token reproduces full
prefill, re-encoding a few changes only those positions; APE at T = S = 1 is plain attention."""
import pytest
import torch

from longdoc.attention import register, stitch_cache
from longdoc.attention.block import KVBlock
from longdoc.attention.recompute import first_tokens, reencode


@pytest.fixture(scope="module")
def qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                                         num_attention_heads=4, num_key_value_heads=2, rope_theta=1e6)).eval()
    model.set_attn_implementation(register())
    return model


def _kv(cache):
    return torch.stack([layer.keys for layer in cache.layers]), torch.stack([layer.values for layer in cache.layers])


@torch.inference_mode()
def _stitched(model, prefix, blocks):
    """The prefix encoded from 0, each block encoded alone after it, stitched back to back."""
    out = model(input_ids=torch.tensor([prefix]), use_cache=True)
    pk, pv = _kv(out.past_key_values)
    parts = [KVBlock(pk[:, 0], pv[:, 0], 0)]
    for block in blocks:
        cache = stitch_cache(model, parts[:1])
        pos = torch.arange(len(prefix), len(prefix) + len(block))[None]
        k, v = _kv(model(input_ids=torch.tensor([block]), past_key_values=cache, position_ids=pos,
                         use_cache=True).past_key_values)
        parts.append(KVBlock(k[:, 0, :, len(prefix):], v[:, 0, :, len(prefix):], len(prefix)))
    return stitch_cache(model, parts)


@torch.inference_mode()
def test_reencoding_every_block_token_equals_full_prefill(qwen2):
    g = torch.Generator().manual_seed(1)
    prefix, b1, b2, b3 = (torch.randint(0, 300, (n,), generator=g).tolist() for n in (5, 9, 7, 11))
    ids = prefix + b1 + b2 + b3
    full_k, full_v = _kv(qwen2(input_ids=torch.tensor([ids]), use_cache=True).past_key_values)
    cache = _stitched(qwen2, prefix, [b1, b2, b3])
    k0, _ = _kv(cache)
    assert not torch.allclose(k0[:, :, :, 14:], full_k[:, :, :, 14:], atol=1e-3)  # blocks 2, 3 saw no other block
    reencode(qwen2, cache, ids, list(range(len(prefix), len(ids))))
    k, v = _kv(cache)
    assert k.shape == full_k.shape
    torch.testing.assert_close(k, full_k, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(v, full_v, atol=1e-5, rtol=1e-5)


@torch.inference_mode()
def test_reencoding_the_first_tokens_of_each_block_touches_only_them(qwen2):
    g = torch.Generator().manual_seed(2)
    prefix, b1, b2 = (torch.randint(0, 300, (n,), generator=g).tolist() for n in (4, 8, 8))
    ids = prefix + b1 + b2
    full_k, _ = _kv(qwen2(input_ids=torch.tensor([ids]), use_cache=True).past_key_values)
    cache = _stitched(qwen2, prefix, [b1, b2])
    before, _ = _kv(cache)
    chosen = first_tokens([(4, 12), (12, 20)], 3)
    assert chosen == [4, 5, 6, 12, 13, 14]
    reencode(qwen2, cache, ids, chosen)
    after, _ = _kv(cache)
    untouched = [p for p in range(20) if p not in chosen]
    torch.testing.assert_close(after[:, :, :, untouched], before[:, :, :, untouched])
    # Block 2's first tokens now saw block 1 (exact, it follows the prefix) and the prefix: as in full prefill.
    torch.testing.assert_close(after[:, :, :, 12:15], full_k[:, :, :, 12:15], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(before[:, :, :, 12:15], full_k[:, :, :, 12:15], atol=1e-3)


@torch.inference_mode()
def test_reencoding_in_the_questions_pass_equals_a_separate_pass_then_the_question(qwen2):
    from longdoc.attention import AttentionMass, record_attention_mass

    g = torch.Generator().manual_seed(4)
    prefix, b1, b2, question = (torch.randint(0, 300, (n,), generator=g).tolist() for n in (4, 9, 8, 6))
    ids = prefix + b1 + b2
    chosen = [5, 6, 14, 15, 16]
    runs = []
    for merged in (False, True):
        cache = _stitched(qwen2, prefix, [b1, b2])
        recorder = AttentionMass()
        with record_attention_mass(recorder):
            if merged:
                out = reencode(qwen2, cache, ids, chosen, feed=question, start=len(ids), recorder=recorder)
            else:
                with record_attention_mass(None):
                    reencode(qwen2, cache, ids, chosen)
                out = qwen2(input_ids=torch.tensor([question]), past_key_values=cache, use_cache=True,
                            position_ids=torch.arange(len(ids), len(ids) + len(question))[None], logits_to_keep=1)
        runs.append((out.logits, *_kv(cache), recorder.mass))
    for separate, merged in zip(*runs):
        torch.testing.assert_close(merged, separate, atol=1e-5, rtol=1e-5)
    mass = runs[1][3]
    assert mass.shape == (len(ids) + len(question),) and mass[chosen].min() > 0  # credited to their new places


def test_ape_matches_two_attentions_merged_with_a_scaled_context_lse():
    from longdoc.attention.ape import ApeSpec, ape_attend
    from longdoc.attention.sparse import attend, lse_merge

    g = torch.Generator().manual_seed(3)
    q, k, v = torch.randn(5, 4, 16, generator=g), torch.randn(2, 30, 16, generator=g), torch.randn(2, 30, 16, generator=g)
    mask = (torch.arange(30)[None, :] <= torch.arange(25, 30)[:, None])  # bottom-right causal
    spec = ApeSpec(6, 22, temperature=0.7, scale=0.8)
    out, last = ape_attend(q, k, v, 0.25, mask, spec)
    ctx = torch.zeros(30, dtype=torch.bool)
    ctx[6:22] = True
    m = mask[:, None, :].expand(-1, 2, -1)
    o_ctx, lse_ctx = attend(q, k / spec.temperature, v, 0.25, m & ctx)  # logits / T through the keys
    o_other, lse_other = attend(q, k, v, 0.25, m & ~ctx)
    ref, _ = lse_merge([(o_ctx, spec.scale * lse_ctx), (o_other, lse_other)])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert abs(float(last.sum()) - 4) < 1e-4  # the last row's weights, summed over 4 query heads
    exact, _ = ape_attend(q, k, v, 0.25, mask, ApeSpec(6, 22))
    plain, _ = attend(q, k, v, 0.25, m)
    torch.testing.assert_close(exact, plain, atol=1e-5, rtol=1e-5)  # T = S = 1 is exact attention


@torch.inference_mode()
def test_ape_at_temperature_and_scale_one_equals_plain_block_attention(qwen2):
    from longdoc.attention.ape import ApeSpec, use_ape

    g = torch.Generator().manual_seed(4)
    prefix, b1, b2, question = (torch.randint(0, 300, (n,), generator=g).tolist() for n in (4, 9, 7, 5))
    pos = torch.arange(20, 25)[None]
    plain = qwen2(input_ids=torch.tensor([question]), past_key_values=_stitched(qwen2, prefix, [b1, b2]),
                  position_ids=pos).logits
    with use_ape(ApeSpec(4, 20)):
        same = qwen2(input_ids=torch.tensor([question]), past_key_values=_stitched(qwen2, prefix, [b1, b2]),
                     position_ids=pos).logits
    with use_ape(ApeSpec(4, 20, temperature=0.5, scale=0.9)):
        other = qwen2(input_ids=torch.tensor([question]), past_key_values=_stitched(qwen2, prefix, [b1, b2]),
                      position_ids=pos).logits
    torch.testing.assert_close(same, plain, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(other, plain, atol=1e-3)
