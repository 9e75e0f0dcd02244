"""Which BM25 engine can answer at a million chunks (issue 17): SQLite FTS5 (longdoc's now, the baseline,
measured in the same run), tantivy (Rust, block-max WAND, incremental adds and deletes) and bm25s (scipy
sparse matrices, rebuilt on every change).

"tantivy" is longdoc's TextIndex over a real catalog. The texts are the 49 essays' real chunks, replicated up to each size as bench/search.py does (so every
posting list is long: a hard case for top-k). Each engine gets the same query terms (longdoc's: words,
stopwords dropped) and returns 50 ids, the depth hybrid fuses. Reported: build seconds, p50/p95 query ms,
bytes per chunk on disk, the seconds to absorb a 1% change (1% deleted, 1% added), and, at the essays'
own size, how much each engine's top 10 agrees with FTS5's (they share BM25 but not tokenisers).

python bench/bm25_engines.py [--sizes 10000,100000,1000000]"""
from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402
from search import QUERIES, build_catalog, percentiles  # noqa: E402

from longdoc.retrieval.bm25 import STOPWORDS, bm25_search  # noqa: E402
from longdoc.retrieval.bm25 import query_terms as terms  # noqa: E402
from longdoc.storage.text_index import TextIndex  # noqa: E402

DEPTH = 50


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Fts5:
    """SQLite FTS5 with the porter tokenizer: longdoc's engine before, the baseline."""
    name = "fts5"

    def build(self, folder: Path, texts: list[str], n: int):
        folder.mkdir(parents=True)
        self.path = folder / "fts.sqlite"
        self.conn = sqlite3.connect(self.path)
        self.conn.execute("CREATE VIRTUAL TABLE f USING fts5(text, tokenize='porter unicode61')")
        with self.conn:
            self.conn.executemany("INSERT INTO f(rowid, text) VALUES (?, ?)",
                                  ((i + 1, texts[i % len(texts)]) for i in range(n)))
        self.bytes = self.path.stat().st_size

    def search(self, query: str) -> list[int]:
        match = " OR ".join(f'"{t}"' for t in terms(query))
        return [r[0] for r in self.conn.execute("SELECT rowid FROM f WHERE f MATCH ? ORDER BY bm25(f) LIMIT ?",
                                                (match, DEPTH))]

    def change(self, texts: list[str], n: int, share: float) -> None:
        m = int(n * share)
        with self.conn:
            self.conn.execute("DELETE FROM f WHERE rowid <= ?", (m,))
            self.conn.executemany("INSERT INTO f(rowid, text) VALUES (?, ?)",
                                  ((n + i + 1, texts[i % len(texts)]) for i in range(m)))


class Tantivy:
    """longdoc's TextIndex (storage/text_index.py) over a real catalog of the chunks."""
    name = "tantivy"

    def build(self, folder: Path, texts: list[str], n: int):
        self.catalog = build_catalog(folder, texts, n)  # not timed apart: FTS5 and bm25s get the texts free
        self.text = TextIndex(folder)
        self.text.refresh(self.catalog)
        self.text.sync(self.catalog)
        self.bytes = dir_bytes(folder / "bm25")

    def search(self, query: str) -> list[int]:
        return [cid for cid, _ in bm25_search(self.text, query, DEPTH)]

    def change(self, texts: list[str], n: int, share: float) -> None:
        """1% of the documents removed and as many added, committed to the catalog, then the refresh."""
        m = int(n * share) // 100  # documents of 100 chunks
        conn = self.catalog.db.conn
        with self.catalog.transaction():
            conn.execute("DELETE FROM documents WHERE id <= ?", (m,))
            first = n // 100 + 1
            conn.executemany("INSERT INTO documents(id, path, sha256, format, n_chunks, indexed_at) "
                             "VALUES (?, ?, '', 'txt', 100, '')", [(d, f"/bench/new{d}.txt") for d in range(first, first + m)])
            conn.executemany("INSERT INTO chunks(id, doc_id, ordinal, text, char_start, char_end, token_count) "
                             "VALUES (?, ?, ?, ?, 0, 1, 64)",
                             ((n + i + 1, first + i // 100, i % 100, texts[i % len(texts)]) for i in range(m * 100)))
        self.text.refresh(self.catalog)
        self.text.sync(self.catalog)


class Bm25s:
    name = "bm25s"

    def build(self, folder: Path, texts: list[str], n: int):
        import bm25s

        self.bm25s = bm25s
        self.ids = np.arange(1, n + 1)
        self._fit([texts[i % len(texts)] for i in range(n)])
        self.path = folder / "bm25s"
        self.retriever.save(str(self.path))
        self.bytes = dir_bytes(self.path)

    def _fit(self, corpus: list[str]) -> None:
        self.retriever = self.bm25s.BM25()
        self.retriever.index(self.bm25s.tokenize(corpus, stopwords=sorted(STOPWORDS), show_progress=False),
                             show_progress=False)

    def search(self, query: str) -> list[int]:
        tokens = self.bm25s.tokenize([" ".join(terms(query))], stopwords=sorted(STOPWORDS), show_progress=False)
        docs, _ = self.retriever.retrieve(tokens, k=DEPTH, show_progress=False, n_threads=1)
        return [int(self.ids[d]) for d in docs[0]]

    def change(self, texts: list[str], n: int, share: float) -> None:
        m = int(n * share)  # no incremental update: the index is fitted again
        self.ids = np.concatenate([np.arange(m + 1, n + 1), np.arange(n + 1, n + m + 1)])
        self._fit([texts[(i - 1) % len(texts)] for i in range(m + 1, n + 1)] + [texts[i % len(texts)] for i in range(m)])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    from longdoc import open_index
    from longdoc.evaluation.corpora import corpus_path

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        from longdoc import index_paths

        index_paths(Path(tmp) / "essays", [corpus_path("paul-graham-essays")], progress=False)
        with open_index(Path(tmp) / "essays") as ix:
            texts = [r["text"] for r in ix.catalog.chunks(ix.catalog.vector_ids().tolist())]
        agreement = {}
        base = {}
        own = len(texts) // 100 * 100  # bench/search.py's catalog holds whole documents of 100 chunks
        for engine in (Fts5(), Tantivy(), Bm25s()):  # the essays' own size: do the rankings agree?
            folder = Path(tmp) / f"agree-{engine.name}"
            engine.build(folder, texts, own)
            base[engine.name] = {q: engine.search(q)[:10] for q in QUERIES}
            shutil.rmtree(folder)
        for name, ranked in base.items():
            agreement[name] = float(np.mean([len(set(ranked[q]) & set(base["fts5"][q])) / 10 for q in QUERIES]))
        print("top-10 overlap with FTS5 at", own, "chunks:", agreement, flush=True)
        for n in (int(s) for s in args.sizes.split(",")):
            for engine in (Fts5(), Tantivy(), Bm25s()):
                folder = Path(tmp) / f"{engine.name}-{n}"
                t = time.perf_counter()
                engine.build(folder, texts, n)
                build_s = time.perf_counter() - t
                engine.search(QUERIES[0])  # warm
                times = []
                for _ in range(3):
                    for q in QUERIES:
                        t = time.perf_counter()
                        engine.search(q)
                        times.append(time.perf_counter() - t)
                t = time.perf_counter()
                engine.change(texts, n, 0.01)
                change_s = time.perf_counter() - t
                row = {"engine": engine.name, "chunks": n, "build_s": build_s, "query_ms": percentiles(times),
                       "bytes_per_chunk": engine.bytes / n if engine.bytes else None, "change_1pct_s": change_s}
                rows.append(row)
                print(f"{engine.name:8s} {n:>9,} chunks: build {build_s:6.1f} s, query p50/p95 "
                      f"{row['query_ms']['p50_ms']:.1f}/{row['query_ms']['p95_ms']:.1f} ms, "
                      f"{row['bytes_per_chunk'] or 0:.0f} B/chunk, 1% change {change_s:.2f} s", flush=True)
                del engine
                shutil.rmtree(folder)
        for n in sorted({r["chunks"] for r in rows}):
            fts = next(r for r in rows if r["chunks"] == n and r["engine"] == "fts5")
            for r in rows:
                if r["chunks"] == n:
                    r["p95_vs_fts5"] = r["query_ms"]["p95_ms"] / fts["query_ms"]["p95_ms"]
            print(f"{n:>9,}: p95 vs FTS5 " + ", ".join(f"{r['engine']} {r['p95_vs_fts5']:.3f}x" for r in rows
                                                     if r["chunks"] == n))
    write_result("bm25_engines", {"depth": DEPTH, "queries": QUERIES, "top10_overlap_with_fts5": agreement,
                                  "rows": rows})


if __name__ == "__main__":
    main()
