"""PDF text by page with pypdf; pages become spans so every chunk knows its page."""
from __future__ import annotations

import io
import logging
from pathlib import Path

from ..errors import SkippedFile
from .document import LoadedDocument, sections_from_headings


def load_pdf(path: Path, data: bytes) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about damaged xrefs are ours to report
    if not data.lstrip().startswith(b"%PDF"):
        raise SkippedFile(path, "not a PDF (no %PDF header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise SkippedFile(path, "encrypted PDF")
        page_texts = [(page.extract_text() or "").replace("\r\n", "\n") for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or path.stem
    except SkippedFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as e:
        raise SkippedFile(path, f"corrupt or truncated PDF: {type(e).__name__}: {e}") from None
    if not any(t.strip() for t in page_texts):
        raise SkippedFile(path, f"PDF has {len(page_texts)} page(s) but no extractable text (scanned images?)")
    parts, pages, offset = [], [], 0
    for i, page_text in enumerate(page_texts):
        piece = page_text if i == len(page_texts) - 1 else page_text + "\n\n"
        parts.append(piece)
        pages.append((offset, offset + len(piece)))
        offset += len(piece)
    text = "".join(parts)
    return LoadedDocument(str(path), "pdf", text, str(title), sections_from_headings(text, []), pages=pages)
