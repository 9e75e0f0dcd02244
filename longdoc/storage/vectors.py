"""FAISS indexes for the ordinary embedding and one per MRAG head, kept in step with the catalog.

The catalog's `vectors` table is the source of truth. The FAISS files are a derived cache. Each file is
written atomically, then a manifest records every file's sha256 and the catalog generation they match.
On open, a file whose bytes do not match the manifest (a crash between writing the files and the
manifest, a torn or garbled file, a file of the wrong dimension) is dropped and rebuilt from the catalog;
`sync` then patches each index separately by set difference of chunk ids (ids are never reused). So a
crash at any point leaves files that are stale at worst, never wrong, and `checks` says what was found.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import faiss
import numpy as np

from .catalog import Catalog
from .files import atomic_file, atomic_write, writing

VECTORS_DIR = "vectors"
IVF_FILE = "ivf.faiss"  # past ivf_threshold vectors: the dense vectors again, in IVF cells
_UNREADABLE = "manifest.json: unreadable"
_UNREADABLE_REBUILT = f"{_UNREADABLE}; every vector file rebuilt from the catalog"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class VectorStore:
    """`dense` plus `heads[h]`: IndexIDMap2 over inner product of L2-normalised vectors (cosine)."""

    def __init__(self, index_dir: Path, dim: int, heads: int, head_dim: int,
                 ivf_threshold: int | None = None, ivf_nprobe: int = 32):
        self.dir = Path(index_dir) / VECTORS_DIR
        self.dim, self.n_heads, self.head_dim = dim, heads, head_dim
        self.generation = -1
        self.checks: list[str] = []  # what load found wrong, one line per file
        self.dense = self._empty(dim)
        self.heads = [self._empty(head_dim) for _ in range(heads)]
        # Past ivf_threshold vectors, dense search goes through an IVF index built from the flat one
        # (which stays the exact copy that sync patches). None: always flat.
        self.ivf_threshold, self.ivf_nprobe = ivf_threshold, ivf_nprobe
        self._ivf: faiss.Index | None = None
        self._ivf_generation = -2

    @classmethod
    def for_manifest(cls, index_dir: Path, manifest: dict, **search) -> "VectorStore | None":
        """An empty store shaped as the catalog's manifest says, or None before the first vectors."""
        if "dim" not in manifest:
            return None
        return cls(index_dir, manifest["dim"], manifest["heads"], manifest["head_dim"], **search)

    @staticmethod
    def _empty(dim: int) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def _files(self) -> list[tuple[str, int]]:
        return [("dense.faiss", -1)] + [(f"head-{h:02d}.faiss", h) for h in range(self.n_heads)]

    @property
    def size(self) -> int:
        return self.dense.ntotal

    def ids(self) -> np.ndarray:
        return id_map_ids(self.dense)

    def _manifest(self) -> tuple[dict, int] | None:
        """(the files manifest.json records, its generation), or None before the first write. Raises
        ValueError when it cannot be read."""
        try:
            info = json.loads((self.dir / "manifest.json").read_text())
            recorded, generation = info["files"], int(info["generation"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(_UNREADABLE) from e
        return (recorded if isinstance(recorded, dict) else {}), generation

    def load(self) -> "VectorStore":
        """Read the saved files that match the manifest; any other starts empty and is rebuilt by sync.
        `checks` gets one line per file."""
        self.checks = []
        try:
            manifest = self._manifest()
        except ValueError:
            self.checks.append(_UNREADABLE_REBUILT)
            return self
        if manifest is None:
            return self
        recorded, generation = manifest
        complete = True
        for name, h in self._files():
            index = self._read_noted(name, h, recorded, report=True)
            if index is None:
                complete = False
                continue
            if h < 0:
                self.dense = index
            else:
                self.heads[h] = index
        # Only files that all match the manifest are at its generation; otherwise sync compares every id.
        self.generation = generation if complete else -1
        if IVF_FILE in recorded and self.ivf_threshold is not None:
            ivf = self._read_noted(IVF_FILE, -1, recorded, report=True)
            if ivf is not None and complete:  # else ivf() builds one in memory when it is needed
                self._ivf, self._ivf_generation = ivf, generation
        return self

    def glance(self) -> tuple[int, list[str]]:
        """(the manifest's generation, problems seen without reading a file: missing, or of another size
        than recorded). Cheap at any size, for `status`; load (search) and doctor read every checksum."""
        try:
            manifest = self._manifest()
        except ValueError:
            return -1, [_UNREADABLE]
        if manifest is None:
            return -1, []
        recorded, generation = manifest
        problems = []
        for name, _ in self._files() + ([(IVF_FILE, -1)] if IVF_FILE in recorded else []):
            record = recorded.get(name)
            try:
                size = (self.dir / name).stat().st_size
            except FileNotFoundError:
                problems.append(f"{name}: missing")
                continue
            if not isinstance(record, dict):
                problems.append(f"{name}: not in the manifest")
            elif record.get("bytes", size) != size:  # manifests before sizes were recorded: not known
                problems.append(f"{name}: {size} bytes, the manifest records {record['bytes']}")
        dense = recorded.get("dense.faiss")
        count = dense.get("count", 0) if isinstance(dense, dict) else 0
        if self.ivf_threshold is not None and count >= self.ivf_threshold and IVF_FILE not in recorded:
            problems.append(f"{IVF_FILE}: not written yet ({count} vectors, the threshold is {self.ivf_threshold})")
        return generation, problems

    def _read_noted(self, name: str, h: int, recorded: dict, report: bool) -> faiss.Index | None:
        """One file (-1: dense, h: head h) read and checked against its manifest record, or None; with
        report, a file that fails gets its line in `checks`."""
        problem, index = self._read_checked(name, recorded.get(name), self.dim if h < 0 else self.head_dim)
        if index is None and report:
            self.checks.append(f"{name}: {problem}; rebuilt from the catalog")
        return index

    def _read_checked(self, name: str, record, dim: int) -> tuple[str, faiss.Index | None]:
        """(problem, None) or ("", the index) for one file checked against its manifest record."""
        path = self.dir / name
        if not isinstance(record, dict) or "sha256" not in record:
            return "not in the manifest", None
        try:
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            if digest != record["sha256"]:
                return "contents differ from the manifest's checksum", None
            index = faiss.read_index(str(path))
        except FileNotFoundError:
            return "missing", None
        except (OSError, RuntimeError) as e:
            return f"unreadable ({str(e).splitlines()[0][:80]})", None
        if index.d != dim or index.ntotal != record.get("count"):
            return f"holds {index.ntotal} vectors of dimension {index.d}, not what the manifest records", None
        return "", index

    def sync(self, catalog: Catalog, batch: int = 4096) -> tuple[int, int]:
        """Bring every index in memory to the catalog's committed state, each by its own set difference
        of ids. Returns (added, removed): the distinct chunk ids added to or removed from any index."""
        generation = catalog.generation
        if generation == self.generation:
            return 0, 0
        added, removed, _ = self._patch([(-1, self.dense), *enumerate(self.heads)], catalog, batch)
        self.generation = generation
        return len(added), len(removed)

    def refresh(self, catalog: Catalog, batch: int = 4096) -> tuple[int, int]:
        """The writer's sync and save in one, for a store it does not keep in memory: the dense file,
        then the head files, are read (checked against the manifest), patched to the catalog's committed
        state and written, then the manifest. One group's vectors are in memory at a time, half of them
        all (a 64 MiB book's ~300K chunks: 0.46 GB, not 0.92), and a sound file already in step is not
        rewritten. `checks` says what was found wrong. Returns (added, removed) as sync does."""
        self.checks = []
        try:
            manifest = self._manifest()
        except ValueError:
            self.checks.append(_UNREADABLE_REBUILT)
            manifest = {}, -1
        recorded = {} if manifest is None else manifest[0]
        # A first build has nothing to check; an unreadable manifest was reported as a whole.
        report = manifest is not None and not self.checks
        with writing(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
        generation = catalog.generation
        files, added, removed = {}, set(), set()
        for first, group in enumerate((self._files()[:1], self._files()[1:])):  # the dense file; the head files
            more, fewer, loaded = self._refresh_group(group, recorded, report, catalog, batch, files)
            if first == 0:  # the dense index is in memory now: the IVF index follows it
                self._refresh_ivf(loaded[0][1], recorded, report, files)
            del loaded
            added |= more
            removed |= fewer
        self.generation = generation
        written = {"generation": generation, "count": files["dense.faiss"]["count"], "dim": self.dim,
                   "heads": self.n_heads, "head_dim": self.head_dim, "files": files}
        atomic_write(self.dir / "manifest.json", json.dumps(written, indent=2).encode())
        _fsync_dir(self.dir)
        if IVF_FILE not in files:
            (self.dir / IVF_FILE).unlink(missing_ok=True)  # below the threshold again: no longer recorded
        return len(added), len(removed)

    def _refresh_ivf(self, dense: faiss.Index, recorded: dict, report: bool, files: dict) -> None:
        """Keep the saved IVF index in step with the dense one (past ivf_threshold vectors): patched by
        set difference of ids, its cells kept, and trained again only when the count has halved or
        doubled since they were trained (nlist = 4 sqrt(n) then no longer fits). A readable IVF file
        saves every search process the k-means a start would otherwise pay (58 s at 1M vectors)."""
        if self.ivf_threshold is None or dense.ntotal < self.ivf_threshold:
            return
        record = recorded.get(IVF_FILE) if isinstance(recorded.get(IVF_FILE), dict) else {}
        ivf = self._read_noted(IVF_FILE, -1, recorded, report)
        trained = int(record.get("trained_on", 0))
        ids = id_map_ids(dense)
        if ivf is None or not trained / 2 <= len(ids) <= trained * 2:
            ivf, trained = build_ivf(flat_vectors(dense), ids), len(ids)
        else:
            have = ivf_ids(ivf)
            stale = np.setdiff1d(have, ids, assume_unique=True)
            missing = np.setdiff1d(ids, have, assume_unique=True)
            if not len(stale) and not len(missing):
                files[IVF_FILE] = record
                return
            if len(stale):
                ivf.remove_ids(faiss.IDSelectorBatch(stale))
            if len(missing):
                order = np.argsort(ids)
                rows = order[np.searchsorted(ids, missing, sorter=order)]
                ivf.add_with_ids(np.ascontiguousarray(flat_vectors(dense)[rows]), missing)
        files[IVF_FILE] = {**self._write(IVF_FILE, ivf), "trained_on": trained}

    def _refresh_group(self, group, recorded: dict, report: bool, catalog: Catalog, batch: int,
                       files: dict) -> tuple[set, set, list]:
        """refresh for one group of files (their indexes, returned last, live only while the caller holds
        them); their manifest records go in `files`. report: add a line to `checks` for each file that
        fails its check."""
        loaded, sound = [], []
        for name, h in group:
            index = self._read_noted(name, h, recorded, report)
            loaded.append((h, index if index is not None else self._empty(self.dim if h < 0 else self.head_dim)))
            sound.append(index is not None)
        added, removed, changed = self._patch(loaded, catalog, batch)
        for (name, h), (_, index), keep in zip(group, loaded, sound):
            files[name] = recorded[name] if keep and h not in changed else self._write(name, index)
        return added, removed, loaded

    def _patch(self, indexes: list[tuple[int, faiss.Index]], catalog: Catalog, batch: int):
        """Make each index (-1: dense, h: head h) hold exactly the catalog's vector ids, by its own set
        difference. Returns (ids added anywhere, ids removed anywhere, which indexes (-1, h) changed)."""
        wanted = catalog.vector_ids()
        have = [id_map_ids(index) for _, index in indexes]
        removed: set[int] = set()
        changed: set[int] = set()
        for (h, index), ids in zip(indexes, have):
            stale = np.setdiff1d(ids, wanted, assume_unique=True)
            if len(stale):
                index.remove_ids(faiss.IDSelectorBatch(stale))
                removed.update(stale.tolist())
                changed.add(h)
        missing = [np.setdiff1d(wanted, ids, assume_unique=True) for ids in have]
        changed.update(h for (h, _), lacking in zip(indexes, missing) if len(lacking))
        needed = np.unique(np.concatenate(missing)) if missing else np.zeros(0, np.int64)
        for (_, index), lacking in zip(indexes, missing):
            if index.ntotal == 0 and len(lacking):
                _presize(index, len(lacking))
        with_dense = any(h < 0 for h, _ in indexes)
        with_heads = any(h >= 0 for h, _ in indexes)
        for start in range(0, len(needed), batch):
            ids = needed[start:start + batch]
            dense, heads = catalog.vectors(ids, self.dim if with_dense else 0, self.n_heads if with_heads else 0,
                                           self.head_dim)
            for (h, index), lacking in zip(indexes, missing):
                take = np.isin(ids, lacking, assume_unique=True)
                if take.any():
                    index.add_with_ids(normalize(dense[take] if h < 0 else heads[take, h]), ids[take])
        return set(needed.tolist()), removed, changed

    def _write(self, name: str, index: faiss.Index) -> dict:
        """Write one index atomically; its manifest record (sha256, count, bytes)."""
        # Streamed to the file and hashed on the way, a megabyte at a time: serialising first held
        # two more copies of the largest index (3 GB at a million chunks).
        digest = hashlib.sha256()
        with atomic_file(self.dir / name) as f:
            def put(block: bytes) -> int:
                f.write(block)
                digest.update(block)
                return len(block)

            faiss.write_index(index, faiss.PyCallbackIOWriter(put))
            size = f.tell()
        return {"sha256": digest.hexdigest(), "count": int(index.ntotal), "bytes": size}

    def _search(self, index: faiss.Index, query: np.ndarray, k: int, allowed: np.ndarray | None, nprobe: int | None = None):
        """Top-k by inner product; `allowed` restricts the search to those chunk ids (filters);
        `nprobe` is set for IVF indexes."""
        limit = self.size if allowed is None else min(self.size, len(allowed))
        if limit == 0:
            return np.zeros((len(query), 0), np.float32), np.zeros((len(query), 0), np.int64)
        sel = None if allowed is None else faiss.IDSelectorBatch(allowed)
        params = (faiss.SearchParametersIVF(nprobe=nprobe, sel=sel) if nprobe is not None
                  else None if sel is None else faiss.SearchParameters(sel=sel))
        return index.search(normalize(query), min(k, limit), params=params)

    def search_dense(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None):
        if self.ivf_threshold is not None and self.size >= self.ivf_threshold:
            return self._search(self.ivf(), query, k, allowed, self.ivf_nprobe)
        return self._search(self.dense, query, k, allowed)

    def ivf(self) -> faiss.Index:
        """The IVF index over the dense vectors, rebuilt when the vectors changed since it was built."""
        if self._ivf is None or self._ivf_generation != self.generation:
            self._ivf = build_ivf(flat_vectors(self.dense), self.ids())
            self._ivf_generation = self.generation
        return self._ivf

    def search_head(self, h: int, query: np.ndarray, k: int, allowed: np.ndarray | None = None):
        return self._search(self.heads[h], query, k, allowed)


def _presize(index: faiss.Index, n: int) -> None:
    """Give an empty IndexIDMap2(IndexFlat) room for n vectors in one allocation. Added a batch at a
    time, flat storage grows by doubling, and each doubling holds the old copy and the new: building a
    439 MB index that way peaked at 802 MB over the start, pre-sized at 467 MB."""
    flat = faiss.downcast_index(index.index)
    flat.codes.resize(n * flat.code_size)
    flat.codes.resize(0)  # the size goes back; the allocation stays (a vector keeps its capacity)


def flat_vectors(index: faiss.Index) -> np.ndarray:
    """The (n, d) vectors stored in an IndexIDMap2(IndexFlat), without copying them out one by one."""
    flat = faiss.downcast_index(index.index)
    return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * flat.d).reshape(flat.ntotal, flat.d)


def id_map_ids(index: faiss.Index) -> np.ndarray:
    """The ids of an IndexIDMap2, in storage order."""
    return faiss.vector_to_array(index.id_map).astype(np.int64)


def ivf_ids(ivf: faiss.Index) -> np.ndarray:
    """Every id stored in an IVF index's inverted lists."""
    lists = ivf.invlists
    parts = [faiss.rev_swig_ptr(lists.get_ids(cell), lists.list_size(cell)).copy()
             for cell in range(ivf.nlist) if lists.list_size(cell)]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def build_ivf(vectors: np.ndarray, ids: np.ndarray, train_sample: int = 100_000, seed: int = 0) -> faiss.Index:
    """IVF-Flat over inner product, nlist = 4*sqrt(n) cells trained by k-means on a sample."""
    n, d = vectors.shape
    nlist = max(1, int(4 * np.sqrt(n)))
    quantizer = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = vectors[np.sort(rng.choice(n, min(n, max(train_sample, 39 * nlist)), replace=False))]
    ivf.train(np.ascontiguousarray(sample))
    ivf.add_with_ids(vectors, ids)
    return ivf
