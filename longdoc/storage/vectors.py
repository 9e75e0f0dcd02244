"""The dense index, and one per MRAG head in an index built with head vectors, kept in step with the catalog.

The catalog's `vectors` table (float16) holds the one copy of every vector; the FAISS indexes are
derived from it.
- dense, below `ivf_threshold` vectors: exact search over a flat index that each search process builds
  in memory from the catalog (50K vectors: a tenth of a second); no file.
- dense, past it: an IVF index with 8-bit codes (storage/ivf.py), saved as ivf.faiss, patched after
  changes and trained again only when the count has halved or doubled.
- heads: flat files head-NN.faiss, of each head vector less the index's mean for that head (`means`,
  fixed in the catalog's manifest at the first commit: indexing/head_weights.py), so a head's cosines measure
  how texts differ, not the direction every text shares.
Each file is written atomically, then a manifest records every file's sha256 and the catalog generation
they match. On open, a file whose bytes do not match the manifest (a crash between writing the files and
the manifest, a torn or garbled file, a file of the wrong dimension) is dropped and rebuilt from the
catalog; `sync` then patches each index separately by set difference of chunk ids (ids are never
reused). So a crash at any point leaves files that are stale at worst, never wrong, and `checks` says
what was found.
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
from .ivf import build_ivf, is_ivf, ivf_ids

VECTORS_DIR = "vectors"
IVF_FILE = "ivf.faiss"
DEFAULT_NPROBE = 32  # an IVF file written before nprobe was calibrated
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


def flat_index(dim: int) -> faiss.Index:
    """Exact search: IndexIDMap2 over inner product of L2-normalised vectors (cosine)."""
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def index_ids(index: faiss.Index) -> np.ndarray:
    """The chunk ids a flat (IndexIDMap2) or IVF index holds."""
    return ivf_ids(index) if is_ivf(index) else faiss.vector_to_array(index.id_map).astype(np.int64)


class VectorStore:
    """`dense` (flat, or IVF past ivf_threshold) plus `heads[h]` (flat), each head centred by its
    `means` (the catalog manifest's head_means)."""

    def __init__(self, index_dir: Path, dim: int, heads: int, head_dim: int,
                 ivf_threshold: int | None = None, ivf_nprobe: int = 0, means: np.ndarray | list | None = None):
        self.dir = Path(index_dir) / VECTORS_DIR
        self.dim, self.n_heads, self.head_dim = dim, heads, head_dim
        # (H, d) subtracted from every stored and query head vector; zero for indexes made before centring
        self.means = np.zeros((heads, head_dim), np.float32) if means is None else \
            np.asarray(means, np.float32).reshape(heads, head_dim)
        self.generation = -1  # the catalog generation the indexes in memory match
        self.saved_generation = -1  # the generation the saved files match, all of them sound (load)
        self.checks: list[str] = []  # what load or refresh found wrong, one line per file
        self.dense = flat_index(dim)
        self.heads = [flat_index(head_dim) for _ in range(heads)]
        # None: dense search is always flat. ivf_nprobe 0: the nprobe calibrated with the IVF cells.
        self.ivf_threshold, self.ivf_nprobe = ivf_threshold, ivf_nprobe
        self.calibrated_nprobe = DEFAULT_NPROBE

    @classmethod
    def for_manifest(cls, index_dir: Path, manifest: dict, **search) -> "VectorStore | None":
        """An empty store shaped as the catalog's manifest says, or None before the first vectors."""
        if "dim" not in manifest:
            return None
        return cls(index_dir, manifest["dim"], manifest["heads"], manifest["head_dim"],
                   means=manifest.get("head_means"), **search)

    def _head_files(self) -> list[tuple[str, int]]:
        return [(f"head-{h:02d}.faiss", h) for h in range(self.n_heads)]

    def _wants_ivf(self, n: int) -> bool:
        return self.ivf_threshold is not None and n >= self.ivf_threshold

    @property
    def size(self) -> int:
        return self.dense.ntotal

    @property
    def nprobe(self) -> int:
        return self.ivf_nprobe or self.calibrated_nprobe

    def ids(self) -> np.ndarray:
        return index_ids(self.dense)

    def _manifest(self) -> tuple[dict, int, int] | None:
        """(the files manifest.json records, its generation, its vector count), or None before the first
        write. Raises ValueError when it cannot be read."""
        try:
            info = json.loads((self.dir / "manifest.json").read_text())
            recorded, generation = info["files"], int(info["generation"])
            count = int(info.get("count", 0))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(_UNREADABLE) from e
        return (recorded if isinstance(recorded, dict) else {}), generation, count

    def load(self) -> "VectorStore":
        """Read the saved files that match the manifest; any other starts empty and is rebuilt by sync.
        `checks` gets one line per file. The flat dense index is filled from the catalog by sync."""
        self.checks = []
        try:
            manifest = self._manifest()
        except ValueError:
            self.checks.append(_UNREADABLE_REBUILT)
            return self
        if manifest is None:
            return self
        recorded, generation, _ = manifest
        sound = True
        for name, h in self._head_files():
            index = self._read_noted(name, self.head_dim, recorded, report=True)
            sound &= index is not None
            if index is not None:
                self.heads[h] = index
        if IVF_FILE in recorded:  # read and checked (doctor) even where this store searches flat
            ivf = self._read_noted(IVF_FILE, self.dim, recorded, report=True)
            sound &= ivf is not None
            if ivf is not None and self.ivf_threshold is not None:
                self._use_ivf(ivf, recorded[IVF_FILE].get("nprobe", DEFAULT_NPROBE))
        self.saved_generation = generation if sound else -1
        # A loaded IVF index is at the files' generation (when they all match the manifest); the flat
        # dense index is filled from the catalog by sync, which compares every id.
        self.generation = self.saved_generation if is_ivf(self.dense) else -1
        return self

    def _use_ivf(self, ivf: faiss.Index, nprobe: int) -> None:
        self.dense, self.calibrated_nprobe = ivf, int(nprobe)

    def glance(self) -> tuple[int, list[str]]:
        """(the manifest's generation, problems seen without reading a file: missing, or of another size
        than recorded). Cheap at any size, for `status`; load (search) and doctor read every checksum."""
        try:
            manifest = self._manifest()
        except ValueError:
            return -1, [_UNREADABLE]
        if manifest is None:
            return -1, []
        recorded, generation, count = manifest
        problems = []
        heads = [name for name, _ in self._head_files()]
        for name in heads + ([IVF_FILE] if IVF_FILE in recorded else []):
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
        older = sorted(set(recorded) - set(heads) - {IVF_FILE})
        if older:  # dense.faiss: the float32 flat copy indexes kept before it left disk
            problems.append(f"{', '.join(older)}: written by an older longdoc; the next longdoc index drops it")
        if isinstance(recorded.get(IVF_FILE), dict) and "nprobe" not in recorded[IVF_FILE]:
            problems.append(f"{IVF_FILE}: float32 codes searched at a fixed nprobe (an older longdoc); the next "
                            f"longdoc index trains it again")
        if self._wants_ivf(count) and IVF_FILE not in recorded:
            problems.append(f"{IVF_FILE}: not written yet ({count} vectors, the threshold is {self.ivf_threshold})")
        return generation, problems

    def _read_noted(self, name: str, dim: int, recorded: dict, report: bool) -> faiss.Index | None:
        """One file read and checked against its manifest record, or None; with report, a file that
        fails gets its line in `checks`."""
        problem, index = self._read_checked(name, recorded.get(name), dim)
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
        wanted = catalog.vector_ids()
        if self._wants_ivf(len(wanted)) and not is_ivf(self.dense):  # the writer has saved none yet
            self._use_ivf(*self._built_ivf(catalog, wanted, batch))
        elif not self._wants_ivf(len(wanted)) and is_ivf(self.dense):
            self.dense = flat_index(self.dim)
        added, removed, _ = self._patch([(-1, self.dense), *enumerate(self.heads)], catalog, wanted, batch)
        self.generation = generation
        return len(added), len(removed)

    def _built_ivf(self, catalog: Catalog, ids: np.ndarray, batch: int) -> tuple[faiss.Index, int]:
        return build_ivf(ids, lambda part: normalize(catalog.vectors(part, self.dim, 0, 0)[0]), batch)

    def refresh(self, catalog: Catalog, batch: int = 4096) -> tuple[int, int]:
        """The writer's sync and save in one, for a store it does not keep in memory: the IVF file (past
        the threshold), then the head files, are read (checked against the manifest), patched to the
        catalog's committed state and written, then the manifest. One group's vectors are in memory at a
        time, and a sound file already in step is not rewritten. `checks` says what was found wrong.
        Returns (added, removed) as sync does, over the saved indexes."""
        self.checks = []
        try:
            manifest = self._manifest()
        except ValueError:
            self.checks.append(_UNREADABLE_REBUILT)
            manifest = {}, -1, 0
        recorded = {} if manifest is None else manifest[0]
        # A first build has nothing to check; an unreadable manifest was reported as a whole.
        report = manifest is not None and not self.checks
        with writing(self.dir):
            self.dir.mkdir(parents=True, exist_ok=True)
        generation, wanted = catalog.generation, catalog.vector_ids()
        files, added, removed = {}, set(), set()
        if self._wants_ivf(len(wanted)):
            added, removed = self._refresh_ivf(recorded, report, catalog, wanted, batch, files)
        if self.n_heads:
            more, fewer = self._refresh_heads(recorded, report, catalog, wanted, batch, files)
            added |= more
            removed |= fewer
        self.generation = self.saved_generation = generation
        written = {"generation": generation, "count": len(wanted), "dim": self.dim, "heads": self.n_heads,
                   "head_dim": self.head_dim, "files": files}
        atomic_write(self.dir / "manifest.json", json.dumps(written, indent=2).encode())
        _fsync_dir(self.dir)
        for path in self.dir.glob("*.faiss"):  # no longer recorded: below the threshold again, or the
            if path.name not in files:  # dense.faiss of indexes built before the flat index left disk
                path.unlink(missing_ok=True)
        return len(added), len(removed)

    def _refresh_ivf(self, recorded: dict, report: bool, catalog: Catalog, wanted: np.ndarray, batch: int,
                     files: dict) -> tuple[set, set]:
        """Keep the saved IVF index in step with the catalog: patched by set difference of ids, its cells
        kept, and trained again (and nprobe calibrated again) only when the count has halved or doubled
        since they were trained (nlist = 4 sqrt(n) then no longer fits). A readable IVF file saves every
        search process the k-means a start would otherwise pay (58 s at 1M vectors)."""
        record = recorded.get(IVF_FILE) if isinstance(recorded.get(IVF_FILE), dict) else {}
        ivf = self._read_noted(IVF_FILE, self.dim, recorded, report)
        trained = int(record.get("trained_on", 0))
        # An IVF file without a calibrated nprobe is an older longdoc's, with float32 codes: trained again.
        if ivf is None or "nprobe" not in record or not trained / 2 <= len(wanted) <= trained * 2:
            ivf, nprobe = self._built_ivf(catalog, wanted, batch)
            added, removed, trained = set(wanted.tolist()), set(), len(wanted)
        else:
            nprobe = record.get("nprobe", DEFAULT_NPROBE)
            added, removed, changed = self._patch([(-1, ivf)], catalog, wanted, batch)
            if not changed:
                files[IVF_FILE] = record
                return added, removed
        files[IVF_FILE] = {**self._write(IVF_FILE, ivf), "trained_on": trained, "nprobe": int(nprobe)}
        return added, removed

    def _refresh_heads(self, recorded: dict, report: bool, catalog: Catalog, wanted: np.ndarray, batch: int,
                       files: dict) -> tuple[set, set]:
        """refresh for the head files; their manifest records go in `files`. report: add a line to
        `checks` for each file that fails its check."""
        loaded, sound = [], []
        for name, h in self._head_files():
            index = self._read_noted(name, self.head_dim, recorded, report)
            loaded.append((h, index if index is not None else flat_index(self.head_dim)))
            sound.append(index is not None)
        added, removed, changed = self._patch(loaded, catalog, wanted, batch)
        for (name, h), (_, index), keep in zip(self._head_files(), loaded, sound):
            files[name] = recorded[name] if keep and h not in changed else self._write(name, index)
        return added, removed

    def _patch(self, indexes: list[tuple[int, faiss.Index]], catalog: Catalog, wanted: np.ndarray, batch: int):
        """Make each index (-1: dense, h: head h) hold exactly the `wanted` ids, by its own set difference.
        Returns (ids added anywhere, ids removed anywhere, which indexes (-1, h) changed)."""
        have = [index_ids(index) for _, index in indexes]
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
            if index.ntotal == 0 and len(lacking) and not is_ivf(index):
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
                    index.add_with_ids(normalize(dense[take] if h < 0 else heads[take, h] - self.means[h]), ids[take])
        return set(needed.tolist()), removed, changed

    def _write(self, name: str, index: faiss.Index) -> dict:
        """Write one index atomically; its manifest record (sha256, count, bytes)."""
        # Streamed to the file and hashed on the way, a megabyte at a time: serialising first held
        # two more copies of the largest index.
        digest = hashlib.sha256()
        with atomic_file(self.dir / name) as f:
            def put(block: bytes) -> int:
                f.write(block)
                digest.update(block)
                return len(block)

            faiss.write_index(index, faiss.PyCallbackIOWriter(put))
            size = f.tell()
        return {"sha256": digest.hexdigest(), "count": int(index.ntotal), "bytes": size}

    def _search(self, index: faiss.Index, query: np.ndarray, k: int, allowed: np.ndarray | None):
        """Top-k by inner product; `allowed` restricts the search to those chunk ids (filters)."""
        limit = self.size if allowed is None else min(self.size, len(allowed))
        if limit == 0:
            return np.zeros((len(query), 0), np.float32), np.zeros((len(query), 0), np.int64)
        sel = None if allowed is None else faiss.IDSelectorBatch(allowed)
        params = (faiss.SearchParametersIVF(nprobe=self.nprobe, sel=sel) if is_ivf(index)
                  else None if sel is None else faiss.SearchParameters(sel=sel))
        return index.search(normalize(query), min(k, limit), params=params)

    def search_dense(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None):
        return self._search(self.dense, query, k, allowed)

    def search_head(self, h: int, query: np.ndarray, k: int, allowed: np.ndarray | None = None):
        return self._search(self.heads[h], query - self.means[h], k, allowed)


def _presize(index: faiss.Index, n: int) -> None:
    """Give an empty IndexIDMap2(IndexFlat) room for n vectors in one allocation. Added a batch at a
    time, flat storage grows by doubling, and each doubling holds the old copy and the new: building a
    439 MB index that way peaked at 802 MB over the start, pre-sized at 467 MB."""
    flat = faiss.downcast_index(index.index)
    flat.codes.resize(n * flat.code_size)
    flat.codes.resize(0)  # the size goes back; the allocation stays (a vector keeps its capacity)
