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

    def as_dict(self) -> dict:
        d = asdict(self)
        d["section"] = list(self.section)
        return d


def hits_from_rows(rows: list[dict], scored: list[tuple[int, float]], mode: str) -> list[Hit]:
    by_id = {r["id"]: r for r in rows}
    hits = []
    for rank, (cid, score) in enumerate(scored, 1):
        r = by_id.get(cid)
        if r is None:  # deleted since the vectors were synced
            continue
        hits.append(Hit(cid, r["doc_id"], r["path"], r["title"], r["section"], r["char_start"], r["char_end"],
                        r["page_start"], r["page_end"], r["text"], float(score), {mode: rank}))
    return hits
