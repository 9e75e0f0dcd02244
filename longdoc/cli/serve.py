"""`longdoc serve`: the HTTP service over one index."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import LongdocError
from .common import IndexOption, console, friendly_errors


@friendly_errors
def serve(
    index: Path = IndexOption,
    host: str = typer.Option("127.0.0.1", help="Address to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
    insecure_local: bool = typer.Option(False, "--insecure-local", help="No token: only on 127.0.0.1."),
    root: Optional[List[Path]] = typer.Option(None, "--root", help="Server folders documents may be added "
                                                                   "from by path (repeatable); uploads need none."),
    max_request_mb: float = typer.Option(16.0, help="Largest request body, in MiB."),
    timeout: float = typer.Option(120.0, help="Longest a search or answer may take, in seconds."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings TOML file (reader, k, ...)."),
):
    """Serve search, ask (streamed), status and document add/remove over HTTP. Requires a bearer
    token in LONGDOC_API_TOKEN, unless --insecure-local (then only 127.0.0.1 is bound)."""
    import uvicorn

    from ..config import load_settings
    from ..service.app import ServiceConfig, create_app

    token = os.environ.get("LONGDOC_API_TOKEN") or None
    if token is None and not insecure_local:
        raise LongdocError("refusing to serve without a token: set LONGDOC_API_TOKEN, or pass --insecure-local "
                           "to serve without one on 127.0.0.1 only")
    if insecure_local and host not in ("127.0.0.1", "localhost"):
        raise LongdocError(f"--insecure-local serves only on 127.0.0.1, not {host}")
    if token is not None and len(token) < 16:
        raise LongdocError("LONGDOC_API_TOKEN is too short: use at least 16 characters")
    for r in root or []:
        if not r.is_dir():
            raise LongdocError(f"--root {r}: no such folder")
    app = create_app(ServiceConfig(index=index, token=token, settings=load_settings(config),
                                   roots=tuple(r.resolve() for r in root or []),
                                   max_request_bytes=int(max_request_mb * 2**20), timeout_s=timeout))
    console.print(f"longdoc serving {index} on http://{host}:{port} ({'token required' if token else 'no token, local only'})",
                  highlight=False, soft_wrap=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
