"""`longdoc index`: discover, load, chunk, embed and commit files into an index, incrementally.

Each group of documents is committed to the catalog in one transaction (text, chunks, spans and
vectors together), so a crash loses at most the group in flight. The BM25 index and the FAISS files are synced from
the catalog every `flush_every_docs` documents and at the end.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..config import Settings, load_settings
from ..errors import LongdocError, SkippedFile
from ..paths import as_path, as_path_list, shown
from ..storage import Catalog, VectorStore, write_lock
from ..storage.files import writing
from ..storage.text_index import TextIndex
from .chunking import Chunker
from .discovery import absolute, discover, under_roots
from .head_weights import head_weights
from .loaders import read_bytes
from .manifest import index_settings, record_head_means, write_manifest
from .parse_worker import load_and_chunk, shared_worker

if TYPE_CHECKING:
    from .embedder import MultiHeadEmbedder

@dataclass
class IndexReport:
    index: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0
    chunks_embedded: int = 0
    seconds: float = 0.0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    run_id: int = 0
    # Seconds per stage: read+hash, load+chunk, embed, catalog commit, BM25 and FAISS sync+save.
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(("read", "parse", "embed", "commit", "vectors"), 0.0))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Pending:
    doc: object
    sha256: str
    stat: os.stat_result
    chunks: list
    is_update: bool


def prepare_file(path: str, known_sha: str | None, max_bytes: int,
                 parse: Callable[[str, bytes], tuple]) -> tuple[_Pending | None, dict]:
    """Read, hash, load and chunk one file: (None when unchanged since it was indexed, timings).
    Raises SkippedFile for a file that cannot be used. Runs in this process or on a Ray worker; `parse`
    (a ParseWorker's, in its child process under its time limit, or load_and_chunk) is called only for a
    file that changed."""
    t0 = time.perf_counter()
    data = read_bytes(Path(path), max_bytes)
    stat = os.stat(path)
    sha = hashlib.sha256(data).hexdigest()
    t1 = time.perf_counter()
    if known_sha == sha:
        return None, {"read": t1 - t0}
    doc, chunks = parse(path, data)
    return _Pending(doc, sha, stat, chunks, known_sha is not None), {"read": t1 - t0, "parse": time.perf_counter() - t1}


def parser_for(chunker: Chunker, parse_timeout_s: float) -> Callable[[str, bytes], tuple]:
    """Load and chunk in the shared child process under the time limit, or here when it is 0."""
    if parse_timeout_s > 0:
        return shared_worker(chunker, parse_timeout_s).parse
    return lambda path, data: load_and_chunk(path, data, chunker)


class LocalEngine:
    """Prepare and embed in this process (the default; files are parsed in a child process under
    parse_timeout_s, or here when it is 0); distributed.RayEngine does both on Ray."""

    def prepare(self, files: list[str], known: dict, chunker: Callable[[], Chunker], max_bytes: int,
                parse_timeout_s: float, on_file):
        """chunker: called (it loads the embedder's tokenizer) only once a file has changed."""
        parsers = []

        def parse(path: str, data: bytes):
            if not parsers:
                parsers.append(parser_for(chunker(), parse_timeout_s))
            return parsers[0](path, data)

        for path in files:
            on_file()
            try:
                yield path, *prepare_file(path, known[path][1] if path in known else None, max_bytes, parse)
            except SkippedFile as e:
                yield path, e, {}

    def encoder(self, embedder: MultiHeadEmbedder, settings: Settings):
        return embedder.encode

    def close(self) -> None:
        pass


class _Indexer:
    """Embeds and commits what changed. The embedder (torch, the model) is loaded on the first file that
    changed, so a run over unchanged files reads only their bytes and the catalog."""

    def __init__(self, catalog: Catalog, settings: Settings, load_embedder: Callable[[], "MultiHeadEmbedder"],
                 progress: Progress, engine):
        self.catalog, self.settings, self.progress, self.engine = catalog, settings, progress, engine
        self._load_embedder = load_embedder
        self.embedder: MultiHeadEmbedder | None = None
        self.pending: list[_Pending] = []
        self.since_flush = 0

    def chunker(self) -> Chunker:
        self.load()
        return self._chunker

    def load(self) -> None:
        """Load the embedder, check it against the index's manifest (or record it in a new one)."""
        if self.embedder is not None:
            return
        embedder = self._load_embedder()
        if self.settings.chunk.tokens > embedder.max_tokens - 2:
            raise LongdocError(f"chunk tokens {self.settings.chunk.tokens} exceed what {self.settings.embedder} "
                               f"reads ({embedder.max_tokens - 2} tokens)")
        with self.catalog.transaction():
            write_manifest(self.catalog, self.settings, embedder)
        self._chunker = Chunker(embedder.tokenizer, self.settings.chunk)
        self.encode = self.engine.encoder(embedder, self.settings)
        self.embedder = embedder

    def embed_and_commit(self, report: IndexReport, embed_task) -> None:
        """Embed and store the pending documents, then sync the vector files every flush_every_docs."""
        if not self.pending:
            return
        self._store(report, embed_task)  # its locals (every chunk of a huge file) go before the vectors come in
        if self.since_flush >= self.settings.flush_every_docs:
            self.flush_vectors(report)

    def _store(self, report: IndexReport, embed_task) -> None:
        """Embed the pending documents' chunks, at most commit_chunks at a time (a huge file's vectors are
        never all in memory, nor its chunks as objects), and store them in one transaction: every
        document whole, or none."""
        self.load()
        manifest = self.catalog.get_meta("manifest")
        heads = manifest["heads"]  # 0: the index stores no head vectors
        dtype = manifest.get("vector_dtype", "float32")  # indexes made before it kept float32
        rows = ((n, c) for n, p in enumerate(self.pending) for c in p.chunks)  # (which document, chunk)
        step = self.settings.commit_chunks
        embed_s = 0.0
        t0 = time.perf_counter()
        with self.catalog.transaction():
            doc_ids = [self.catalog.put_document(p.doc, p.sha256, p.stat, len(p.chunks)) for p in self.pending]
            while part := list(itertools.islice(rows, step)):
                t = time.perf_counter()
                dense, head_vectors = self.encode([c.text for _, c in part],
                                                  on_batch=lambda n: self.progress.advance(embed_task, n))
                embed_s += time.perf_counter() - t
                if heads:
                    manifest = record_head_means(self.catalog, manifest, head_vectors)
                offset = 0
                for doc, group in itertools.groupby(part, key=lambda row: row[0]):
                    chunks = [c for _, c in group]
                    end = offset + len(chunks)
                    self.catalog.put_chunks(doc_ids[doc], chunks, dense[offset:end],
                                            head_vectors[offset:end] if heads else None, dtype)
                    offset = end
        for p in self.pending:
            report.updated += p.is_update
            report.added += not p.is_update
        report.timings["embed"] += embed_s
        report.timings["commit"] += time.perf_counter() - t0 - embed_s
        report.chunks_embedded += sum(len(p.chunks) for p in self.pending)
        self.since_flush += len(self.pending)
        self.pending = []

    def flush_vectors(self, report: IndexReport) -> None:
        """Bring the BM25 index and the FAISS files to the catalog. Files whose manifest is at the catalog's
        generation, at their recorded sizes, are left unread (a no-op run at a million chunks would otherwise hash
        gigabytes); search checks every checksum, and `doctor --repair` rewrites a damaged file."""
        t0 = time.perf_counter()
        self.since_flush = 0
        # Not kept in memory: each flush reads, patches and writes the files a group at a time.
        vectors = VectorStore.for_manifest(self.catalog.index_dir, self.catalog.get_meta("manifest") or {},
                                           ivf_threshold=self.settings.search.ivf_threshold)
        due = vectors is not None and vectors.glance() != (self.catalog.generation, [])
        if due and vectors.n_heads:  # first: this commit moves the generation the indexes below record
            sample = self.catalog.head_sample(2000, vectors.n_heads, vectors.head_dim)
            with self.catalog.transaction():
                self.catalog.set_meta("head_weights", head_weights(sample).tolist())
        TextIndex(self.catalog.index_dir).refresh(self.catalog)
        if due:
            vectors.refresh(self.catalog)
        report.timings["vectors"] += time.perf_counter() - t0


def index_paths(index_dir: str | Path, roots: list[str | Path], settings: Settings | None = None,
                prune: bool = False, progress: bool = True, embedder: MultiHeadEmbedder | None = None,
                engine=None, on_progress: Callable[[dict], None] | None = None) -> IndexReport:
    """Index (or re-index) every supported file under `roots` into `index_dir`. engine: where files
    are parsed and chunks embedded (LocalEngine, or distributed.RayEngine); this process always
    writes the catalog and the FAISS files. on_progress is called with {"files", "files_done",
    "chunks_embedded"} as the run goes (the service's job progress)."""
    started = time.perf_counter()
    roots = as_path_list(roots, "roots")
    index_dir = as_path(index_dir, "index_dir")
    with writing(index_dir):
        index_dir.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True, quiet=not progress)
    with write_lock(index_dir):
        catalog = Catalog.open(index_dir, create=True)
        try:
            clean_leftovers(catalog)
            settings = index_settings(catalog, settings)

            def load_embedder():
                from .embedder import MultiHeadEmbedder

                # An index without head vectors embeds without capturing them.
                return embedder or MultiHeadEmbedder(settings.embedder, settings.device, settings.batch_size,
                                                     settings.embed_pooling)

            engine = engine or LocalEngine()
            try:
                return _run(catalog, settings, load_embedder, [absolute(r) for r in roots], prune, console, progress,
                            started, engine, on_progress)
            finally:
                engine.close()
        finally:
            catalog.close()


# A KV entry's temp file younger than this may belong to a reader writing it now (readers take no lock).
_KV_PART_AGE_S = 3600


def clean_leftovers(catalog: Catalog) -> None:
    """What a killed writer leaves behind, removed under the write lock: vector temp files, old KV temp
    files, and runs still marked running (they were interrupted)."""
    for tmp in (catalog.index_dir / "vectors").glob("*.tmp"):
        tmp.unlink(missing_ok=True)
    cutoff = time.time() - _KV_PART_AGE_S
    for part in (catalog.index_dir / "kv").glob("*/*/.*.tmp"):  # atomic_write(shared=True)'s temp names
        try:
            if part.stat().st_mtime < cutoff:
                part.unlink()
        except FileNotFoundError:
            pass
    catalog.interrupt_runs()


class _Progress(Progress):
    """rich's progress bars (shown or not), which also report their counts to a callback."""

    def __init__(self, *columns, on_change: Callable[[dict], None] | None = None, **kwargs):
        super().__init__(*columns, **kwargs)
        self.on_change = on_change

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        if self.on_change is not None:
            files, chunks = self.tasks[:2]
            self.on_change({"files": files.total, "files_done": int(files.completed),
                            "chunks_embedded": int(chunks.completed)})


def _run(catalog, settings, load_embedder, roots, prune, console, show_progress, started, engine,
         on_progress=None) -> IndexReport:
    report = IndexReport(index=str(catalog.index_dir))
    report.run_id = catalog.start_run(roots)
    files, problems = discover(roots)
    known = catalog.known_documents()
    max_bytes = settings.max_file_bytes

    def skip(path: str, reason: str):
        report.skipped += 1
        report.skipped_files.append((shown(path), reason))
        catalog.record_skip(report.run_id, path, reason)
        console.print(f"[yellow]skipped[/] {escape(shown(path))}: {reason}", highlight=False)

    for path, reason in problems:
        skip(path, reason)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with _Progress(*columns, console=console, disable=not show_progress, transient=False, on_change=on_progress) as progress:
        file_task = progress.add_task("files", total=len(files))
        embed_task = progress.add_task("chunks embedded", total=None)
        indexer = _Indexer(catalog, settings, load_embedder, progress, engine)
        prepared = engine.prepare(files, known, indexer.chunker, max_bytes, settings.parse_timeout_s,
                                  lambda: progress.advance(file_task))
        _ingest(prepared, indexer, report, skip, embed_task)
        if prune:
            present = set(files)
            gone = [p for p in known if under_roots(p, roots) and p not in present]
            if gone:
                with catalog.transaction():
                    report.removed = sum(catalog.remove_document(p) for p in gone)
        indexer.flush_vectors(report)
    report.timings = {k: round(v, 3) for k, v in report.timings.items()}
    report.seconds = round(time.perf_counter() - started, 3)
    catalog.finish_run(report.run_id, report.as_dict())
    return report


def _ingest(prepared, indexer: _Indexer, report: IndexReport, skip, embed_task) -> None:
    """Embed and commit every prepared file, a batch of commit_chunks at a time. A function of its own so
    that the last file's chunks are not held (by the loop's names) while the vector files are synced."""
    for _, outcome, timings in prepared:
        for stage, seconds in timings.items():
            report.timings[stage] += seconds
        if isinstance(outcome, SkippedFile):
            skip(outcome.path, outcome.reason)
        elif outcome is None:
            report.unchanged += 1
        else:
            indexer.pending.append(outcome)
            if sum(len(p.chunks) for p in indexer.pending) >= indexer.settings.commit_chunks:
                indexer.embed_and_commit(report, embed_task)
    indexer.embed_and_commit(report, embed_task)


def remove_documents(index_dir: str | Path, paths: list[str]) -> list[str]:
    """Remove documents by path (as indexed, or as given); returns the paths removed."""
    paths = [str(p) for p in as_path_list(paths, "paths")]
    index_dir = as_path(index_dir, "index_dir")
    with write_lock(index_dir):
        catalog = Catalog.open(index_dir)
        try:
            known = catalog.known_documents()
            targets = [p for p in {absolute(x) if absolute(x) in known else x for x in paths} if p in known]
            if targets:
                with catalog.transaction():
                    for p in targets:
                        catalog.remove_document(p)
                _rewrite_vectors(catalog)
            return sorted(targets)
        finally:
            catalog.close()


def repair_vectors(index_dir: str | Path) -> list[str]:
    """Rewrite the FAISS files from the catalog (damaged ones rebuilt); returns what loading them found."""
    index_dir = as_path(index_dir, "index_dir")
    with write_lock(index_dir):
        catalog = Catalog.open(index_dir)
        try:
            return _rewrite_vectors(catalog)
        finally:
            catalog.close()


def _rewrite_vectors(catalog: Catalog) -> list[str]:
    """Bring the saved vector files (checked against the manifest) to the catalog and write them;
    returns what the check found. Call holding the write lock."""
    TextIndex(catalog.index_dir).refresh(catalog)
    store = VectorStore.for_manifest(catalog.index_dir, catalog.get_meta("manifest") or {},
                                     ivf_threshold=load_settings().search.ivf_threshold)
    if store is None:
        return []
    store.refresh(catalog)
    return store.checks
