"""The KV store: a reader's precomputed keys and values per chunk, as safetensors files.

Layout: <index>/kv/<reader id>/<sha[:2]>/<sha>.safetensors, holding `keys` and `values` of shape
(layers, kv_heads, tokens, head_dim) in float16, float32 or int8 (with per-token, per-head absmax scales),
and the position the block was encoded at, with a sha256 of the tensors' bytes in the file's metadata.
Writes are atomic (temp file, fsync, rename), so a crash leaves either the old entry or none; a read
that finds the bytes changed (or no checksum) drops the entry, and the block is computed again. The
store is size-bounded: a read touches the file's mtime, and a write that pushes the total past the
bound evicts the least recently used entries."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from ..errors import LongdocError, StorageError
from .files import atomic_write

DTYPES = {"float16": torch.float16, "float32": torch.float32, "int8": torch.int8}
_READER_ID = re.compile(r"^[A-Za-z0-9._-]+$")
log = logging.getLogger("longdoc.kv")


def quantize_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one scale per (layer, head, token): x ~ q * scale."""
    scale = x.float().abs().amax(dim=-1, keepdim=True).clamp_min(1e-8) / 127.0
    return torch.round(x.float() / scale).clamp(-127, 127).to(torch.int8), scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.float()


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class KVStore:
    def __init__(self, root: str | Path, reader_id: str | None, dtype: str = "float16", max_bytes: int = 4 << 30):
        """reader_id None: a handle on the whole store (stats, clear, evict), which cannot get or put."""
        if dtype not in DTYPES:
            raise LongdocError(f"unknown KV dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
        if reader_id is not None and not _READER_ID.match(reader_id):
            raise LongdocError(f"reader id {reader_id!r} must be letters, digits, '.', '_' or '-'")
        self.root = Path(root)
        self.dir = self.root / reader_id if reader_id is not None else None
        self.dtype = dtype
        self.max_bytes = int(max_bytes)
        self._total: int | None = None  # bytes under root, counted on first write
        self.dropped = 0  # damaged entries found (and deleted) by get and verify
        self.unwritable: str | None = None  # why puts are not stored (a full disk, a read-only index)

    def _path(self, sha: str) -> Path:
        if self.dir is None:
            raise LongdocError("this KV store handle has no reader: it can only report, evict and clear")
        if not re.fullmatch(r"[0-9a-f]{16,64}", sha):
            raise LongdocError(f"KV key {sha!r} is not a hex digest")
        return self.dir / sha[:2] / f"{sha}.safetensors"

    def __contains__(self, sha: str) -> bool:
        return self._path(sha).exists()

    def get(self, sha: str) -> tuple[torch.Tensor, torch.Tensor, int] | None:
        """(keys, values, start) as stored (int8 entries are dequantised to float32), or None."""
        path = self._path(sha)
        tensors = self._read_checked(path)
        if tensors is None:
            return None
        meta_start = int(tensors.pop("start").item())
        with contextlib.suppress(OSError):  # most recently used; a read-only store keeps its old order
            os.utime(path)
        keys, values = tensors["keys"], tensors["values"]
        if keys.dtype == torch.int8:
            keys = dequantize_int8(keys, tensors["key_scale"])
            values = dequantize_int8(values, tensors["value_scale"])
        return keys, values, meta_start

    def _read_checked(self, path: Path) -> dict[str, torch.Tensor] | None:
        """The entry's tensors if its bytes match the checksum it was written with; a damaged entry is
        deleted (it will be computed again, never trusted) and counted in `dropped`."""
        try:
            with safe_open(str(path), framework="pt") as f:
                recorded = (f.metadata() or {}).get("sha256")
                tensors = {name: f.get_tensor(name) for name in f.keys()}
            if recorded != _digest(tensors) or "start" not in tensors:
                raise ValueError("checksum mismatch")
            return tensors
        except FileNotFoundError:
            return None
        except (SafetensorError, KeyError, OSError, ValueError, RuntimeError):
            with contextlib.suppress(OSError):  # never trusted again; a read-only store cannot delete it
                path.unlink()
            self.dropped += 1
            return None

    def verify(self) -> tuple[int, int]:
        """Check every entry of every reader: (entries checked, damaged ones deleted)."""
        before = self.dropped
        entries = self._entries()
        for _, _, path in entries:
            self._read_checked(path)
        return len(entries), self.dropped - before

    def as_stored(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(keys, values) exactly as `get` will return them once stored: a block used right after it is
        computed then answers as it will from the store, so the first ask and the next ones agree."""
        if self.dtype == "int8":
            return tuple(dequantize_int8(*quantize_int8(x)) for x in (keys, values))
        return keys.to(DTYPES[self.dtype]), values.to(DTYPES[self.dtype])

    def put(self, sha: str, keys: torch.Tensor, values: torch.Tensor, start: int) -> int:
        """Store one block; returns the bytes written."""
        path = self._path(sha)
        if self.dtype == "int8":
            kq, ks = quantize_int8(keys)
            vq, vs = quantize_int8(values)
            tensors = {"keys": kq, "values": vq, "key_scale": ks, "value_scale": vs}
        else:
            tensors = {"keys": keys.to(DTYPES[self.dtype]), "values": values.to(DTYPES[self.dtype])}
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        tensors["start"] = torch.tensor([start], dtype=torch.int64)
        data = save(tensors, metadata={"sha256": _digest(tensors)})
        try:
            atomic_write(path, data, shared=True)
        except StorageError as error:
            # A cache: the answer goes on without it, and says so once.
            if self.unwritable is None:
                self.unwritable = str(error)
                log.warning("KV entries are not stored under %s (%s); passages are encoded again when read",
                            self.root, error.cause)
            return 0
        size = path.stat().st_size
        self._total = (self._total if self._total is not None else self._count_bytes()) + size
        if self._total > self.max_bytes:
            self.evict(self.max_bytes, keep=path)
        return size

    def _entries(self) -> list[tuple[float, int, Path]]:
        out = []
        for p in self.root.glob("*/*/*.safetensors"):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            out.append((st.st_mtime, st.st_size, p))
        return out

    def _count_bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def evict(self, max_bytes: int, keep: Path | None = None) -> int:
        """Delete least recently used entries (any reader) until the store holds at most max_bytes."""
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, p in entries:
            if total <= max_bytes:
                break
            if p == keep:
                continue
            p.unlink(missing_ok=True)
            total -= size
            removed += 1
        self._total = total
        return removed

    def stats(self) -> dict:
        readers: dict[str, dict] = {}
        for _, size, p in self._entries():
            r = readers.setdefault(p.parent.parent.name, {"entries": 0, "bytes": 0})
            r["entries"] += 1
            r["bytes"] += size
        return {"root": str(self.root), "readers": readers, "entries": sum(r["entries"] for r in readers.values()),
                "bytes": sum(r["bytes"] for r in readers.values()), "max_bytes": self.max_bytes}

    def clear(self) -> int:
        """Delete every entry of every reader; returns how many."""
        target = self.root
        n = len(list(target.glob("**/*.safetensors"))) if target.exists() else 0
        shutil.rmtree(target, ignore_errors=True)
        self._total = None
        return n
