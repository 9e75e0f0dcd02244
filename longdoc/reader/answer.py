"""What `ask` returns: the answer text, the passages it drew on, and where the time went."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Citation:
    number: int  # the [n] shown with the answer: 1 = the passage the answer attended to most
    chunk_id: int
    doc_id: int
    path: str
    title: str
    section: tuple[str, ...]
    char_start: int
    char_end: int
    page: int | None
    page_end: int | None
    text: str
    attention: float  # this passage's share of the attention the answer tokens paid to all passages
    marked: bool  # shown as [n] in the answer text
    retrieval_rank: int


@dataclass
class Answer:
    question: str
    text: str  # the reader's answer, followed by the [n] markers of the passages it drew on
    raw: str  # the reader's answer alone
    citations: list[Citation]
    attention: str  # the backend that produced it: full | block
    abstained: bool = False
    timings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        for c in d["citations"]:
            c["section"] = list(c["section"])
        return d
