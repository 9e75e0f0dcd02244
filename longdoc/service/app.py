"""The HTTP service over one index (FastAPI, OpenAPI at /openapi.json and /docs).

- GET /healthz (alive), GET /readyz (models loaded and index open), both without a token;
- POST /v1/search, POST /v1/ask (`"stream": true` answers as server-sent events);
- GET /v1/status, GET /v1/documents, POST /v1/documents (uploaded content, or a path inside the
  configured roots), DELETE /v1/documents/{id}, GET /v1/jobs/{id}.

Every /v1 route needs `Authorization: Bearer <token>`. Bodies are capped, requests are timed out, and
every error is JSON ({"error": {"code", "message"}}) with no stack trace. Models load once, in the
background at start-up, and are shared by every request; concurrent queries share one embedder pass
(batching.py); writes go to one writer thread (jobs.py) while searches go on."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import ATTENTIONS, Settings
from ..errors import LongdocError, StorageError
from ..retrieval import MODES, Filters
from ..storage.catalog import CATALOG_FILE, damaged
from .batching import BatchingEncoder
from .documents import document_routes
from .errors import ApiError, error_response
from .jobs import Writer
from .ui import ui_routes

log = logging.getLogger("longdoc.service")


@dataclass(frozen=True)
class ServiceConfig:
    index: Path
    token: str | None  # None only for --insecure-local on 127.0.0.1
    settings: Settings = field(default_factory=Settings)
    roots: tuple[Path, ...] = ()  # server folders documents may be added from by path
    max_request_bytes: int = 16 * 2**20
    timeout_s: float = 120.0
    max_k: int = 100


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(10, ge=1)
    mode: Optional[Literal[tuple(MODES)]] = None  # type: ignore[valid-type]
    per: Literal["chunk", "document"] = "chunk"
    context: int = Field(0, ge=0, le=5)
    filters: Optional[dict] = None

    @field_validator("filters")
    @classmethod
    def _known_filters(cls, value):  # refused as a 422 like any other field, not later in the search
        if value is not None:
            try:
                Filters.from_dict(value)
            except LongdocError as e:
                raise ValueError(str(e)) from None
        return value


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=2000)
    k: Optional[int] = Field(None, ge=1)
    attention: Optional[Literal[tuple(ATTENTIONS)]] = None  # type: ignore[valid-type]
    mode: Optional[Literal[tuple(MODES)]] = None  # type: ignore[valid-type]
    max_new_tokens: Optional[int] = Field(None, ge=1, le=512)
    stream: bool = False


class BodyLimit:
    """Refuse bodies over the cap: by Content-Length at once, else by reading (a chunked body) up to
    the cap before the app sees any of it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = error_response(413, "too_large", f"request body over {self.limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.limit:
                return await too_large(scope, receive, send)
            return await self.app(scope, receive, send)  # the server holds it to the declared length
        body, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            body.append(message.get("body", b""))
            more = message.get("more_body", False)
            if sum(map(len, body)) > self.limit:
                return await too_large(scope, receive, send)
        replay = [{"type": "http.request", "body": b"".join(body), "more_body": False}]

        async def buffered():
            return replay.pop() if replay else await receive()

        await self.app(scope, buffered, send)


class Service:
    """What the routes share: the index, the batched encoder, the reader lock and the writer."""

    def __init__(self, config: ServiceConfig):
        from ..index import open_index

        self.config = config
        self.index = open_index(config.index, settings=config.settings)
        catalog = self.index.catalog
        problems = catalog.integrity()  # nothing is served from a damaged catalog (vector files: search repairs)
        if problems:
            self.index.close()
            raise damaged(catalog.index_dir / CATALOG_FILE, "; ".join(problems[:3]))
        self.reader_lock = threading.Lock()
        self.asks = {"answered": 0, "abandoned": 0}  # abandoned: streams whose client left before the answer
        self.writer = Writer()
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.encoder: BatchingEncoder | None = None
        threading.Thread(target=self._load, name="longdoc-load", daemon=True).start()

    def _load(self) -> None:
        try:
            self.encoder = BatchingEncoder(self.index.embedder)
            self.index._embedder = self.encoder  # search encodes through the batcher
            self.index.vectors  # noqa: B018 - FAISS loaded and in sync before the first query
            self.index.reader  # noqa: B018
            self.ready.set()
        except Exception as e:  # noqa: BLE001 - readyz reports it
            self.load_error = str(e)
            log.error("loading models failed: %s", e)

    def search(self, query: str, **kwargs):
        if (kwargs.get("mode") or self.index.settings.search.mode) != "bm25":  # bm25 needs no embedding
            self.encoder.encode([query])  # batched with concurrent queries, outside the index lock
        with self.index.lock:
            return self.index.search(query, **kwargs)

    def require_ready(self) -> None:
        if not self.ready.is_set():
            raise ApiError(503, "not_ready", self.load_error or "models are still loading; retry shortly")


def create_app(config: ServiceConfig) -> FastAPI:
    service = Service(config)
    app = FastAPI(title="longdoc", version="0.1.0",
                  description="Search and question answering over long documents, with citations.")
    app.state.service = service

    @app.exception_handler(ApiError)
    async def api_error(request, e: ApiError):
        return error_response(e.status, e.code, e.message, e.headers)

    @app.exception_handler(LongdocError)
    async def longdocerror_response(request, e: LongdocError):
        if isinstance(e, StorageError):  # the server's disk or permissions, not the request
            return error_response(507 if e.full else 500, "storage", str(e))
        return error_response(400, "bad_request", str(e))

    @app.exception_handler(RequestValidationError)
    async def invalid(request, e: RequestValidationError):
        problems = ["request body is not valid JSON" if err["type"] == "json_invalid" else
                    f"{'.'.join(str(p) for p in err['loc'][1:]) or 'body'}: {err['msg']}" for err in e.errors()]
        return error_response(422, "invalid_request", "; ".join(problems)[:1000])

    @app.exception_handler(StarletteHTTPException)
    async def httperror_response(request, e: StarletteHTTPException):
        return error_response(e.status_code, "http_error", str(e.detail))

    @app.exception_handler(Exception)
    async def internal(request, e: Exception):
        log.exception("internal error on %s", request.url.path)
        return error_response(500, "internal", "internal error; see the server log")

    def authorized(request: Request) -> None:
        if config.token is None:
            return
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), config.token.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

    async def timed(fn, *args, **kwargs):
        try:
            return await asyncio.wait_for(run_in_threadpool(fn, *args, **kwargs), config.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"request took over {config.timeout_s:g} s") from None

    def check_k(k: int | None) -> None:
        if k is not None and k > config.max_k:
            raise ApiError(422, "invalid_request", f"k: at most {config.max_k}")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz():
        if not service.ready.is_set():
            return error_response(503, "not_ready", service.load_error or "loading models")
        return {"status": "ready", "index": str(config.index)}

    @app.get("/v1/status", dependencies=[Depends(authorized)])
    def status():
        enc = service.encoder
        return {**service.index.status(), "ready": service.ready.is_set(), "jobs_pending": service.writer.pending(),
                "asks": dict(service.asks),
                "query_batches": {"batches": enc.batches, "queries": enc.queries} if enc else None}

    @app.post("/v1/search", dependencies=[Depends(authorized)])
    async def search(body: SearchRequest):
        service.require_ready()
        check_k(body.k)
        hits = await timed(service.search, body.query, k=body.k, mode=body.mode, per=body.per,
                           context=body.context, filters=body.filters)
        return {"query": body.query, "hits": [h.as_dict() for h in hits]}

    def answer(body: AskRequest, on_token=None, dropped: threading.Event | None = None):
        hits = service.search(body.question, k=body.k or config.settings.answer.k, mode=body.mode)
        with service.reader_lock:  # one generation at a time on the one reader; it also guards the counts
            try:
                if dropped is not None and dropped.is_set():  # its client left while it waited its turn
                    raise _ClientGone
                result = service.index.answer_hits(body.question, hits, body.attention, None, body.max_new_tokens,
                                                   on_token)
            except _ClientGone:
                service.asks["abandoned"] += 1
                raise
            service.asks["answered"] += 1
            return result

    @app.post("/v1/ask", dependencies=[Depends(authorized)])
    async def ask(body: AskRequest):
        service.require_ready()
        check_k(body.k)
        if not body.stream:
            return (await timed(answer, body)).as_dict()
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        dropped = threading.Event()  # set when the stream ends early: the client disconnected

        def token(piece: str):
            if dropped.is_set():  # stop generating for no one
                raise _ClientGone
            loop.call_soon_threadsafe(events.put_nowait, ("token", {"text": piece}))

        def produce():
            try:
                result = answer(body, token, dropped)
                loop.call_soon_threadsafe(events.put_nowait, ("answer", result.as_dict()))
            except _ClientGone:
                pass  # counted by answer(); there is no one to tell
            except LongdocError as e:
                loop.call_soon_threadsafe(events.put_nowait, ("error", {"code": "bad_request", "message": str(e)}))
            except Exception:  # noqa: BLE001 - the stream ends with an error event, never a trace
                log.exception("streaming ask failed")
                loop.call_soon_threadsafe(events.put_nowait, ("error", {"code": "internal", "message": "internal error"}))

        async def stream():
            worker = loop.run_in_executor(None, produce)
            deadline = loop.time() + config.timeout_s
            try:
                while True:
                    try:
                        kind, data = await asyncio.wait_for(events.get(), max(0.0, deadline - loop.time()))
                    except asyncio.TimeoutError:
                        yield _sse("error", {"code": "timeout", "message": f"over {config.timeout_s:g} s"})
                        return
                    yield _sse(kind, data)
                    if kind != "token":
                        await worker
                        return
            finally:  # also when Starlette cancels the stream because the client went away
                dropped.set()

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    app.include_router(document_routes(service, config, authorized))
    app.include_router(ui_routes())

    return BodyLimit(app, config.max_request_bytes)


class _ClientGone(Exception):
    """The client of a streamed ask disconnected: its generation stops."""


def _sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"
