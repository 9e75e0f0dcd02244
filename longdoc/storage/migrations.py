"""Versioned schema migrations for the catalog, applied in order; PRAGMA user_version records the last."""
from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: documents, their text, chunks, spans, vectors, FTS5 over chunk text, meta and runs.
    """
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        path TEXT NOT NULL UNIQUE,
        sha256 TEXT NOT NULL,
        title TEXT,
        format TEXT NOT NULL,
        encoding TEXT,
        mtime REAL,
        bytes INTEGER,
        chars INTEGER,
        n_chunks INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'indexed',
        indexed_at TEXT NOT NULL
    );
    CREATE TABLE document_texts (
        doc_id INTEGER PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
        text TEXT NOT NULL
    );
    -- AUTOINCREMENT: a chunk id is never reused, so FAISS ids stay unambiguous across re-indexing.
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        char_start INTEGER NOT NULL,
        char_end INTEGER NOT NULL,
        token_count INTEGER NOT NULL,
        section TEXT NOT NULL DEFAULT '[]',
        page_start INTEGER,
        page_end INTEGER
    );
    CREATE INDEX chunks_doc ON chunks(doc_id, ordinal);
    CREATE TABLE spans (
        id INTEGER PRIMARY KEY,
        doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        ordinal INTEGER NOT NULL,
        char_start INTEGER NOT NULL,
        char_end INTEGER NOT NULL,
        label TEXT
    );
    CREATE INDEX spans_doc ON spans(doc_id, kind, ordinal);
    -- The source of truth for vectors: the FAISS files are rebuilt or patched from these.
    CREATE TABLE vectors (
        chunk_id INTEGER PRIMARY KEY REFERENCES chunks(id) ON DELETE CASCADE,
        dense BLOB NOT NULL,
        heads BLOB NOT NULL
    );
    CREATE VIRTUAL TABLE chunks_fts USING fts5(text, content='chunks', content_rowid='id', tokenize='porter unicode61');
    CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        roots TEXT NOT NULL,
        added INTEGER DEFAULT 0, updated INTEGER DEFAULT 0, unchanged INTEGER DEFAULT 0,
        removed INTEGER DEFAULT 0, skipped INTEGER DEFAULT 0, chunks_embedded INTEGER DEFAULT 0,
        seconds REAL
    );
    CREATE TABLE skipped_files (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    INSERT INTO meta(key, value) VALUES ('generation', '0');
    """,
    # 2: BM25 moves to tantivy (storage/text_index.py), built from the chunks on the next write.
    """
    DROP TRIGGER chunks_fts_insert;
    DROP TRIGGER chunks_fts_delete;
    DROP TABLE chunks_fts;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection, index_dir=None) -> int:
    """The catalog's schema version, refused when newer than this longdoc's; with index_dir (a read-only
    catalog, which cannot be migrated) also refused when older."""
    from ..errors import LongdocError

    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise LongdocError(f"catalog schema v{version} is newer than this longdoc (v{SCHEMA_VERSION}); upgrade longdoc")
    if index_dir is not None and version < SCHEMA_VERSION:
        raise LongdocError(f"index {index_dir} is read-only here and was written by an older longdoc (schema "
                           f"v{version}, this one reads v{SCHEMA_VERSION}); open it once with write access to upgrade it")
    return version


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction. Returns the schema version."""
    for number in range(schema_version(conn) + 1, SCHEMA_VERSION + 1):
        # executescript commits first; wrap the migration and its version bump in one transaction.
        conn.executescript(f"BEGIN; {MIGRATIONS[number - 1]}; PRAGMA user_version = {number}; COMMIT;")
    return SCHEMA_VERSION
