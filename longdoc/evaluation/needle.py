"""Passkey (needle-in-a-haystack) over the Paul Graham essays: a haystack of a given length in reader
tokens, cut into passages at sentence ends, with one sentence holding a random pass key inserted at a
depth. Only the passage that holds the needle differs from the plain haystack, so the other passages'
KV is computed once and reused from the KV store across depths, lengths and backends."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from ..retrieval.hit import Hit

NEEDLE = "The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = "There is a pass key hidden in the passages. What is the pass key?"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Haystack:
    passages: list[str]  # in reading order
    tokens: int  # reader tokens over all passages


def essay_sentences(root: Path) -> list[str]:
    text = "\n\n".join(p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.glob("*.txt")))
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def build_haystack(tokenizer, sentences: list[str], tokens: int, passage_tokens: int = 512) -> Haystack:
    """Passages of up to passage_tokens reader tokens, in essay order (repeated if the essays run out),
    until `tokens` are reached. The same arguments always give the same passages."""
    passages: list[str] = []
    current: list[str] = []
    size = total = 0
    i = 0
    while total < tokens:
        sentence = sentences[i % len(sentences)]
        i += 1
        n = len(tokenizer(" " + sentence, add_special_tokens=False)["input_ids"])
        if current and size + n > passage_tokens:
            passages.append(" ".join(current))
            current, size = [], 0
        current.append(sentence)
        size += n
        total += n
    if current:
        passages.append(" ".join(current))
    return Haystack(passages, total)


def haystack_prefix(haystack: Haystack, counts: list[int], tokens: int) -> Haystack:
    """The first passages of `haystack` that reach `tokens` (counts: each passage's reader tokens), so
    every length is a prefix of the longest and shares its stored passage KV."""
    total, n = 0, 0
    while total < tokens and n < len(haystack.passages):
        total += counts[n]
        n += 1
    return Haystack(haystack.passages[:n], total)


def insert_needle(haystack: Haystack, depth: float, key: str) -> tuple[list[str], int]:
    """(passages with the needle inserted, index of the passage holding it). depth 0 puts it at the start
    of the haystack, 1 at the end; it goes in at the sentence end nearest that point."""
    n = len(haystack.passages)
    where = depth * n
    index = min(n - 1, int(where))
    sentences = _SENTENCE_END.split(haystack.passages[index])
    cut = round((where - index) * len(sentences)) if depth < 1 else len(sentences)
    needle = NEEDLE.format(key=key)
    passages = list(haystack.passages)
    passages[index] = " ".join(sentences[:cut] + [needle] + sentences[cut:])
    return passages, index


def passage_hits(passages: list[str], title: str = "essays", path: str = "") -> list[Hit]:
    """Passages as hits in reading order, with char offsets into their concatenation (joined by blank lines)."""
    hits, offset = [], 0
    for i, text in enumerate(passages):
        hits.append(Hit(i, 0, path, title, (), offset, offset + len(text), None, None, text, 0.0, ordinal=i))
        offset += len(text) + 2
    return hits


def pass_key(rng: random.Random) -> str:
    return str(rng.randint(10000, 99999))


def found(answer: str, key: str) -> bool:
    return key in re.sub(r"[\s,]", "", answer)
