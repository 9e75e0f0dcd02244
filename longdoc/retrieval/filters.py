"""Search filters (documents, path glob, section), as SQL over chunks c JOIN documents d."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import LongdocError
from ..storage import Catalog


_FIELDS = ("documents", "path_glob", "section")


@dataclass(frozen=True)
class Filters:
    documents: tuple[str, ...] = ()  # exact document paths (as indexed)
    path_glob: str | None = None  # SQLite GLOB on the path, e.g. "*/library/*.rst.txt"
    section: str | None = None  # case-insensitive substring of any heading on the section path

    @classmethod
    def from_dict(cls, given: dict) -> "Filters":
        """From a dict of the fields (a list of paths for documents), refusing any other key or type."""
        if not isinstance(given, dict):
            raise LongdocError(f"filters must be an object of {', '.join(_FIELDS)}, not {type(given).__name__}")
        unknown = sorted(set(given) - set(_FIELDS))
        if unknown:
            raise LongdocError(f"unknown filter {', '.join(map(repr, unknown))}; choose from {', '.join(_FIELDS)}")
        documents = given.get("documents") or []
        if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
            raise LongdocError("filter documents must be a list of document paths")
        for name in ("path_glob", "section"):
            if given.get(name) is not None and not isinstance(given[name], str):
                raise LongdocError(f"filter {name} must be a string")
        return cls(documents=tuple(documents), path_glob=given.get("path_glob"), section=given.get("section"))

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
