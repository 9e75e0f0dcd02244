"""BM25 over chunk text with SQLite FTS5."""
from __future__ import annotations

import re

from ..storage import Catalog
from .filters import Filters

_TOKEN = re.compile(r"\w+", re.UNICODE)


def fts_query(query: str) -> str:
    """Any-term FTS5 query from free text: every word quoted, so operators in user text are inert."""
    terms = dict.fromkeys(t.lower() for t in _TOKEN.findall(query))
    return " OR ".join(f'"{t}"' for t in terms)


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
