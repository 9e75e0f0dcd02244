"""BM25 over chunk text with SQLite FTS5."""
from __future__ import annotations

import re

from ..storage import Catalog
from .filters import Filters

_TOKEN = re.compile(r"\w+", re.UNICODE)
# Words that match nearly every chunk: ORing them in makes FTS5 rank most of the index for little
# gain (bench/search.py: BM25 at 1M chunks went from 801 ms to the figure in the README).
STOPWORDS = frozenset("""a about above after again all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours out over own same she should so some such than that the their theirs them then
there these they this those through to too under until up very was we were what when where which while who whom
why will with would you your yours""".split())


def fts_query(query: str) -> str:
    """Any-term FTS5 query from free text: every word quoted, so operators in user text are inert.
    Stopwords are dropped unless the query has nothing else."""
    terms = list(dict.fromkeys(t.lower() for t in _TOKEN.findall(query)))
    content = [t for t in terms if t not in STOPWORDS]
    return " OR ".join(f'"{t}"' for t in (content or terms))


def bm25_search(catalog: Catalog, query: str, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
    match = fts_query(query)
    if not match:
        return []
    if filters:
        where, params = filters.where()
        sql = ("SELECT f.rowid, bm25(chunks_fts) AS s FROM chunks_fts f JOIN chunks c ON c.id = f.rowid "
               f"JOIN documents d ON d.id = c.doc_id WHERE chunks_fts MATCH ? AND {where} ORDER BY s LIMIT ?")
        rows = catalog.db.conn.execute(sql, [match, *params, k]).fetchall()
    else:
        rows = catalog.db.conn.execute(
            "SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?",
            (match, k)).fetchall()
    return [(int(cid), -float(s)) for cid, s in rows]  # FTS5's bm25() is lower-is-better
