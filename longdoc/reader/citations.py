"""Citations from the reader's own attention: each passage is credited with the attention mass that the
query rows producing the answer tokens paid to its tokens (summed over layers and heads)."""
from __future__ import annotations

import torch

from .answer import Citation


def passage_shares(mass: torch.Tensor, spans: list[tuple[int, int]]) -> list[float]:
    """Each passage's share of the attention paid to all passages (the prompt's other tokens excluded)."""
    per = [float(mass[a:b].sum()) for a, b in spans]  # a slice past the end stops at the end
    total = sum(per)
    return [p / total if total > 0 else 0.0 for p in per]


def cite(hits, shares: list[float], ratio: float) -> list[Citation]:
    """Citations, best first, numbered 1.. in that order; passages holding at least `ratio` of the top
    passage's share are marked in the answer."""
    order = sorted(range(len(hits)), key=lambda i: (-shares[i], i))
    top = shares[order[0]] if order else 0.0
    out = []
    for number, i in enumerate(order, 1):
        h = hits[i]
        out.append(Citation(number, h.chunk_id, h.doc_id, h.path, h.title, tuple(h.section), h.char_start,
                            h.char_end, h.page, h.page_end, h.text, shares[i],
                            top > 0 and shares[i] >= ratio * top, i + 1))
    return out


def with_markers(text: str, citations: list[Citation]) -> str:
    marks = " ".join(f"[{c.number}]" for c in citations if c.marked)
    return f"{text} {marks}".strip() if marks else text
