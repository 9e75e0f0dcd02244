"""A 1% change at a million chunks (issue 17): the seconds the writer takes to bring the vector and text
indexes to the catalog after 1% of the documents are removed and as many added, and the bytes per chunk
on disk, for longdoc now and, in the same run, a baseline revision (a git worktree; by default 838b88c,
which kept a float32 flat FAISS file and, past 50K chunks, a float32 IVF copy).

The catalog is a real SQLite file holding the essays' real chunk texts and embeddings (from an index of
them, `make demo`'s by default), replicated up to --chunks with noise as bench/search.py does, in
documents of 100 chunks, vectors in float16. Timed: VectorStore.refresh and TextIndex.refresh, the calls
`longdoc index` makes after its commit (the first build, then the change). Embedding is not counted.

    python bench/index_change.py [--chunks 1000000] [--baseline 838b88c] [--source demo-index]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
PER_DOC = 100
SHARE = 0.01


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def noisy(base: np.ndarray, rows: np.ndarray, rng) -> np.ndarray:
    x = base[rows % len(base)] + 0.02 * rng.standard_normal((len(rows), base.shape[1])).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def put_chunks(conn, texts: list[str], base: np.ndarray, first_doc: int, first_chunk: int, n: int, rng) -> None:
    """n chunks (ids from first_chunk) in documents of PER_DOC (ids from first_doc), with vectors."""
    docs = range(first_doc, first_doc + n // PER_DOC)
    conn.executemany("INSERT INTO documents(id, path, sha256, format, n_chunks, indexed_at) VALUES (?, ?, '', 'txt', ?, '')",
                     [(d, f"/bench/doc{d:07d}.txt", PER_DOC) for d in docs])
    for start in range(0, n, 50_000):
        ids = np.arange(first_chunk + start, first_chunk + min(n, start + 50_000))
        conn.executemany("INSERT INTO chunks(id, doc_id, ordinal, text, char_start, char_end, token_count) "
                         "VALUES (?, ?, ?, ?, 0, ?, 64)",
                         ((int(i), first_doc + (int(i) - first_chunk) // PER_DOC, int(i) % PER_DOC,
                           texts[int(i) % len(texts)], len(texts[int(i) % len(texts)])) for i in ids))
        vectors = noisy(base, ids, rng)
        conn.executemany("INSERT INTO vectors(chunk_id, dense, heads) VALUES (?, ?, x'')",
                         ((int(i), v.tobytes()) for i, v in zip(ids, vectors)))


def essays(source: Path) -> tuple[list[str], np.ndarray]:
    """The source index's chunk texts and dense vectors, the seed of every replicated chunk."""
    from longdoc.storage import Catalog

    src = Catalog.open(source)
    ids = src.vector_ids()
    texts = [c["text"] for c in src.chunks(ids.tolist())]
    base = src.vectors(ids, src.get_meta("manifest")["dim"], 0, 0)[0]
    src.close()
    return texts, base


def build(folder: Path, source: Path, n: int) -> None:
    from longdoc.storage import Catalog

    texts, base = essays(source)
    cat = Catalog.open(folder, create=True)
    with cat.transaction():
        put_chunks(cat.db.conn, texts, base, 1, 1, n, np.random.default_rng(0))
    cat.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cat.close()


def measure(folder: Path, source: Path) -> dict:
    """Run in the tree under test: the first build of the indexes, then the 1% change."""
    from longdoc.storage import Catalog, VectorStore
    from longdoc.storage.text_index import TextIndex

    texts, base = essays(source)
    cat = Catalog.open(folder)
    n = len(cat.vector_ids())

    def refresh() -> float:
        t = time.perf_counter()
        TextIndex(folder).refresh(cat)
        VectorStore(folder, base.shape[1], 0, 32, ivf_threshold=50_000).refresh(cat)
        return time.perf_counter() - t

    build_s = refresh()
    cat.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    sizes = {part: dir_bytes(folder / part) for part in ("vectors", "bm25")}
    sizes["catalog"] = sum((folder / name).stat().st_size for name in os.listdir(folder) if name.startswith("catalog"))
    m = int(n * SHARE)
    with cat.transaction():
        cat.db.conn.execute("DELETE FROM documents WHERE id <= ?", (m // PER_DOC,))
        put_chunks(cat.db.conn, texts, base, n // PER_DOC + 1, n + 1, m, np.random.default_rng(1))
    change_s = refresh()
    return {"build_s": build_s, "change_s": change_s, "bytes": sizes,
            "bytes_per_chunk": sum(sizes.values()) / n}


def run_tree(tree: Path, catalog: Path, source: Path, workdir: Path, label: str) -> dict:
    folder = workdir / label
    shutil.copytree(catalog, folder)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--measure", str(folder),
                          "--source", str(source.resolve())], env=env,
                         check=True, capture_output=True, text=True).stdout
    shutil.rmtree(folder)
    result = json.loads(out.strip().splitlines()[-1])
    print(f"{label}: first build {result['build_s']:.1f} s, 1% change {result['change_s']:.2f} s, "
          f"{result['bytes_per_chunk']:.0f} B/chunk {result['bytes']}", flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--baseline", default="838b88c")
    parser.add_argument("--source", type=Path, default=Path("demo-index"))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.source)))
        return
    from common import write_result

    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(dir=os.environ.get("LONGDOC_BENCH_TMP")) as tmp:
        catalog = Path(tmp) / "catalog"
        t = time.perf_counter()
        build(catalog, args.source, args.chunks)
        print(f"catalog of {args.chunks:,} chunks written in {time.perf_counter() - t:.0f} s", flush=True)
        now = run_tree(repo, catalog, args.source, Path(tmp), "now")
        worktree = Path(tmp) / "baseline-tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], check=True,
                       capture_output=True, cwd=repo)
        try:
            baseline = run_tree(worktree, catalog, args.source, Path(tmp), f"baseline {args.baseline}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], capture_output=True, cwd=repo)
    ratios = {key: now[key] / baseline[key] for key in ("build_s", "change_s", "bytes_per_chunk")}
    print("now / baseline: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    write_result("index_change", {"chunks": args.chunks, "share": SHARE, "now": now,
                                  "baseline": {"rev": args.baseline, **baseline}, "ratios": ratios})


if __name__ == "__main__":
    main()
