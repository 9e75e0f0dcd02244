"""The web page: one HTML page, its script and its style sheet, all shipped inside the package (no build
step, no CDN: it works offline). The page asks for the token once and sends it as a bearer header to the
same /v1 routes any client uses; it never puts it in a URL.

Every response here carries a Content-Security-Policy that allows scripts, styles and requests from this
origin only and no inline script, so a document's text can never run as code even if it reached the page
as markup (the page itself only ever sets text)."""
from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from .errors import ApiError

ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8"}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> Response:
    body = resources.files(__package__).joinpath("ui", name).read_bytes()
    return Response(body, media_type=ASSETS[name], headers=HEADERS)


def ui_routes() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def page():
        return _asset("index.html")

    @router.get("/ui/{name}")
    def asset(name: str):
        if name not in ASSETS:
            raise ApiError(404, "not_found", f"no asset {name!r}")
        return _asset(name)

    return router
