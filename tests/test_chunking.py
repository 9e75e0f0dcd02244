import pytest
from conftest import DOC_FIXTURES

from longdoc.config import ChunkSettings
from longdoc.indexing.chunking import Chunker
from longdoc.indexing.document import LoadedDocument, sections_from_headings
from longdoc.indexing.loaders import load_document


@pytest.mark.parametrize("tokens,overlap", [(32, 8), (64, 16), (128, 16)])
@pytest.mark.parametrize("path", DOC_FIXTURES, ids=lambda p: p.name)
def test_chunks_are_exact_slices_of_the_document(path, tokens, overlap, tokenizer):
    doc = load_document(path)
    chunks = Chunker(tokenizer, ChunkSettings(tokens, overlap)).chunk(doc)
    assert chunks
    for c in chunks:
        assert doc.text[c.char_start:c.char_end] == c.text
        assert c.text == c.text.strip() and c.text
        # The chunk fits the budget when re-tokenised as a whole.
        assert len(tokenizer(c.text, add_special_tokens=False)["input_ids"]) <= tokens + 2
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))


def test_chunks_never_cross_sections_and_carry_the_section_path(tokenizer):
    doc = load_document(DOC_FIXTURES[[p.name for p in DOC_FIXTURES].index("lighthouses.md")])
    chunks = Chunker(tokenizer, ChunkSettings(32, 8)).chunk(doc)
    for c in chunks:
        sec = next(s for s in doc.sections if s.path == c.section)
        assert sec.char_start <= c.char_start and c.char_end <= sec.char_end
    assert {c.section[-1] for c in chunks} >= {"Construction", "Foundations", "Lighting", "Keeping the Light"}


def test_pdf_chunks_know_their_pages(tokenizer):
    doc = load_document(DOC_FIXTURES[[p.name for p in DOC_FIXTURES].index("lighthouse_log.pdf")])
    chunks = Chunker(tokenizer, ChunkSettings(32, 0)).chunk(doc)
    assert {c.page_start for c in chunks} == {1, 2, 3}
    diaphone = next(c for c in chunks if "diaphone" in c.text)
    assert diaphone.page_start == 2


def _doc(text: str) -> LoadedDocument:
    return LoadedDocument("mem.txt", "txt", text, "mem", sections_from_headings(text, []))


def test_consecutive_chunks_overlap_by_whole_sentences(tokenizer):
    sentences = [f"Sentence number {i} talks about harbour {i}." for i in range(40)]
    doc = _doc(" ".join(sentences))
    chunks = Chunker(tokenizer, ChunkSettings(48, 16)).chunk(doc)
    assert len(chunks) > 3
    for a, b in zip(chunks, chunks[1:]):
        assert b.char_start < a.char_end, "the next chunk starts inside the previous one (overlap)"
        assert b.char_start > a.char_start, "chunks move forward"
        assert doc.text[b.char_start:].startswith("Sentence number"), "overlap starts at a sentence boundary"


def test_a_sentence_longer_than_a_chunk_is_cut_at_token_boundaries(tokenizer):
    doc = _doc("lighthouse " * 500)
    chunks = Chunker(tokenizer, ChunkSettings(64, 8)).chunk(doc)
    assert len(chunks) >= 8
    covered = set()
    for c in chunks:
        assert c.token_count <= 64
        assert doc.text[c.char_start:c.char_end] == c.text
        covered.update(range(c.char_start, c.char_end))
    assert covered >= set(range(0, len(doc.text.rstrip())))


def test_invalid_chunk_settings_are_refused():
    from longdoc.errors import LongdocError

    with pytest.raises(LongdocError):
        ChunkSettings(8, 0)
    with pytest.raises(LongdocError):
        ChunkSettings(64, 40)
