"""Reading windows: sentence-aligned, inside their section, containing their chunk, merged, content-stable."""
import pytest

from longdoc import index_paths, open_index
from longdoc.retrieval.windows import reading_windows, sentence_starts, window_grid

TEXT = ("Tides rise twice a day. The moon pulls the sea! Spring tides are high? Neap tides are low.\n\n"
        "A new paragraph starts here and runs on for a while without stopping at all")


def test_sentences_and_the_grid_cover_the_text_in_whole_sentences():
    starts = sentence_starts(TEXT, 0, len(TEXT))
    assert [TEXT[s:s + 5] for s in starts] == ["Tides", "The m", "Sprin", "Neap ", "A new"]
    grid = window_grid(TEXT, 0, len(TEXT), 10)
    assert grid[0][0] == 0 and grid[-1][1] == len(TEXT)
    assert all(a[1] == b[0] for a, b in zip(grid, grid[1:]))  # contiguous, no gaps
    assert all(a in starts for a, _ in grid)  # every window opens a sentence
    assert [len(TEXT[a:b].split()) for a, b in grid] == [10, 8, 15]  # packed up to 10 words; a long sentence alone
    assert window_grid(TEXT, 0, len(TEXT), 10) == grid  # the same text, the same windows
    assert window_grid(TEXT, 24, 60, 1000) == [(24, 60)]  # a span inside the text


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    from conftest import DOC_FIXTURES

    path = tmp_path_factory.mktemp("windows") / "index"
    index_paths(path, [p for p in DOC_FIXTURES if p.suffix in (".rst", ".md", ".pdf")])
    return path


@pytest.mark.slow
def test_hits_widen_to_windows_within_their_section_and_merge(index):
    with open_index(index) as ix:
        hits = ix.search("How are tide tables read?", k=8)
        windows = reading_windows(ix.catalog, hits, 120)
        assert len(windows) <= len(hits)
        for w in windows:
            text = ix.catalog.document_text(w.doc_id)
            assert w.text == text[w.char_start:w.char_end]
            sections = ix.catalog.spans(w.doc_id, "section")
            assert any(a <= w.char_start and w.char_end <= b for a, b in sections)
        chunks = {h.chunk_id: h for h in hits}
        for w in windows:  # a window keeps the span of the chunk search matched, for the reader's focus
            assert w.focus == (chunks[w.chunk_id].char_start, chunks[w.chunk_id].char_end)
            assert w.char_start <= w.focus[0] < w.focus[1] <= w.char_end
        for h in hits:  # every hit's chunk is inside exactly one window of its document
            assert sum(w.doc_id == h.doc_id and w.char_start <= h.char_start and h.char_end <= w.char_end
                       for w in windows) == 1
        for i, a in enumerate(windows):  # windows of one document never overlap
            assert not any(a.doc_id == b.doc_id and a.char_start < b.char_end and b.char_start < a.char_end
                           for b in windows[i + 1:])
        assert [w.chunk_id for w in windows] == [h.chunk_id for h in hits if h.chunk_id in {w.chunk_id for w in windows}]
        again = reading_windows(ix.catalog, ix.search("When do spring tides happen?", k=8), 120)
        spans = {(w.doc_id, w.char_start, w.char_end) for w in windows}
        assert any((w.doc_id, w.char_start, w.char_end) in spans for w in again)  # the same windows recur: KV reuse
        pdf = [w for w in reading_windows(ix.catalog, ix.search("lighthouse log", k=5), 120) if w.page is not None]
        assert pdf and all(w.page <= w.page_end for w in pdf)
        assert reading_windows(ix.catalog, hits, 1)[0].text.strip()  # tiny windows: a sentence each
