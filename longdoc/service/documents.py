"""The document routes: list, add (uploaded content, or a path inside the configured roots), remove, a
document's text for the page's reader pane, and the writer's jobs with their progress."""
from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..indexing.loaders import format_of
from ..storage.files import atomic_write
from .errors import ApiError

# The reader pane is sent this many chars either side of a cited span (a whole book would be megabytes).
TEXT_WINDOW = 20_000


class AddDocument(BaseModel):
    filename: Optional[str] = Field(None, max_length=200)
    content_base64: Optional[str] = None
    text: Optional[str] = None
    path: Optional[str] = None  # a file inside the configured roots


def document_routes(service, config, authorized) -> APIRouter:
    router = APIRouter(dependencies=[Depends(authorized)])
    uploads = config.index.resolve() / "uploads"  # the server's copies of uploaded documents

    @router.get("/v1/documents")
    def documents():
        return {"documents": service.index.documents()}

    @router.post("/v1/documents", status_code=202)
    def add_document(body: AddDocument):
        service.require_ready()
        source = _document_source(body, config)
        if isinstance(source, Path):
            target, content = source, None
        else:
            name, content = source
            target = uploads / name
        raw = service.encoder._embedder if service.encoder else None

        def work(job):
            from ..indexing.pipeline import index_paths

            if content is not None:
                atomic_write(target, content, shared=True)
            report = index_paths(config.index, [target], None, progress=False, embedder=raw,
                                 on_progress=job.progress.update)
            return {"added": report.added, "updated": report.updated, "chunks_embedded": report.chunks_embedded,
                    "skipped": [list(s) for s in report.skipped_files]}

        return {"job": service.writer.submit("add", str(target), work).as_dict()}

    @router.delete("/v1/documents/{doc_id}", status_code=202)
    def remove_document(doc_id: int):
        path = next((d["path"] for d in service.index.documents() if d["id"] == doc_id), None)
        if path is None:
            raise ApiError(404, "not_found", f"no document {doc_id} in the index")
        def work(job):
            removed = service.index.remove([path])
            if Path(path).parent == uploads:  # the server's own copy goes too
                Path(path).unlink(missing_ok=True)
            return {"removed": removed}

        job = service.writer.submit("remove", path, work)
        return {"job": job.as_dict()}

    @router.get("/v1/documents/{doc_id}/text")
    def document_text(doc_id: int, start: int = 0, end: Optional[int] = None):
        """The text round chars [start, end) (a citation's span): a PDF's pages that hold it, else the text up
        to TEXT_WINDOW chars either side. Document text is sent as JSON strings; the page shows it as text."""
        doc = service.index.catalog.document(doc_id)
        if doc is None:
            raise ApiError(404, "not_found", f"no document {doc_id} in the index")
        text = service.index.document_text(doc_id)
        end = start if end is None else end
        if not 0 <= start <= end <= len(text):
            raise ApiError(422, "invalid_request", f"chars {start}-{end} lie outside document {doc_id} ({len(text)} chars)")
        pages = [{"page": n, "start": a, "end": b}
                 for n, (a, b) in enumerate(service.index.catalog.spans(doc_id, "page"), 1)]
        if pages:
            pages = [p for p in pages if p["start"] < max(end, start + 1) and p["end"] > start] or pages[:1]
            lo, hi = pages[0]["start"], pages[-1]["end"]
        else:
            lo, hi = max(0, start - TEXT_WINDOW), min(len(text), end + TEXT_WINDOW)
        return {"id": doc_id, "title": doc["title"], "path": doc["path"], "format": doc["format"], "length": len(text),
                "offset": lo, "text": text[lo:hi], "pages": pages}

    @router.get("/v1/jobs/{job_id}")
    def job(job_id: int):
        if job_id not in service.writer.jobs:
            raise ApiError(404, "not_found", f"no job {job_id}")
        return service.writer.jobs[job_id].as_dict()

    return router


def _document_source(body: AddDocument, config):
    """(file name, bytes) for uploaded content, or a Path inside the roots; anything else is refused."""
    given = [x for x in (body.content_base64, body.text, body.path) if x is not None]
    if len(given) != 1:
        raise ApiError(422, "invalid_request", "give exactly one of content_base64, text or path")
    if body.path is not None:
        if not config.roots:
            raise ApiError(403, "forbidden", "adding by server path is off: the server has no --root folders")
        path = Path(body.path).expanduser().resolve()
        if not any(path.is_relative_to(root.resolve()) for root in config.roots):
            raise ApiError(403, "forbidden", f"{body.path}: outside the configured roots")
        if not path.is_file():
            raise ApiError(404, "not_found", f"{body.path}: no such file under the roots")
        return path
    name = body.filename or ""
    if not name or name != Path(name).name or name.startswith(".") or "\\" in name or "\x00" in name:
        raise ApiError(422, "invalid_request", f"filename {name!r}: a plain file name is needed (no folders)")
    if not format_of(Path(name)):
        raise ApiError(415, "unsupported", f"{name}: not a supported format (.txt, .md, .rst, .html, .pdf)")
    if body.text is not None:
        content = body.text.encode("utf-8")
    else:
        try:
            content = base64.b64decode(body.content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, "invalid_request", "content_base64 is not valid base64") from None
    if len(content) > config.settings.max_file_bytes:
        raise ApiError(413, "too_large", f"{name}: over {config.settings.max_file_bytes} bytes")
    return name, content
