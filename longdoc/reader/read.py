"""Read a whole document and answer over all of it, with no retrieval stage: the document is cut into
reader-sized passages in reading order, each passage's KV comes from the KV store (or is computed once),
and a long-context backend reads what matters: scan (the sentences the question attends to, segment by
segment, read exactly), or landmark or retrieval (sparse attention over the keys that matter); `auto`
reads a document that fits the exact budget with block attention instead."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..config import ChunkSettings, Settings, check_attention
from ..errors import LongdocError
from ..indexing.chunking import Chunker
from ..indexing.loaders import load_document
from ..retrieval.hit import Hit
from .answer import Answer
from .reader import Reader

PASSAGE_TOKENS = 512  # reader tokens per passage: large enough that blocks are encoded in few batches


def document_passages(reader: Reader, path: str | Path, max_bytes: int | None = None) -> list[Hit]:
    """The document's passages in reading order, as hits with exact char spans, sections and pages."""
    doc = load_document(path, max_bytes=max_bytes)
    chunks = Chunker(reader.model.tokenizer, ChunkSettings(tokens=PASSAGE_TOKENS, overlap=0)).chunk(doc)
    return [Hit(c.ordinal, 0, str(path), doc.title, c.section, c.char_start, c.char_end, c.page_start, c.page_end,
                c.text, 0.0, ordinal=c.ordinal) for c in chunks]


def read(path: str | Path, question: str, attention: str = "auto", settings: Settings | None = None,
         reader: Reader | None = None, max_new_tokens: int | None = None,
         on_token: Callable[[str], None] | None = None) -> Answer:
    """Answer `question` over the whole document at `path`. The reader (default: from settings, with the
    KV store in the user cache) may be passed in to reuse it across calls."""
    from ..models.cache import cache_dir

    settings = settings or Settings()
    attention = check_attention(attention)
    if reader is None:
        reader = Reader(settings.reader, cache_dir("kv"), settings.answer, settings.device)
    hits = document_passages(reader, path, settings.max_file_bytes)
    if not hits:
        raise LongdocError(f"{path}: no text to read")
    return reader.answer(question, hits, attention, max_new_tokens=max_new_tokens, on_token=on_token,
                         timings={"passages": len(hits)}, in_order=True)
