"""`longdoc search`: a readable table, or JSON."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from .common import IndexOption, JsonOption, console, friendly_errors, print_json

_WORD = re.compile(r"\w{3,}")
_STOP = {"the", "and", "for", "are", "was", "what", "who", "how", "why", "when", "which", "with", "that", "this",
         "from", "does", "did", "has", "have", "into", "its", "his", "her", "their", "about"}


def snippet(text: str, query: str, width: int = 220) -> Text:
    """A window of the hit around the first query term, with the query's terms highlighted."""
    terms = [t for t in dict.fromkeys(w.lower() for w in _WORD.findall(query)) if t not in _STOP]
    flat = " ".join(text.split())
    first = min((m.start() for t in terms for m in [re.search(rf"\b{re.escape(t)}", flat, re.I)] if m), default=0)
    start = max(0, first - width // 3)
    piece = ("…" if start else "") + flat[start:start + width] + ("…" if start + width < len(flat) else "")
    out = Text(piece)
    for t in terms:
        out.highlight_regex(rf"(?i)\b{re.escape(t)}\w*", "bold yellow")
    return out


@friendly_errors
def search(
    query: str = typer.Argument(..., help="What to look for."),
    index_dir: Path = IndexOption,
    k: int = typer.Option(10, "-k", help="How many results."),
    mode: Optional[str] = typer.Option(None, help="hybrid (default), dense, multihead or bm25."),
    doc: list[str] = typer.Option([], "--doc", help="Only these documents (paths as indexed); repeatable."),
    path_glob: Optional[str] = typer.Option(None, "--path", help="Only documents whose path matches this glob."),
    section: Optional[str] = typer.Option(None, help="Only chunks under a heading containing this text."),
    per: str = typer.Option("chunk", help="chunk, or document: the best chunk of each document."),
    context: int = typer.Option(0, help="Merge N neighbouring chunks on each side into each hit."),
    rerank: Optional[str] = typer.Option(None, help="Rerank with this cross-encoder (local dir or hub id)."),
    json_out: bool = JsonOption,
):
    """Search an index: hybrid fusion of dense and BM25 retrieval by default. A query of three or more
    sentences is searched whole and sentence by sentence, and in an index built with head vectors its
    multi-head votes join the fusion (weight_multihead_aspects; weight_multihead for other queries)."""
    from ..index import open_index
    from ..retrieval import Filters

    with open_index(index_dir) as ix:
        hits = ix.search(query, k=k, mode=mode, per=per, context=context, rerank=rerank,
                         filters=Filters(documents=tuple(doc), path_glob=path_glob, section=section))
    if json_out:
        return print_json([h.as_dict() for h in hits])
    table = Table("#", "document", "section", "passage", "score", "ranks", show_lines=True)
    for n, h in enumerate(hits, 1):
        where = Path(h.path).name + (f" p.{h.page}" if h.page else "")
        ranks = " ".join(f"{m}:{r}" for m, r in h.ranks.items())
        table.add_row(str(n), where, " > ".join(h.section), snippet(h.text, query), f"{h.score:.3f}", ranks)
    console.print(table)
    if not hits:
        console.print("no results", highlight=False)
