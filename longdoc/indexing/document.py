"""What a loader returns: the document text plus the spans that map it back to its source."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A heading-delimited stretch of text: text[char_start:char_end], under `path` (outermost first)."""

    char_start: int
    char_end: int
    path: tuple[str, ...]


@dataclass
class LoadedDocument:
    path: str
    format: str  # txt | md | rst | html | pdf
    text: str
    title: str
    sections: list[Section] = field(default_factory=list)
    # pdf only: pages[i] = (char_start, char_end) of page i+1 in `text`
    pages: list[tuple[int, int]] = field(default_factory=list)
    encoding: str = "utf-8"

    def page_at(self, char: int) -> int | None:
        """1-based page number holding text offset `char`, or None for formats without pages."""
        for i, (start, end) in enumerate(self.pages):
            if start <= char < end:
                return i + 1
        return len(self.pages) if self.pages and char >= self.pages[-1][1] else None


def sections_from_headings(text: str, headings: list[tuple[int, int, str]]) -> list[Section]:
    """Turn (char_offset, level, title) headings into contiguous sections that cover all of `text`.

    Each section runs from its heading to the next heading; text before the first heading gets
    the empty path. The path is the stack of enclosing headings.
    """
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    starts = [h[0] for h in headings] + [len(text)]
    if not headings or headings[0][0] > 0:
        first_end = starts[0]
        if text[:first_end].strip():
            sections.append(Section(0, first_end, ()))
    for (offset, level, title), end in zip(headings, starts[1:]):
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title.strip()))
        sections.append(Section(offset, end, tuple(t for _, t in stack)))
    if not sections and text.strip():
        sections.append(Section(0, len(text), ()))
    return sections
