"""Token-bounded, sentence-aware, heading-aware chunking with exact char offsets.

A section (from the headings) is cut into units: sentences, or paragraph/line ends. Units are
packed greedily up to `tokens` tokens of the embedder's tokenizer; the next chunk starts with the
previous chunk's trailing units up to `overlap` tokens. A unit longer than a chunk is cut at token
boundaries. Chunks never cross sections, and each is text[char_start:char_end] exactly.
"""
from __future__ import annotations

import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from ..config import ChunkSettings
from .document import LoadedDocument

# A unit ends after sentence punctuation (plus closing quotes/brackets) followed by space, or at a
# blank line, or at a newline that starts a list item or heading-ish line.
_UNIT_END = re.compile(r"""[.!?…]['"”’)\]]*\s+|\n\s*\n\s*|\n(?=\s*(?:[-*+•]|\d+[.)])\s)""")


_TOKENIZE_BATCH = 1024  # units tokenised together


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    char_start: int
    char_end: int
    token_count: int
    section: tuple[str, ...]
    page_start: int | None = None
    page_end: int | None = None


class Chunks(Sequence):
    """A document's chunks, held as offsets into its text and made into `Chunk`s when read. As objects
    each with its own copy of its text, a 64 MiB book's 300K chunks took ~390 MB, and as much again
    to send them from the parse child; as columns of integers they take ~15 MB beside the text, which
    is shared (pickled once with the document)."""

    _COLUMNS = ("char_start", "char_end", "token_count", "section", "page_start", "page_end")

    def __init__(self, text: str, sections: list[tuple[str, ...]]):
        self.text, self.sections = text, sections  # sections: the paths the `section` column indexes
        self._columns = {name: array("q") for name in self._COLUMNS}

    def append(self, char_start: int, char_end: int, token_count: int, section: int,
               page_start: int | None, page_end: int | None) -> None:
        for name, value in zip(self._COLUMNS, (char_start, char_end, token_count, section,
                                               -1 if page_start is None else page_start,
                                               -1 if page_end is None else page_end)):
            self._columns[name].append(value)

    def __len__(self) -> int:
        return len(self._columns["char_start"])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = i + len(self) if i < 0 else i
        if not 0 <= i < len(self):
            raise IndexError("chunk index out of range")
        start, end, tokens, section, page_start, page_end = (self._columns[name][i] for name in self._COLUMNS)
        return Chunk(ordinal=i, text=self.text[start:end], char_start=start, char_end=end, token_count=tokens,
                     section=self.sections[section], page_start=None if page_start < 0 else page_start,
                     page_end=None if page_end < 0 else page_end)


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Trimmed (start, end) spans of sentence-like units inside text[start:end]."""
    spans, pos = [], start
    for m in _UNIT_END.finditer(text, start, end):
        spans.append((pos, m.start() + len(m.group(0).rstrip())))
        pos = m.end()
    spans.append((pos, end))
    out = []
    for s, e in spans:
        piece = text[s:e]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if e - trail > s + lead:
            out.append((s + lead, e - trail))
    return out


class Chunker:
    def __init__(self, tokenizer, settings: ChunkSettings):
        self.tokenizer = tokenizer
        self.tokens = settings.tokens
        self.overlap = settings.overlap

    def _sized_units(self, text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """(start, end, n_tokens) per unit, over-long units cut at token boundaries. Tokenised a batch at a
        time: every token's offsets at once took ~80 bytes per character of a file (1.6 GB for 20 MB)."""
        out: list[tuple[int, int, int]] = []
        for i in range(0, len(spans), _TOKENIZE_BATCH):
            batch = spans[i:i + _TOKENIZE_BATCH]
            # verbose=False: units longer than the model's limit are expected here (they get split).
            enc = self.tokenizer([text[s:e] for s, e in batch], add_special_tokens=False, return_offsets_mapping=True,
                                 return_attention_mask=False, return_token_type_ids=False, verbose=False)
            for (s, e), offs in zip(batch, enc["offset_mapping"]):
                out.extend(self._split_long(s, offs) if len(offs) > self.tokens else [(s, e, len(offs))])
        return out

    def _split_long(self, start: int, offsets: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
        """Cut one over-long unit at token boundaries into (start, end, n_tokens) pieces."""
        pieces, step = [], self.tokens - self.overlap
        for i in range(0, len(offsets), step):
            window = offsets[i:i + self.tokens]
            pieces.append((start + window[0][0], start + window[-1][1], len(window)))
            if i + self.tokens >= len(offsets):
                break
        return pieces

    def chunk(self, doc: LoadedDocument) -> Chunks:
        text = doc.text
        chunks = Chunks(text, [sec.path for sec in doc.sections])
        for n, sec in enumerate(doc.sections):
            units = self._sized_units(text, sentence_spans(text, sec.char_start, sec.char_end))
            for first, last in self._pack(units):
                start, end = units[first][0], units[last][1]
                chunks.append(start, end, sum(u[2] for u in units[first:last + 1]), n,
                              doc.page_at(start), doc.page_at(end - 1))
        return chunks

    def _pack(self, units: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
        """Greedy packing into (first, last) unit index ranges with sentence-level overlap."""
        ranges, first = [], 0
        while first < len(units):
            last, total = first, units[first][2]
            while last + 1 < len(units) and total + units[last + 1][2] <= self.tokens:
                last += 1
                total += units[last][2]
            ranges.append((first, last))
            if last + 1 >= len(units):
                break
            # Start the next chunk with trailing units worth at most `overlap` tokens, always moving on,
            # and only if the carried units still leave room for the next new unit.
            nxt, carried, following = last + 1, 0, units[last + 1][2]
            while (nxt - 1 > first and carried + units[nxt - 1][2] <= self.overlap
                   and carried + units[nxt - 1][2] + following <= self.tokens):
                nxt -= 1
                carried += units[nxt][2]
            first = nxt
        return ranges
