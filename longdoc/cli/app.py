"""The `longdoc` command: thin wrappers that parse, call the Python API and print."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import IndexOption, JsonOption, console, friendly_errors, human_bytes, print_json
from .docs import docs_app
from .models import data_app, models_app
from .ask import ask, read
from .evaluate import eval_app
from .kv import kv_app
from .search import search
from .serve import serve

app = typer.Typer(help="Index long documents, search them and ask questions with citations.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(docs_app, name="docs")
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")
app.add_typer(kv_app, name="kv")
app.command()(search)
app.command()(ask)
app.command()(read)
app.command()(serve)


@app.command()
@friendly_errors
def index(
    paths: list[Path] = typer.Argument(..., help="Files or directories (txt, md, rst, html, pdf)."),
    index_dir: Path = IndexOption,
    prune: bool = typer.Option(False, "--prune", help="Remove indexed documents under PATHS whose files are gone."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings TOML file."),
    embedder: Optional[str] = typer.Option(None, help="Embedder: packaged name, HF id or local dir."),
    chunk_tokens: Optional[int] = typer.Option(None, help="Tokens per chunk."),
    chunk_overlap: Optional[int] = typer.Option(None, help="Overlap between chunks, in tokens."),
    batch_size: Optional[int] = typer.Option(None, help="Embedding batch size."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    kv: bool = typer.Option(False, "--kv", help="Also compute the reader's KV for every chunk now (else on first use)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Parse and embed on Ray: a cluster address, or 'local'."),
    json_out: bool = JsonOption,
):
    """Index files incrementally: unchanged files are skipped, changed ones replaced."""
    from ..config import load_settings, settings_requested
    from ..indexing.pipeline import index_paths

    explicit = dict(embedder=embedder, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap,
                    batch_size=batch_size, device=device)
    settings = load_settings(config, **explicit) if settings_requested(config, **explicit) else None
    engine = None
    if ray:
        from ..distributed.indexing import RayEngine

        engine = RayEngine(ray)
    report = index_paths(index_dir, paths, settings, prune=prune, progress=not json_out, engine=engine)
    kv_computed = fill_kv(index_dir, settings, progress=not json_out) if kv else None
    if json_out:
        return print_json({**report.as_dict(), **({"kv_computed": kv_computed} if kv else {})})
    console.print(
        f"[bold]{report.index}[/]: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.removed} removed, {report.skipped} skipped; {report.chunks_embedded} chunks embedded "
        f"in {report.seconds:.1f}s", highlight=False)
    for path, reason in report.skipped_files:
        console.print(f"  skipped {path}: {reason}", highlight=False, markup=False)
    if kv:
        console.print(f"reader KV computed for {kv_computed} chunks", highlight=False)


def fill_kv(index_dir: Path, settings, progress: bool) -> int:
    """The reader's KV for every chunk the store lacks, with a progress bar."""
    from rich.progress import Progress

    from ..index import open_index

    with open_index(index_dir, settings=settings) as ix:
        total = ix.status()["chunks"]
        with Progress(console=console, disable=not progress, transient=True) as bar:
            task = bar.add_task("reader KV", total=total)
            return ix.fill_kv(lambda n: bar.advance(task, n))


@app.command()
@friendly_errors
def status(index_dir: Path = IndexOption, json_out: bool = JsonOption):
    """Documents, chunks, size, models and the last run of an index."""
    from ..index import open_index

    with open_index(index_dir) as ix:
        info = ix.status()
    if json_out:
        return print_json(info)
    table = Table(show_header=False, box=None)
    run = info.pop("last_run") or {}
    info["size_bytes"] = human_bytes(info["size_bytes"])
    info["source_bytes"] = human_bytes(info["source_bytes"])
    for key, value in info.items():
        table.add_row(key.replace("_", " "), str(value))
    if run:
        table.add_row("last run", f"{run['finished_at'] or run['started_at']} ({run['status']}): {run['added']} added, "
                      f"{run['updated']} updated, {run['removed']} removed, {run['skipped']} skipped")
    console.print(table)


@app.command()
@friendly_errors
def doctor(index_dir: Path = IndexOption, repair: bool = typer.Option(
        False, "--repair", help="Rewrite damaged or stale vector files from the catalog."), json_out: bool = JsonOption):
    """Check every stored file of an index (catalog, vector files, KV entries); exit 1 if anything is wrong."""
    from ..index import open_index

    with open_index(index_dir) as ix:
        report = ix.check(repair=repair)
    if json_out:
        print_json(report)
    else:
        console.print(f"catalog: {report['catalog'] if report['catalog'] == 'ok' else 'DAMAGED'}; vector files: "
                      f"{'ok' if report['vector_files'] == 'ok' else report['vector_files'] or 'none yet'}; KV entries: "
                      f"{report['kv_entries_checked']} checked, {report['kv_entries_damaged_and_deleted']} damaged "
                      f"and deleted", highlight=False)
        for problem in report["problems"]:
            console.print(f"[red]problem:[/] {problem}", highlight=False)
    if report["problems"]:
        raise typer.Exit(1)


def quiet_libraries() -> None:
    """Library warnings and progress bars are for developers, not for a person at the terminal: longdoc
    reports what matters itself. LONGDOC_DEBUG=1 shows them."""
    import os
    import warnings

    if os.environ.get("LONGDOC_DEBUG"):
        return
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main():
    quiet_libraries()
    app()
