"""The index manifest: which embedder and chunker built the vectors, so a mismatch is caught early."""
from __future__ import annotations

import dataclasses

from ..config import ChunkSettings, Settings, load_settings
from ..errors import IndexMismatchError
from ..storage.catalog import Catalog, now_iso
from ..storage.migrations import SCHEMA_VERSION


def index_settings(catalog: Catalog, requested: Settings | None) -> Settings:
    """The settings to index with. With none requested: the environment's, except that an existing
    index keeps the embedder, chunking and head vectors it was built with. A conflicting request is
    refused; head vectors left at their default (off) on an index that has them are kept."""
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
    if requested is None:
        return dataclasses.replace(base, embedder=manifest["embedder"], chunk=stored_chunk)
    if requested.embedder.lower() != manifest["embedder"].lower():
        raise IndexMismatchError(f"index {catalog.index_dir} was built with embedder {manifest['embedder']!r}, "
                                 f"not {requested.embedder!r}; use a new --index directory to change embedders")
    if requested.chunk != stored_chunk:
        raise IndexMismatchError(f"index {catalog.index_dir} was chunked with tokens={stored_chunk.tokens}, "
                                 f"overlap={stored_chunk.overlap}; use a new --index directory to re-chunk")
    return base


def write_manifest(catalog: Catalog, settings: Settings, embedder) -> None:
    """Record (or confirm) the embedder identity. Call inside a transaction."""
    manifest = catalog.get_meta("manifest")
    if manifest is not None:
        if manifest["fingerprint"] != embedder.fingerprint:
            raise IndexMismatchError(
                f"index {catalog.index_dir} was built with embedder weights {manifest['fingerprint']} "
                f"({manifest['embedder']}), but {embedder.name!r} now computes {embedder.fingerprint}")
        return
    catalog.set_meta("manifest", {
        "embedder": settings.embedder, "embedder_source": embedder.source, "fingerprint": embedder.fingerprint,
        "dim": embedder.dim, "heads": embedder.heads if settings.head_vectors else 0, "head_dim": embedder.head_dim,
        "chunk_tokens": settings.chunk.tokens, "chunk_overlap": settings.chunk.overlap,
        # The catalog's copy of the vectors (FAISS keeps float32): half the bytes; on the essays every
        # query's top 10 was unchanged, cosines within 5e-5.
        "vector_dtype": "float16",
        "schema_version": SCHEMA_VERSION, "created_at": now_iso(),
    })
