"""Reading windows: search finds small chunks, the reader reads larger, sentence-aligned windows round them.

Each section of a document (the whole document when it has none) is cut into a fixed grid of windows:
whole sentences packed greedily up to `words` words. The grid depends only on the section's text, so a
window's text, and so its KV store key, is the same whichever question or chunk led to it: Block-Attention
reuses it. A hit reads the grid windows its chunk overlaps; hits whose windows overlap a better hit's in the
same section are merged into that one (the union of their windows), so no text is read twice."""
from __future__ import annotations

import dataclasses
import re
from bisect import bisect_right

from .hit import Hit

# A sentence ends at . ! ? (optionally closed by a quote or bracket) followed by space, or at a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n")


def sentence_starts(text: str, start: int, end: int) -> list[int]:
    """Offsets in text[start:end] where a sentence begins, start first."""
    starts = [start]
    for m in _SENTENCE_END.finditer(text, start, end):
        if start < m.end() < end:
            starts.append(m.end())
    return starts


def window_grid(text: str, start: int, end: int, words: int) -> list[tuple[int, int]]:
    """text[start:end] as consecutive (start, end) windows of whole sentences, at most `words` words each
    unless one sentence alone is longer."""
    bounds = sentence_starts(text, start, end) + [end]
    grid: list[tuple[int, int]] = []
    w_start, w_words = bounds[0], 0
    for a, b in zip(bounds, bounds[1:]):
        n = len(text[a:b].split())
        if w_words and w_words + n > words:
            grid.append((w_start, a))
            w_start, w_words = a, 0
        w_words += n
    grid.append((w_start, end))
    return grid


def _page(pages: list[tuple[int, int]], char: int) -> int | None:
    for i, (a, b) in enumerate(pages):
        if a <= char < b:
            return i + 1
    return len(pages) if pages and char >= pages[-1][1] else None


def reading_windows(catalog, hits: list[Hit], words: int) -> list[Hit]:
    """Copies of `hits`, best first, each widened to its grid windows (char spans, text and pages follow;
    `focus` keeps the chunk's own span); a hit whose windows overlap a better one's is merged into it."""
    docs: dict[int, tuple[str, list[tuple[int, int]], list[tuple[int, int]]]] = {}
    grids: dict[tuple[int, int], list[tuple[int, int]]] = {}
    out: list[tuple[Hit, tuple[int, int], int, int]] = []  # (hit, section, first window, last window)
    for hit in hits:
        if hit.doc_id not in docs:
            docs[hit.doc_id] = (catalog.document_text(hit.doc_id), catalog.spans(hit.doc_id, "section"),
                                catalog.spans(hit.doc_id, "page"))
        text, sections, pages = docs[hit.doc_id]
        section = next(((a, b) for a, b in sections if a <= hit.char_start < b), (0, len(text)))
        if (hit.doc_id, section[0]) not in grids:
            grids[hit.doc_id, section[0]] = window_grid(text, *section, words)
        grid = grids[hit.doc_id, section[0]]
        starts = [a for a, _ in grid]
        first = max(0, bisect_right(starts, hit.char_start) - 1)
        last = max(first, bisect_right(starts, max(hit.char_start, hit.char_end - 1)) - 1)
        overlapping = [i for i, (kept, kept_section, a, b) in enumerate(out)
                       if kept.doc_id == hit.doc_id and kept_section == section and first <= b and a <= last]
        if not overlapping:
            out.append((hit, section, first, last))
            continue
        for i in overlapping:  # the best overlapping window takes the union; the others merge into it
            first, last = min(first, out[i][2]), max(last, out[i][3])
        out[overlapping[0]] = (out[overlapping[0]][0], section, first, last)
        for i in reversed(overlapping[1:]):
            del out[i]
    widened = []
    for hit, section, first, last in out:
        text, _, pages = docs[hit.doc_id]
        grid = grids[hit.doc_id, section[0]]
        start, end = grid[first][0], grid[last][1]
        page, page_end = (_page(pages, start), _page(pages, max(start, end - 1))) if pages else (hit.page, hit.page_end)
        widened.append(dataclasses.replace(hit, char_start=start, char_end=end, text=text[start:end],
                                           page=page, page_end=page_end, focus=(hit.char_start, hit.char_end)))
    return widened
