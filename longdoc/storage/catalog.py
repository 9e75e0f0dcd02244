"""The SQLite catalog of one index (WAL mode, Python's sqlite3): documents, chunks, spans, vectors."""
from __future__ import annotations

import itertools
import json
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator
from urllib.request import pathname2url

import numpy as np

from ..errors import IndexDamagedError, IndexNotFoundError, StorageError
from ..paths import from_db, shown, to_db
from .files import writing
from .migrations import migrate, schema_version

CATALOG_FILE = "catalog.sqlite"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Database:
    """One connection, and its rows as dicts where that reads better. (sqlite-utils did this before; it
    imports pandas wherever pandas is installed, 0.44 s of a 0.9 s `search --mode bm25`.)"""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def query(self, sql: str, params: Iterable = ()) -> Iterator[dict]:
        cursor = self.conn.execute(sql, list(params))
        names = [c[0] for c in cursor.description]
        for row in cursor:
            yield dict(zip(names, row))

    def close(self) -> None:
        self.conn.close()


class Catalog:
    def __init__(self, db: Database, index_dir: Path, read_only: bool = False):
        self.db = db
        self.index_dir = index_dir
        self.read_only = read_only
        self.schema_version = schema_version(db.conn, index_dir) if read_only else migrate(db.conn)

    @classmethod
    def open(cls, index_dir: str | Path, create: bool = False) -> "Catalog":
        """The catalog of index_dir; read-only (it never writes, and a write raises StorageError) when this
        user cannot write the index folder or the catalog file."""
        index_dir = Path(index_dir)
        path = index_dir / CATALOG_FILE
        if not path.exists():
            if not create:
                raise IndexNotFoundError(f"no longdoc index at {index_dir} (missing {CATALOG_FILE}); "
                                         f"create one with: longdoc index PATH --index {index_dir}")
            with writing(index_dir):
                index_dir.mkdir(parents=True, exist_ok=True)
        else:
            _check_header(path)
        read_only = path.exists() and not (os.access(index_dir, os.W_OK) and os.access(path, os.W_OK))
        try:
            with writing(path):
                db = Database(_read_only(path) if read_only else _writable(path, create))
                return cls(db, index_dir, read_only)
        except sqlite3.DatabaseError as e:
            raise damaged(path, e) from None

    def integrity(self) -> list[str]:
        """SQLite's full integrity check: [] when the catalog is sound, else its findings (at most 10)."""
        try:
            rows = [r[0] for r in self.db.conn.execute("PRAGMA integrity_check(10)")]
        except sqlite3.DatabaseError as e:
            return [str(e)]
        return [] if rows == ["ok"] else rows

    def close(self):
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write; one that changed rows bumps the generation, so vector files can tell they are
        behind (and a write that changed nothing leaves them current)."""
        conn = self.db.conn
        with writing(self.index_dir / CATALOG_FILE):
            conn.execute("BEGIN IMMEDIATE")
            try:
                changes = conn.total_changes
                yield
                if conn.total_changes != changes:
                    conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite has already rolled back after some errors (a full disk)
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _run_write(self) -> Iterator[None]:
        """One small committed write (the runs log)."""
        with writing(self.index_dir / CATALOG_FILE), self.db.conn:
            yield

    # --- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self.db.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        self.db.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation", 0))

    # --- documents ----------------------------------------------------------------------------
    def known_documents(self) -> dict[str, tuple[int, str]]:
        """path -> (doc id, sha256)."""
        return {from_db(p): (i, s) for i, p, s in self.db.conn.execute("SELECT id, path, sha256 FROM documents")}

    def documents(self) -> list[dict]:
        """Every document, its path in printable form (paths.shown)."""
        return [_shown_path(r) for r in self.db.query("SELECT id, path, title, format, bytes, chars, n_chunks, "
                                                      "sha256, indexed_at FROM documents ORDER BY path")]

    def document(self, doc_id: int) -> dict | None:
        rows = list(self.db.query("SELECT * FROM documents WHERE id = ?", [doc_id]))
        return _shown_path(rows[0]) if rows else None

    def document_text(self, doc_id: int) -> str:
        row = self.db.conn.execute("SELECT text FROM document_texts WHERE doc_id = ?", (doc_id,)).fetchone()
        return row[0] if row else ""

    def spans(self, doc_id: int, kind: str) -> list[tuple[int, int]]:
        """The (char_start, char_end) of a document's sections or pages, in order."""
        return [tuple(r) for r in self.db.conn.execute(
            "SELECT char_start, char_end FROM spans WHERE doc_id = ? AND kind = ? ORDER BY ordinal", (doc_id, kind))]

    def put_document(self, doc, sha256: str, stat, n_chunks: int) -> int:
        """Insert (or replace) one document, its text and spans; its chunks follow with put_chunks, in the
        same transaction(). Returns its id."""
        conn = self.db.conn
        conn.execute("DELETE FROM documents WHERE path = ?", (to_db(doc.path),))
        cur = conn.execute(
            "INSERT INTO documents(path, sha256, title, format, encoding, mtime, bytes, chars, n_chunks, indexed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (to_db(doc.path), sha256, shown(doc.title), doc.format, doc.encoding, stat.st_mtime, stat.st_size,
             len(doc.text), n_chunks, now_iso()),
        )
        doc_id = cur.lastrowid
        conn.execute("INSERT INTO document_texts(doc_id, text) VALUES (?, ?)", (doc_id, doc.text))
        spans = [(doc_id, "section", i, s.char_start, s.char_end, json.dumps(list(s.path))) for i, s in enumerate(doc.sections)]
        spans += [(doc_id, "page", i + 1, s, e, None) for i, (s, e) in enumerate(doc.pages)]
        conn.executemany("INSERT INTO spans(doc_id, kind, ordinal, char_start, char_end, label) VALUES (?, ?, ?, ?, ?, ?)", spans)
        return doc_id

    def put_chunks(self, doc_id: int, chunks, dense: np.ndarray, heads: np.ndarray | None,
                   dtype: str = "float16") -> None:
        """Insert chunks of a document with their vectors (heads None: an index without head vectors),
        stored as `dtype` (the manifest's vector_dtype; vectors() tells them apart by size). Call inside
        the transaction() of put_document."""
        conn = self.db.conn
        dense = np.ascontiguousarray(dense, dtype)
        heads = np.ascontiguousarray(heads, dtype) if heads is not None else itertools.repeat(np.zeros(0, dtype))
        for chunk, d, h in zip(chunks, dense, heads):
            cid = conn.execute(
                "INSERT INTO chunks(doc_id, ordinal, text, char_start, char_end, token_count, section, page_start, page_end) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (doc_id, chunk.ordinal, chunk.text, chunk.char_start, chunk.char_end, chunk.token_count,
                 json.dumps(list(chunk.section)), chunk.page_start, chunk.page_end),
            ).lastrowid
            conn.execute("INSERT INTO vectors(chunk_id, dense, heads) VALUES (?, ?, ?)", (cid, d.tobytes(), h.tobytes()))

    def remove_document(self, path: str) -> bool:
        """Delete a document and (by cascade) its text, chunks, spans and vectors. Call inside transaction()."""
        return self.db.conn.execute("DELETE FROM documents WHERE path = ?", (to_db(path),)).rowcount > 0

    # --- chunks and vectors -------------------------------------------------------------------
    def chunks(self, ids: Iterable[int] | None = None, doc_id: int | None = None) -> list[dict]:
        sql = "SELECT c.*, d.path, d.title FROM chunks c JOIN documents d ON d.id = c.doc_id"
        if doc_id is not None:
            rows = self.db.query(sql + " WHERE c.doc_id = ? ORDER BY c.ordinal", [doc_id])
            return [_decode_chunk(r) for r in rows]
        ids = list(ids or [])
        by_id = {}
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            part = ids[start:start + 900]
            for r in self.db.query(sql + f" WHERE c.id IN ({','.join('?' * len(part))})", part):
                by_id[r["id"]] = _decode_chunk(r)
        return [by_id[i] for i in ids if i in by_id]

    def doc_ids_of(self, ids: list[int]) -> dict[int, int]:
        """chunk id -> document id, without reading the chunks' text."""
        out = {}
        for start in range(0, len(ids), 900):
            part = ids[start:start + 900]
            out.update(self.db.conn.execute(f"SELECT id, doc_id FROM chunks WHERE id IN ({','.join('?' * len(part))})", part))
        return out

    def chunk_ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self.db.conn.execute("SELECT id FROM chunks ORDER BY id")), np.int64)

    def chunk_texts(self, ids: np.ndarray | None = None) -> Iterator[tuple[int, str]]:
        """(chunk id, text) for these chunks (None: all), in id order."""
        if ids is None:
            yield from self.db.conn.execute("SELECT id, text FROM chunks ORDER BY id")
            return
        ids = np.sort(ids)
        for start in range(0, len(ids), 900):
            part = [int(i) for i in ids[start:start + 900]]
            yield from self.db.conn.execute(
                f"SELECT id, text FROM chunks WHERE id IN ({','.join('?' * len(part))}) ORDER BY id", part)

    def vector_ids(self) -> np.ndarray:
        return np.fromiter((r[0] for r in self.db.conn.execute("SELECT chunk_id FROM vectors ORDER BY chunk_id")), np.int64)

    def vectors(self, ids: np.ndarray, dim: int, heads: int, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(dense (n, dim), heads (n, heads, head_dim)) for these chunk ids; dim or heads 0 skips that part."""
        dense = np.zeros((len(ids), dim), np.float32)
        head = np.zeros((len(ids), heads, head_dim), np.float32)
        pos = {int(i): n for n, i in enumerate(ids)}
        for start in range(0, len(ids), 900):
            part = [int(i) for i in ids[start:start + 900]]
            for cid, d, h in self.db.conn.execute(
                    f"SELECT chunk_id, dense, heads FROM vectors WHERE chunk_id IN ({','.join('?' * len(part))})", part):
                if dim:
                    dense[pos[cid]] = _decode(d, dim)
                if heads:
                    head[pos[cid]] = _decode(h, heads * head_dim).reshape(heads, head_dim)
        return dense, head

    def head_sample(self, n: int, heads: int, head_dim: int, seed: int = 0) -> np.ndarray:
        """A random sample of stored head vectors, (n', H, d), for the head weights."""
        ids = self.vector_ids()
        if len(ids) > n:
            ids = np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))
        return self.vectors(ids, 0, heads, head_dim)[1]  # dim 0: skip the dense vectors

    def counts(self) -> dict:
        c = self.db.conn
        return {
            "documents": c.execute("SELECT COUNT(*) FROM documents").fetchone()[0],
            "chunks": c.execute("SELECT COUNT(*) FROM chunks").fetchone()[0],
            "tokens": c.execute("SELECT COALESCE(SUM(token_count), 0) FROM chunks").fetchone()[0],
            "source_bytes": c.execute("SELECT COALESCE(SUM(bytes), 0) FROM documents").fetchone()[0],
        }

    # --- runs -------------------------------------------------------------------------------------
    def start_run(self, roots: list[str]) -> int:
        with self._run_write():
            return self.db.conn.execute("INSERT INTO runs(started_at, status, roots) VALUES (?, 'running', ?)",
                                        (now_iso(), json.dumps(roots))).lastrowid

    def interrupt_runs(self) -> int:
        """Mark runs still 'running' as interrupted; call holding the write lock (no run is alive then)."""
        with self._run_write():
            return self.db.conn.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'").rowcount

    def record_skip(self, run_id: int, path: str, reason: str) -> None:
        with self._run_write():
            self.db.conn.execute("INSERT INTO skipped_files(run_id, path, reason) VALUES (?, ?, ?)", (run_id, to_db(path), reason))

    def finish_run(self, run_id: int, report: dict, status: str = "done") -> None:
        cols = ["added", "updated", "unchanged", "removed", "skipped", "chunks_embedded", "seconds"]
        with self._run_write():
            self.db.conn.execute(
                f"UPDATE runs SET finished_at = ?, status = ?, {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
                (now_iso(), status, *[report[c] for c in cols], run_id))

    def last_run(self) -> dict | None:
        rows = list(self.db.query("SELECT * FROM runs ORDER BY id DESC LIMIT 1"))
        return rows[0] if rows else None


def _decode(blob: bytes, n: int) -> np.ndarray:
    """A stored vector of n values: float16 in indexes made since vector_dtype, float32 before."""
    return np.frombuffer(blob, np.float16 if len(blob) == 2 * n else np.float32)


def _writable(path: Path, create: bool) -> sqlite3.Connection:
    # The service reads one catalog from its request threads; SQLite serialises the calls itself.
    conn = sqlite3.connect(str(path), check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")  # readers wait out a writer's commit
    if create or conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        conn.execute("PRAGMA journal_mode = wal")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable at checkpoints, never corrupt
    return conn


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write. WAL needs its -shm file: where that cannot be created (a read-only
    folder), the catalog is opened as immutable, which is right while nobody writes it meanwhile."""
    uri = f"file:{pathname2url(str(path.resolve()))}"
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:  # immutable would read past its commits, silently
            raise StorageError(f"cannot read {path} here: its last commits are still in {wal.name}, and this "
                               f"user cannot write the folder to read them; run any longdoc command on it "
                               f"once with write access", "read-only folder", False) from None
        conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_header(path: Path) -> None:
    """A catalog emptied or overwritten is refused, not taken for a new empty index."""
    with open(path, "rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        raise damaged(path, "0 bytes" if not head else "not a SQLite database")


def damaged(path: Path, cause) -> IndexDamagedError:
    index = path.parent
    return IndexDamagedError(f"{path} is damaged ({cause}): the catalog holds the index's documents and cannot be "
                             f"repaired in place; move {index} aside and run longdoc index on your documents "
                             f"again (longdoc doctor --index {index} checks every stored file)")


def _decode_chunk(row: dict) -> dict:
    row["section"] = tuple(json.loads(row["section"]))
    return _shown_path(row)


def _shown_path(row: dict) -> dict:
    row["path"] = shown(row["path"])
    return row

