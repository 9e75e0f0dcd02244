"""The reader on the real SmolLM2-135M-Instruct (Llama family, GQA 9/3) and a small Qwen2: Block-Attention
against full prefill, the KV store in the loop, citations, streaming, abstaining and the CLI."""
import json
import subprocess
import sys

import pytest
import torch

from longdoc import index_paths, open_index
from longdoc.attention import stitch_cache
from longdoc.config import ReaderSettings, Settings, load_settings
from longdoc.reader import Reader

pytestmark = pytest.mark.slow

QUESTION = "What causes spring tides?"


@pytest.fixture(scope="module")
def reader_index(tmp_path_factory):
    from conftest import DOC_FIXTURES

    path = tmp_path_factory.mktemp("reader") / "index"
    index_paths(path, [p for p in DOC_FIXTURES if p.suffix != ".pdf"])
    return path


@pytest.fixture(scope="module")
def exact_reader(tmp_path_factory):
    """The default reader with a float32 KV store, so stored blocks are exactly what was computed."""
    return Reader("smollm2-135m-instruct", tmp_path_factory.mktemp("kv"), ReaderSettings(kv_dtype="float32", precision="float32"), "cpu")


def first_logits(reader: Reader, question: str, hits, attention: str) -> torch.Tensor:
    """Logits of the first answer token under each backend, from the reader's own prompt and KV path."""
    prompt = reader.prompt(question, hits)
    model = reader.model.model
    with torch.inference_mode():
        if attention == "full":
            return model(input_ids=torch.tensor([prompt.ids()])).logits[0, -1]
        blocks = [reader.encoder.prefix(prompt)] + reader.encoder.blocks(prompt, list(range(len(prompt.blocks))))
        start = sum(b.length for b in blocks)
        positions = torch.arange(start, start + len(prompt.suffix)).unsqueeze(0)
        return model(input_ids=torch.tensor([prompt.suffix]), past_key_values=stitch_cache(model, blocks),
                     position_ids=positions).logits[0, -1]


def test_block_attention_with_one_passage_equals_full_attention(reader_index, exact_reader):
    with open_index(reader_index) as ix:
        hits = ix.search(QUESTION, k=1)
    full = first_logits(exact_reader, QUESTION, hits, "full")
    exact_reader.encoder.blocks(exact_reader.prompt(QUESTION, hits), [0])  # computed and stored
    block = first_logits(exact_reader, QUESTION, hits, "block")  # now read back from the store
    torch.testing.assert_close(block, full, atol=1e-4, rtol=1e-4)
    a = exact_reader.answer(QUESTION, hits, "full")
    b = exact_reader.answer(QUESTION, hits, "block")
    assert a.raw == b.raw and b.timings["blocks_computed"] == 0


def test_the_prompt_marks_each_windows_matched_chunk_and_reencoding_it_all_equals_full(reader_index, exact_reader):
    """Prompt.focus points at the matched chunk's tokens inside its window. With every window's focus
    reaching past its ends, every passage token is re-encoded over the stitched cache: full attention."""
    import dataclasses

    with open_index(reader_index) as ix:
        hits = ix.search(QUESTION, k=3)
        windows = ix.reading_passages(hits)
    tokenizer = exact_reader.model.tokenizer
    chunks = {h.chunk_id: " ".join(h.text.split()) for h in hits}
    prompt = exact_reader.prompt(QUESTION, windows)
    for block, i, (a, b) in zip(prompt.blocks, prompt.order, prompt.focus):
        marked = " ".join(tokenizer.decode(block[a:b]).split())
        assert chunks[windows[i].chunk_id] in marked and len(marked) <= len(chunks[windows[i].chunk_id]) + 16
    whole = [dataclasses.replace(w, focus=(w.char_start - 10**6, w.char_end + 10**6)) for w in windows]
    prompt = exact_reader.prompt(QUESTION, whole)
    assert prompt.focus == [(0, len(block)) for block in prompt.blocks]
    full = exact_reader.answer(QUESTION, whole, "full")
    exact_reader.encoder.blocks(prompt, list(range(len(prompt.blocks))))  # stored first, as `index --kv` does
    exact_reader.settings, saved = dataclasses.replace(exact_reader.settings, reencode_focus=len(whole)), exact_reader.settings
    try:
        recovered = exact_reader.answer(QUESTION, whole, "block")
    finally:
        exact_reader.settings = saved
    assert recovered.raw == full.raw
    assert [c.chunk_id for c in recovered.citations] == [c.chunk_id for c in full.citations]


def test_passages_encoded_in_one_padded_batch_equal_passages_encoded_alone(reader_index, exact_reader):
    """A GPU encodes passages in batches padded to the longest (a CPU one by one): the same KV either way."""
    with open_index(reader_index) as ix:
        prompt = exact_reader.prompt(QUESTION, ix.search(QUESTION, k=3))
    assert len({len(b) for b in prompt.blocks}) > 1  # the batch really pads
    batched = exact_reader.encoder.encode(prompt, prompt.blocks)
    for block, together in zip(prompt.blocks, batched):
        alone = exact_reader.encoder.encode(prompt, [block])[0]
        assert together.start == alone.start
        torch.testing.assert_close(together.keys, alone.keys, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(together.values, alone.values, atol=1e-4, rtol=1e-4)


def test_recomputing_every_passage_equals_full_attention(reader_index, exact_reader):
    with open_index(reader_index) as ix:
        hits = ix.search(QUESTION, k=4)
    full = exact_reader.answer(QUESTION, hits, "full")
    recomputed = exact_reader.answer(QUESTION, hits, "block", recompute_top=4)
    assert recomputed.raw == full.raw
    assert [c.chunk_id for c in recomputed.citations] == [c.chunk_id for c in full.citations]


def test_ask_answers_with_citations_of_real_spans_and_streams(reader_index):
    pieces = []
    with open_index(reader_index) as ix:
        answer = ix.ask(QUESTION, k=4, on_token=pieces.append)
        again = ix.ask(QUESTION, k=4, attention="block")
        assert answer.raw and answer.raw in "".join(pieces)
        assert "sun" in answer.raw.lower() and "moon" in answer.raw.lower()
        assert answer.attention == "block" and not answer.abstained
        read = ix.reading_passages(ix.search(QUESTION, k=4))  # each hit widened to its window, overlaps merged
        assert 1 <= len(read) <= 4 and {c.chunk_id for c in answer.citations} == {h.chunk_id for h in read}
        assert len(answer.citations) == len(read) and answer.citations[0].marked
        assert answer.text.endswith("[1]") or "[1]" in answer.text
        assert abs(sum(c.attention for c in answer.citations) - 1) < 1e-6
        # the answer's sentence is in the passage it attended to most
        assert "spring tides" in answer.citations[0].text
        for c in answer.citations:
            assert ix.document_text(c.doc_id)[c.char_start:c.char_end] == c.text
            assert c.path.endswith((".md", ".rst", ".html", ".txt"))
        assert again.raw == answer.raw and again.timings["blocks_computed"] == 0  # the KV store served all 4
        assert answer.timings["ttft_s"] > 0 and answer.timings["prompt_tokens"] > 100
        assert ix.kv_store().stats()["entries"] >= len(read) + 1  # the passages read and the prompt prefix


@pytest.mark.parametrize("attention,pin", [("retrieval", "attention"), ("landmark", "attention"), ("retrieval", "scan")])
def test_ask_over_many_passages_with_sparse_attention(reader_index, attention, pin):
    """k far past the 128-key budget: the answer still comes from the best passages, with real spans,
    whether the answer's rows keep what the question's rows scored highest or the sentences scan picks."""
    settings = Settings().replace(answer_sparse_keys=128, answer_sparse_pin=pin, answer_scan_segment=512)
    with open_index(reader_index, settings=settings) as ix:
        answer = ix.ask(QUESTION, k=30, attention=attention)
        assert answer.attention == attention and answer.raw
        assert ("scan_s" in answer.timings) == (pin == "scan")
        read = ix.reading_passages(ix.search(QUESTION, k=30))
        assert len(answer.citations) == len(read) > 5  # every passage read is cited
        assert answer.timings["keys_read_share"] < 0.2
        for c in answer.citations:
            assert ix.document_text(c.doc_id)[c.char_start:c.char_end] == c.text


def test_ask_with_scan_reads_and_cites_sentences_of_the_retrieved_passages(reader_index):
    settings = Settings().replace(answer_scan_segment=512, answer_scan_keep=96)
    with open_index(reader_index, settings=settings) as ix:
        answer = ix.ask(QUESTION, k=30, attention="scan")
        read = ix.reading_passages(ix.search(QUESTION, k=30))
        assert answer.attention == "scan" and answer.raw and answer.citations
        assert answer.timings["prompt_tokens"] < 400  # the excerpts, not the 30 passages
        for c in answer.citations:
            assert ix.document_text(c.doc_id)[c.char_start:c.char_end] == c.text
            assert any(p.doc_id == c.doc_id and p.char_start <= c.char_start and c.char_end <= p.char_end for p in read)


def test_ask_abstains_when_nothing_relevant_is_retrieved(reader_index):
    settings = load_settings(answer_abstain_below=0.35)
    with open_index(reader_index, settings=settings) as ix:
        off_topic = ix.ask("What is the airspeed of an unladen swallow carrying a coconut?")
        on_topic = ix.ask(QUESTION)
    assert off_topic.abstained and off_topic.citations == [] and "could not find" in off_topic.text
    assert not on_topic.abstained


def test_cli_ask_json_and_kv_commands(reader_index):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "longdoc", *args, "--index", str(reader_index)],
                              capture_output=True, text=True, timeout=300)

    out = cli("ask", "Who kept the lighthouse log?", "--json", "-k", "3", "--attention", "block")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["attention"] == "block" and len(answer["citations"]) == 3
    assert {"path", "section", "char_start", "char_end", "page", "attention", "marked"} <= set(answer["citations"][0])
    both = json.loads(cli("ask", QUESTION, "Who kept the lighthouse log?", "-k", "3", "--json").stdout)
    assert [a["question"] for a in both] == [QUESTION, "Who kept the lighthouse log?"]  # one reader, two answers
    plain = cli("ask", QUESTION, "-k", "3")  # what a person sees: the answer, its citations, no library noise
    assert plain.returncode == 0 and plain.stderr.strip() == "", plain.stderr
    assert "Warning" not in plain.stdout and "The answer is" not in plain.stdout
    bad = cli("ask", "anything", "--attention", "sparse")
    assert bad.returncode == 1 and "unknown attention" in bad.stderr and "Traceback" not in bad.stderr
    stats = json.loads(cli("kv", "stats", "--json").stdout)
    assert stats["entries"] > 0
    assert json.loads(cli("kv", "clear", "--json").stdout)["removed"] == stats["entries"]
    assert json.loads(cli("kv", "stats", "--json").stdout)["entries"] == 0
    from conftest import DOC_FIXTURES

    files = [str(p) for p in DOC_FIXTURES if p.suffix != ".pdf"]
    report = json.loads(cli("index", *files, "--kv", "--json").stdout)  # files unchanged: only the KV is new
    chunks = json.loads(cli("status", "--json").stdout)["chunks"]
    # the KV of every reading window (windows hold one or more chunks), and the prompt prefix
    assert report["unchanged"] == len(files) and 0 < report["kv_computed"] <= chunks
    assert json.loads(cli("kv", "stats", "--json").stdout)["entries"] == report["kv_computed"] + 1


def test_a_qwen2_reader_from_a_local_directory(tmp_path, tokenizer, reader_index):
    """Any local causal LM works; Qwen2's RoPE and biases go through the same Block-Attention path."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2))
    model.save_pretrained(tmp_path / "qwen2")
    tokenizer.save_pretrained(tmp_path / "qwen2")
    reader = Reader(str(tmp_path / "qwen2"), tmp_path / "kv", ReaderSettings(kv_dtype="float32", precision="float32"), "cpu")
    with open_index(reader_index) as ix:
        hits = ix.search(QUESTION, k=1)
    full = first_logits(reader, QUESTION, hits, "full")
    torch.testing.assert_close(first_logits(reader, QUESTION, hits, "block"), full, atol=1e-5, rtol=1e-5)
    answer = reader.answer(QUESTION, ix_hits := hits, "block", max_new_tokens=4)
    assert answer.citations[0].chunk_id == ix_hits[0].chunk_id and answer.timings["new_tokens"] <= 4


def test_the_packaged_qwen_reader_block_equals_full_for_one_passage(reader_index, tmp_path):
    """The real Qwen2.5-Coder-0.5B (float32, so both paths compute alike): Block-Attention with one passage
    is full attention, and EPIC re-encoding keeps it so."""
    reader = Reader("qwen2.5-coder-0.5b-instruct", tmp_path / "kv",
                    ReaderSettings(kv_dtype="float32", precision="float32"), "cpu")
    with open_index(reader_index) as ix:
        hits = ix.search(QUESTION, k=1)
    full = first_logits(reader, QUESTION, hits, "full")
    torch.testing.assert_close(first_logits(reader, QUESTION, hits, "block"), full, atol=2e-3, rtol=1e-3)
    a = reader.answer(QUESTION, hits, "full")
    assert reader.answer(QUESTION, hits, "block").raw == a.raw
    assert reader.answer(QUESTION, hits, "block", reencode_first=16).raw == a.raw
    assert "moon" in a.raw.lower() or "sun" in a.raw.lower()


def test_an_answer_is_one_line_unless_its_first_line_introduces_it():
    from longdoc.reader.generate import _line_ended

    assert not _line_ended("Heseltine")
    assert _line_ended("Heseltine\nThe last name of")
    assert not _line_ended("The answer is:\n")
    assert not _line_ended("The names are:\nAnna and")
    assert _line_ended("The names are:\nAnna and Bo.\nMore")


def test_answers_come_out_clean():
    from longdoc.reader.cleanup import clean_answer, stable_prefix
    from longdoc.reader.generate import _line_ended

    assert clean_answer("The answer is: [1]") == "The answer is: [1]"  # nothing left: kept as it was
    assert clean_answer("The answer is: Heseltine [1]") == "Heseltine"
    assert clean_answer("Answer: the lamp room [2] [3]") == "the lamp room"
    assert clean_answer(".. code-block:: python\n\nfunctools.partial") == "functools.partial"
    assert clean_answer("```python\nsorted(xs)") == "sorted(xs)"
    assert clean_answer("The names are:\nAnna and Bo.") == "Anna and Bo."
    assert clean_answer("Spring tides follow the new and full moon.") == "Spring tides follow the new and full moon."
    assert stable_prefix("The answer is: Anna and B") == "Anna and"
    assert stable_prefix("The answer") == ""
    assert not _line_ended(".. code-block:: python\nsorted(")
    assert _line_ended(".. code-block:: python\nsorted(xs)\nMore")


def test_the_reader_imports_without_faiss():
    """A GPU box that times the reader (bench/gpu_reader.py) has torch and transformers, not the index's
    dependencies."""
    import subprocess
    import sys

    code = ("import sys; sys.modules.update(faiss=None); "
            "from longdoc.reader.reader import Reader; from longdoc.retrieval.hit import Hit; "
            "from longdoc.attention import register; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
