"""A search result: the chunk, where it sits in its document, and why it came back."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Hit:
    chunk_id: int
    doc_id: int
    path: str
    title: str
    section: tuple[str, ...]
    char_start: int
    char_end: int
    page: int | None  # first page the chunk is on (pdf), else None
    page_end: int | None
    text: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)  # mode -> 1-based rank that produced this hit
    ordinal: int = 0  # the chunk's position in its document
    scores: dict[str, float] = field(default_factory=dict)  # mode -> that retriever's own score (cosine, bm25)
    # For a hit widened to its reading window: the (start, end) chars of the chunk that search matched.
    focus: tuple[int, int] | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["section"] = list(self.section)
        return d
