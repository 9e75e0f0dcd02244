"""The index manifest: which embedder and chunker built the vectors, so a mismatch is caught early."""
from __future__ import annotations

import dataclasses

from ..config import DEFAULT_HEAD_POOLING, LEGACY_HEAD_POOLING, ChunkSettings, Settings, load_settings
from ..errors import IndexMismatchError, LongdocError
from ..storage.catalog import Catalog, now_iso
from ..storage.migrations import SCHEMA_VERSION
from .head_weights import head_means


def index_settings(catalog: Catalog, requested: Settings | None) -> Settings:
    """The settings to index with. With none requested: the environment's, except that an existing
    index keeps the embedder, chunking and head vectors (and their pooling) it was built with. A conflicting
    request is refused; head vectors and pooling left at their defaults on an index built otherwise are kept."""
    manifest = catalog.get_meta("manifest")
    base = requested or load_settings()
    if manifest is None:
        return base
    stored_chunk = ChunkSettings(manifest["chunk_tokens"], manifest["chunk_overlap"])
    stored_heads = manifest["heads"] > 0
    if base.head_vectors and not stored_heads:
        raise IndexMismatchError(f"index {catalog.index_dir} was built without head vectors; use a new --index "
                                 f"directory with head_vectors = true to build them")
    base = dataclasses.replace(base, head_vectors=stored_heads)
    if stored_heads:
        stored_pooling = stored_head_pooling(manifest)
        if base.head_pooling not in (stored_pooling, DEFAULT_HEAD_POOLING):
            raise IndexMismatchError(f"index {catalog.index_dir} pools its head vectors by {stored_pooling!r}, not "
                                     f"{base.head_pooling!r}; use a new --index directory to change head_pooling")
        base = dataclasses.replace(base, head_pooling=stored_pooling)
    if requested is None:
        return dataclasses.replace(base, embedder=manifest["embedder"], chunk=stored_chunk)
    if requested.embedder.lower() != manifest["embedder"].lower():
        raise IndexMismatchError(f"index {catalog.index_dir} was built with embedder {manifest['embedder']!r}, "
                                 f"not {requested.embedder!r}; use a new --index directory to change embedders")
    if requested.chunk != stored_chunk:
        raise IndexMismatchError(f"index {catalog.index_dir} was chunked with tokens={stored_chunk.tokens}, "
                                 f"overlap={stored_chunk.overlap}; use a new --index directory to re-chunk")
    return base


def stored_head_pooling(manifest: dict) -> str | None:
    """How the index's head vectors were pooled (indexes made before the setting: the mean); None for an
    index that stores none, whose embedder then captures none."""
    return manifest.get("head_pooling", LEGACY_HEAD_POOLING) if manifest["heads"] else None


def write_manifest(catalog: Catalog, settings: Settings, embedder) -> None:
    """Record (or confirm) the embedder identity. Call inside a transaction."""
    manifest = catalog.get_meta("manifest")
    if manifest is not None:
        if manifest["fingerprint"] != embedder.fingerprint:
            raise IndexMismatchError(
                f"index {catalog.index_dir} was built with embedder weights {manifest['fingerprint']} "
                f"({manifest['embedder']}), but {embedder.name!r} now computes {embedder.fingerprint}")
        stored, pooling = stored_head_pooling(manifest), ",".join(embedder.pooling)
        if stored is not None and stored != pooling:
            raise IndexMismatchError(f"index {catalog.index_dir} pools its head vectors by {stored!r}, but the "
                                     f"embedder given pools by {pooling!r}")
        return
    if settings.head_vectors and not embedder.heads:
        raise LongdocError(f"index {catalog.index_dir} is to store head vectors, but the embedder given computes "
                           f"none (made with pooling=None)")
    heads = {"head_pooling": ",".join(embedder.pooling),
             # Set by the first commit, from its chunks' head vectors, before any is stored (record_head_means);
             # absent in indexes made before centring, whose head vectors stay uncentred.
             "head_means": None} if settings.head_vectors else {}
    catalog.set_meta("manifest", {
        "embedder": settings.embedder, "embedder_source": embedder.source, "fingerprint": embedder.fingerprint,
        "dim": embedder.dim, "heads": embedder.heads if settings.head_vectors else 0, "head_dim": embedder.head_dim,
        **heads,
        "chunk_tokens": settings.chunk.tokens, "chunk_overlap": settings.chunk.overlap,
        # The catalog's copy of the vectors (FAISS keeps float32): half the bytes; on the essays every
        # query's top 10 was unchanged, cosines within 5e-5.
        "vector_dtype": "float16",
        "schema_version": SCHEMA_VERSION, "created_at": now_iso(),
    })


def record_head_means(catalog: Catalog, manifest: dict, heads) -> dict:
    """A new index's first commit fixes each head's mean (head_weights.py: head_means) from its chunks'
    head vectors (N, H, d), before any vector is stored, so every stored and query head vector is centred
    by the same means. Returns the manifest as it now stands. Call inside the commit's transaction."""
    if not manifest["heads"] or "head_means" not in manifest or manifest["head_means"] is not None:
        return manifest
    manifest = {**manifest, "head_means": head_means(heads).tolist()}
    catalog.set_meta("manifest", manifest)
    return manifest
