"""`longdoc docs list|remove`."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .common import IndexOption, JsonOption, console, friendly_errors, human_bytes, print_json

docs_app = typer.Typer(help="List or remove indexed documents.", no_args_is_help=True)


@docs_app.command("list")
@friendly_errors
def list_docs(index_dir: Path = IndexOption, json_out: bool = JsonOption):
    """Every indexed document with its size and chunk count."""
    from ..index import open_index

    with open_index(index_dir) as ix:
        docs = ix.documents()
    if json_out:
        return print_json(docs)
    table = Table("id", "path", "title", "format", "size", "chunks", "indexed")
    for d in docs:
        table.add_row(str(d["id"]), d["path"], d["title"] or "", d["format"], human_bytes(d["bytes"] or 0),
                      str(d["n_chunks"]), d["indexed_at"])
    console.print(table)


@docs_app.command("remove")
@friendly_errors
def remove_docs(paths: list[str] = typer.Argument(..., help="Document paths as listed."),
                index_dir: Path = IndexOption, json_out: bool = JsonOption):
    """Remove documents (their chunks and vectors) from the index."""
    from ..indexing.pipeline import remove_documents

    removed = remove_documents(index_dir, paths)
    if json_out:
        return print_json({"removed": removed})
    for p in removed:
        console.print(f"removed {p}", highlight=False)
    if not removed:
        console.print("no matching documents", highlight=False)
        raise typer.Exit(1)
