"""Shared CLI pieces: the console, the --index option, JSON output and error handling."""
from __future__ import annotations

import functools
import json
import os
import sqlite3
import sys
from pathlib import Path

import typer
from rich.console import Console

from ..errors import LongdocError, storage_error

console = Console()
err_console = Console(stderr=True)

IndexOption = typer.Option(Path(os.environ.get("LONGDOC_INDEX", "longdoc-index")), "--index", "-i",
                           help="Index directory (env LONGDOC_INDEX).")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def friendly_errors(fn):
    """Turn our errors into one line on stderr and exit code 1; no traceback for user mistakes."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LongdocError as e:
            err_console.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)  # one line, paths unbroken
            raise typer.Exit(1) from None
        except OSError as e:  # a full disk or a missing permission met outside the index's own writes
            error = storage_error(e.filename or "a file", e)
            if error is None:
                raise
            err_console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except sqlite3.DatabaseError as e:  # a catalog damaged past what opening it checks
            from ..storage.catalog import CATALOG_FILE, damaged

            index = kwargs.get("index_dir")
            cause = damaged(Path(index) / CATALOG_FILE, e) if index else f"an index catalog is damaged ({e})"
            err_console.print(f"[red]error:[/] {cause}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper
