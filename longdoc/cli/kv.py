"""`longdoc kv stats|clear`: the reader's per-chunk KV store of an index."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .common import IndexOption, JsonOption, console, friendly_errors, human_bytes, print_json

kv_app = typer.Typer(help="The reader's per-chunk KV store (Block-Attention).", no_args_is_help=True)


@kv_app.command("stats")
@friendly_errors
def stats(index_dir: Path = IndexOption, json_out: bool = JsonOption):
    """Entries and bytes per reader, and the size bound."""
    from ..index import open_index

    with open_index(index_dir) as ix:
        info = ix.kv_store().stats()
    if json_out:
        return print_json(info)
    table = Table("reader", "entries", "size")
    for name, r in sorted(info["readers"].items()):
        table.add_row(name, str(r["entries"]), human_bytes(r["bytes"]))
    console.print(table)
    console.print(f"{info['entries']} entries, {human_bytes(info['bytes'])} of {human_bytes(info['max_bytes'])}",
                  highlight=False)


@kv_app.command("clear")
@friendly_errors
def clear(index_dir: Path = IndexOption, json_out: bool = JsonOption):
    """Delete every cached KV entry of the index (they are recomputed on use)."""
    from ..index import open_index

    with open_index(index_dir) as ix:
        removed = ix.kv_store().clear()
    if json_out:
        return print_json({"removed": removed})
    console.print(f"removed {removed} KV entries", highlight=False)
