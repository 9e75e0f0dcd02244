"""BM25 over chunk text (storage/text_index.py: tantivy), and over a few thousand texts in memory."""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np

from ..storage.text_index import TextIndex

_TOKEN = re.compile(r"\w+", re.UNICODE)
# Words that match nearly every chunk: ORing them in makes the engine score most of the index for little
# gain (with FTS5, dropping them took BM25 at 1M chunks from 801 to 153 ms).
STOPWORDS = frozenset("""a about above after again all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours out over own same she should so some such than that the their theirs them then
there these they this those through to too under until up very was we were what when where which while who whom
why will with would you your yours""".split())


def query_terms(query: str) -> list[str]:
    """The query's words, lower-cased, once each; stopwords dropped unless nothing else is left. Words
    only, so operators in user text are inert."""
    terms = list(dict.fromkeys(t.lower() for t in _TOKEN.findall(query)))
    return [t for t in terms if t not in STOPWORDS] or terms


def bm25_search(text: TextIndex, query: str, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
    """The top k chunks by BM25, (chunk id, score); `allowed`: only these chunk ids (filters)."""
    return text.search(query_terms(query), k, allowed)


def bm25_scores(query: str, texts: list[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Each text's BM25 score for the query's terms, with the texts themselves as the collection (a
    document's sentences, for the scan): no index is worth building for one question over them."""
    terms = query_terms(query)
    bags = [Counter(t.lower() for t in _TOKEN.findall(text)) for text in texts]
    lengths = [sum(bag.values()) for bag in bags]
    mean = sum(lengths) / len(lengths) if lengths else 0.0
    df = Counter(t for bag in bags for t in terms if t in bag)
    idf = {t: math.log(1 + (len(texts) - n + 0.5) / (n + 0.5)) for t, n in df.items()}
    return [float(sum(idf[t] * bag[t] * (k1 + 1) / (bag[t] + k1 * (1 - b + b * n / (mean or 1))) for t in idf if t in bag))
            for bag, n in zip(bags, lengths)]
