"""Reading a whole document with the default reader and the long-context backends: answers with exact
citation spans, a share of keys read below one on a document longer than the budget, the CLI, and the
Triton kernels on real SmolLM2 queries and keys."""
import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from longdoc.attention import kernels, sparse
from longdoc.attention.memory import ContextMemory
from longdoc.config import ReaderSettings
from longdoc.indexing.loaders import load_document
from longdoc.reader import Reader, read
from longdoc.reader.read import document_passages
from longdoc.reader.scan import attention_sentences, pick, scan, with_lexical

pytestmark = pytest.mark.slow
QUESTION = "How long did the tower at Carrow Point take to build?"


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    return Reader("smollm2-135m-instruct", tmp_path_factory.mktemp("kv"), ReaderSettings(sparse_keys=256), "cpu")


@pytest.fixture(scope="module")
def long_doc(tmp_path_factory):
    """A real document several times longer than the 256-key budget."""
    from conftest import FIXTURES

    parts = [(FIXTURES / name).read_text() for name in ("lighthouses.md", "fog_signals.txt")]
    path = tmp_path_factory.mktemp("doc") / "coast.md"
    path.write_text("\n\n".join(parts * 2))
    return path


@pytest.mark.parametrize("attention", ["retrieval", "landmark"])
def test_read_cites_exact_spans_and_reads_a_fraction_of_the_keys(reader, long_doc, attention):
    answer = read(long_doc, QUESTION, attention, reader=reader, max_new_tokens=16)
    text = load_document(long_doc).text
    assert answer.attention == attention and answer.text
    assert answer.timings["passages"] >= 3
    assert 0 < answer.timings["keys_read_share"] < 0.5
    assert answer.citations
    for c in answer.citations:
        assert text[c.char_start:c.char_end] == c.text
    assert abs(sum(c.attention for c in answer.citations) - 1) < 1e-6


def test_a_second_question_over_the_same_document_reuses_its_memory(reader, long_doc):
    first = read(long_doc, QUESTION, "retrieval", reader=reader, max_new_tokens=8)
    memory = reader._last_memory[1]
    again = read(long_doc, QUESTION, "retrieval", reader=reader, max_new_tokens=8)
    assert reader._last_memory[1] is memory  # not rebuilt
    assert again.raw == first.raw and again.timings["blocks_computed"] == 0
    assert [c.attention for c in again.citations] == pytest.approx([c.attention for c in first.citations])
    other = read(long_doc, "Who kept the light?", "landmark", reader=reader, max_new_tokens=8)
    assert reader._last_memory[1] is not memory and other.attention == "landmark"


def test_scan_keeps_the_sentence_that_answers_and_cites_exact_sentences(reader, long_doc):
    """Segments of one passage each: the question's attention beyond the generic question's keeps the
    sentence that answers it among ~130 tokens of the ~2,000; the answer cites the excerpts it read, exactly."""
    hits = document_passages(reader, long_doc)
    kept = scan(reader, reader.prompt(QUESTION, hits, in_order=True), hits, QUESTION, segment_tokens=512, keep_tokens=128)
    text = load_document(long_doc).text
    assert len(hits) >= 3 and 0 < sum(len(e.text) for e in kept) < len(text) / 5
    assert any("took\nfour summers" in e.text for e in kept)
    for e in kept:
        assert text[e.char_start:e.char_end] == e.text
    answer = read(long_doc, QUESTION, "scan", reader=reader, max_new_tokens=16)
    assert answer.attention == "scan" and answer.timings["excerpts"] >= 1 and answer.citations
    for c in answer.citations:
        assert text[c.char_start:c.char_end] == c.text


def test_reading_every_sentence_from_the_passages_kv_equals_block_attention_over_them(reader, long_doc):
    """answer.scan_read = kv with a budget that keeps every sentence: each passage is one excerpt whose rows
    are all of its passage's KV, so the answer is block attention's over the passages, token for token."""
    hits = document_passages(reader, long_doc)
    saved = reader.settings
    try:
        reader.settings = replace(saved, scan_keep=10**6, scan_read="kv", recompute_top=0, reencode_first=0,
                                  reencode_focus=0)
        scanned = reader.answer(QUESTION, hits, "scan", max_new_tokens=12, in_order=True)
        block = reader.answer(QUESTION, hits, "block", max_new_tokens=12, in_order=True)
    finally:
        reader.settings = saved
    assert scanned.timings["excerpts"] == len(hits) and scanned.timings["prompt_tokens"] == block.timings["prompt_tokens"]
    assert scanned.raw == block.raw and scanned.raw
    assert [c.attention for c in scanned.citations] == pytest.approx([c.attention for c in block.citations], abs=1e-4)


@pytest.mark.parametrize("mode", ["kv", "exact"])
def test_scan_reads_its_excerpts_either_way_and_cites_them(reader, long_doc, mode):
    """kv: the excerpts' rows of the passages' KV, only the question prefilled; exact: the excerpts encoded
    again. Either way the prompt holds the excerpts (the header naming the source, then the sentences) and
    the answer cites exact spans of them."""
    saved = reader.settings
    try:
        reader.settings = replace(saved, scan_read=mode, scan_segment=512, scan_keep=128)
        answer = read(long_doc, QUESTION, "scan", reader=reader, max_new_tokens=16)
    finally:
        reader.settings = saved
    text = load_document(long_doc).text
    assert answer.text and 1 <= answer.timings["excerpts"] and answer.timings["prompt_tokens"] < 400
    assert answer.citations
    for c in answer.citations:
        assert text[c.char_start:c.char_end] == c.text


def test_scan_fuses_each_sentences_word_rank_with_its_attention_rank(reader, long_doc):
    """answer.scan_lexical: weight 0 leaves the attention's scores; with words weighted, the sentences that
    name the question's rare word come first, and among sentences without its words attention still orders."""
    question = "What was the diaphone?"
    hits = document_passages(reader, long_doc)
    scored = attention_sentences(reader, reader.prompt(question, hits, in_order=True), hits, 512)
    assert with_lexical(scored, hits, question, 0.0) == scored
    fused = with_lexical(scored, hits, question, 4.0)
    text = [hits[s.hit].text[s.start:s.end].lower() for s in fused]
    order = sorted(range(len(fused)), key=lambda n: -fused[n].score)
    naming = [n for n in order if "diaphone" in text[n]]
    assert len(naming) == 2 and order[:2] == naming  # the fixture's sentence, in both copies of the document
    rest = [n for n in order if "diaphone" not in text[n]]
    assert [scored[n].score for n in rest] == sorted((scored[n].score for n in rest), reverse=True)
    picked = pick(fused, 64, 0)
    assert any("diaphone" in hits[s.hit].text[s.start:s.end].lower() for s in picked)


def test_scan_computes_the_generic_questions_attention_once_per_segment(reader, long_doc):
    hits = document_passages(reader, long_doc)
    scan(reader, reader.prompt(QUESTION, hits, in_order=True), hits, QUESTION, segment_tokens=512, keep_tokens=128)
    held = {k: reader.scan_baselines.get(k) for k in reader.scan_baselines.keys()}
    scan(reader, reader.prompt("Who kept the light?", hits, in_order=True), hits, "Who kept the light?", segment_tokens=512, keep_tokens=128)
    assert reader.scan_baselines.keys() == list(held)
    assert all(reader.scan_baselines.get(k) is v for k, v in held.items())


def test_read_refuses_an_unknown_backend(reader, long_doc):
    with pytest.raises(Exception, match="unknown attention"):
        read(long_doc, QUESTION, "sliding", reader=reader)


def test_kernels_match_the_reference_on_real_queries_and_keys(reader, long_doc, monkeypatch):
    """Queries and keys from SmolLM2 reading a real document, through both kernels (Triton interpreter)."""
    pytest.importorskip("triton")
    monkeypatch.setattr(kernels, "POISON_OUTPUTS", True)
    seen = {}
    attend = ContextMemory.attend

    def spy(self, layer, q, scaling):
        seen.setdefault(layer, (self, q.clone()))
        return attend(self, layer, q, scaling)

    monkeypatch.setattr(ContextMemory, "attend", spy)
    read(long_doc, QUESTION, "retrieval", reader=reader, max_new_tokens=2)
    for layer in (0, 15, 29):
        memory, q = seen[layer]
        for rep in ("mean", "minmax"):
            ref = sparse.block_scores(q, memory.reps[layer], rep)
            out = kernels.block_scores(q, memory.reps[layer], rep, "triton")
            assert ((out - ref).norm() / ref.norm()) < 1e-5
        blocks = sparse.select_blocks(ref, 8)
        args = (memory.keys[layer], memory.values[layer], blocks, memory.spec.block, memory.valid, 0.125)
        ref_out, ref_lse = sparse.sparse_attend(q, *args)
        out, lse = kernels.sparse_attention(q, *args, impl="triton")
        assert ((out - ref_out).norm() / ref_out.norm()) < 2e-3  # float16 keys
        assert ((lse - ref_lse).norm() / ref_lse.norm()) < 2e-3


def test_cli_read_json(long_doc, tmp_path, monkeypatch):
    from longdoc.cli.app import app

    monkeypatch.setenv("LONGDOC_ANSWER_SPARSE_KEYS", "256")
    result = CliRunner().invoke(app, ["read", str(long_doc), "-q", QUESTION, "--attention", "landmark",
                                      "--max-new-tokens", "8", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    assert data["attention"] == "landmark" and data["citations"]
    bad = CliRunner().invoke(app, ["read", str(long_doc), "-q", QUESTION, "--attention", "nope"])
    assert bad.exit_code != 0 and "unknown attention" in bad.output


def test_auto_reads_a_document_that_fits_exactly_with_block_and_a_longer_one_sparsely(reader, long_doc, tmp_path):
    from dataclasses import replace

    fits = read(long_doc, QUESTION, "auto", reader=reader, max_new_tokens=8)
    block = read(long_doc, QUESTION, "block", reader=reader, max_new_tokens=8)
    assert fits.attention == "block" and fits.raw == block.raw  # the same path, token for token
    small = Reader("smollm2-135m-instruct", tmp_path / "kv",
                   replace(reader.settings, exact_up_to=512, long_attention="retrieval"), "cpu")
    beyond = read(long_doc, QUESTION, "auto", reader=small, max_new_tokens=8)
    assert beyond.attention == "retrieval" and 0 < beyond.timings["keys_read_share"] < 0.5
