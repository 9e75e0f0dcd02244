"""Search filters (documents, path glob, section), as SQL over chunks c JOIN documents d."""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..errors import LongdocError
from ..storage import Catalog


@dataclass(frozen=True)
class Filters:
    documents: tuple[str, ...] = ()  # exact document paths (as indexed)
    path_glob: str | None = None  # SQLite GLOB on the path, e.g. "*/library/*.rst.txt"
    section: str | None = None  # case-insensitive substring of any heading on the section path

    @classmethod
    def from_dict(cls, given: dict) -> "Filters":
        """From a dict of the fields (a list for documents), refusing any other key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise LongdocError(f"unknown filter {', '.join(map(repr, unknown))}; choose from {', '.join(sorted(known))}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})

    def __bool__(self) -> bool:
        return bool(self.documents or self.path_glob or self.section)

    def where(self) -> tuple[str, list]:
        clauses, params = [], []
        if self.documents:
            clauses.append(f"d.path IN ({','.join('?' * len(self.documents))})")
            params += list(self.documents)
        if self.path_glob:
            clauses.append("d.path GLOB ?")
            params.append(self.path_glob)
        if self.section:
            clauses.append("lower(c.section) LIKE ?")
            params.append(f"%{self.section.lower()}%")
        return " AND ".join(clauses) or "1", params

    def chunk_ids(self, catalog: Catalog) -> np.ndarray:
        where, params = self.where()
        rows = catalog.db.conn.execute(
            f"SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}", params)
        return np.fromiter((r[0] for r in rows), np.int64)
