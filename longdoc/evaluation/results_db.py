"""The eval runner's results file: one SQLite file, one row per (dataset, task, mode, attention, k,
question), committed as each is scored, so a killed run loses at most the answer in flight and a
re-run skips what is done. Each invocation is recorded in `runs` (command, versions, hardware,
commit, config); every row names the run that scored it."""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import LongdocError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT,
                                 record TEXT NOT NULL, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (dataset TEXT PRIMARY KEY, run_id INTEGER NOT NULL, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    dataset TEXT NOT NULL, task TEXT NOT NULL, mode TEXT NOT NULL, attention TEXT NOT NULL, k INTEGER NOT NULL,
    qid TEXT NOT NULL, run_id INTEGER NOT NULL, metrics TEXT NOT NULL, detail TEXT NOT NULL,
    PRIMARY KEY (dataset, task, mode, attention, k, qid));
"""


@dataclass(frozen=True)
class Cell:
    """One point of the grid: a task ("retrieval", "qa" or "needle") over a dataset with a mode, an
    attention backend and a k ("-" and 0 where they do not apply)."""
    dataset: str
    task: str
    mode: str = "-"
    attention: str = "-"
    k: int = 0


class ResultsDB:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise LongdocError(f"{self.path}: not a longdoc results file ({e})") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- the run ---------------------------------------------------------------------------------
    def claim(self, fingerprints: list[str], described: str) -> None:
        """Bind the file to one configuration: results scored under other settings would not compare. A new
        file takes the first fingerprint; an existing one must hold any of them (EvalConfig.fingerprints)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
        if row is None:
            with self.db:
                self.db.execute("INSERT INTO meta VALUES ('fingerprint', ?), ('settings', ?)", (fingerprints[0], described))
        elif row[0] not in fingerprints:
            raise LongdocError(f"{self.path} holds results made with other settings, seed or retrieval cut-offs "
                               f"({self.meta('settings')}); write to a new results file, or delete this one")

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def start_run(self, record: dict, config: dict) -> int:
        with self.db:
            cur = self.db.execute("INSERT INTO runs (started, record, config) VALUES (?, ?, ?)",
                                  (_now(), json.dumps(record), json.dumps(config, default=str)))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int) -> None:
        with self.db:
            self.db.execute("UPDATE runs SET finished=? WHERE id=?", (_now(), run_id))

    def runs(self) -> list[dict]:
        rows = self.db.execute("SELECT id, started, finished, record, config FROM runs ORDER BY id").fetchall()
        return [{"id": i, "started": s, "finished": f, **json.loads(r), "config": json.loads(c)}
                for i, s, f, r, c in rows]

    def set_dataset_info(self, dataset: str, run_id: int, info: dict) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO datasets VALUES (?, ?, ?)", (dataset, run_id, json.dumps(info)))

    def dataset_info(self) -> dict[str, dict]:
        return {d: json.loads(i) for d, i in self.db.execute("SELECT dataset, info FROM datasets")}

    # --- results ---------------------------------------------------------------------------------
    def done(self, cell: Cell) -> set[str]:
        rows = self.db.execute("SELECT qid FROM results WHERE dataset=? AND task=? AND mode=? AND attention=? AND k=?",
                               (cell.dataset, cell.task, cell.mode, cell.attention, cell.k))
        return {r[0] for r in rows}

    def add(self, cell: Cell, qid: str, run_id: int, metrics: dict, detail: dict) -> None:
        """Store one scored question, committed at once. A question already stored is kept as it is."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (cell.dataset, cell.task, cell.mode, cell.attention, cell.k, qid, run_id,
                             json.dumps(metrics), json.dumps(detail)))

    def cells(self) -> list[Cell]:
        # In the order they were first scored, which is the config's order: the first is the baseline.
        rows = self.db.execute("SELECT dataset, task, mode, attention, k FROM results "
                               "GROUP BY dataset, task, mode, attention, k ORDER BY MIN(rowid)")
        return [Cell(*r) for r in rows]

    def rows(self, cell: Cell) -> dict[str, dict]:
        """qid -> {"metrics": ..., "detail": ...} for one cell."""
        rows = self.db.execute("SELECT qid, metrics, detail FROM results WHERE dataset=? AND task=? AND mode=? "
                               "AND attention=? AND k=? ORDER BY qid",
                               (cell.dataset, cell.task, cell.mode, cell.attention, cell.k))
        return {q: {"metrics": json.loads(m), "detail": json.loads(d)} for q, m, d in rows}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
