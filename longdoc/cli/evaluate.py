"""`longdoc eval retrieval` (QA and the full runner come with later issues)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import console, friendly_errors

eval_app = typer.Typer(help="Evaluate retrieval (and later QA) on standard datasets.", no_args_is_help=True)


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


@eval_app.command("retrieval")
@friendly_errors
def retrieval(
    dataset: str = typer.Option("quoref", help="quoref, quoref-multiaspect, quoref:PATH or beir:PATH."),
    modes: str = typer.Option("dense,multihead,bm25,hybrid", help="Comma-separated search modes."),
    k: str = typer.Option("1,5,20", "-k", help="Comma-separated cut-offs."),
    limit: Optional[int] = typer.Option(None, help="Evaluate the first N questions (the corpus stays whole)."),
    workdir: Optional[Path] = typer.Option(None, help="Where the corpus files and index live (reused)."),
    out: Optional[Path] = typer.Option(None, help="JSON result file (default eval-retrieval-<dataset>.json)."),
    seed: int = typer.Option(0, help="Seed for sampled datasets (multi-aspect pairs)."),
):
    """Index a dataset's corpus (or reuse it) and compare search modes side by side."""
    import sys

    from ..evaluation.report import run_record
    from ..evaluation.retrieval_eval import evaluate_retrieval, load_dataset
    from ..models.cache import cache_dir

    data = load_dataset(dataset, limit, seed)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in dataset)[:60]
    corpus = "".join(c if c.isalnum() or c in "-_" else "_" for c in data.corpus_name)[:60]
    workdir = workdir or cache_dir("eval", corpus)
    result = evaluate_retrieval(data, workdir, [m.strip() for m in modes.split(",")], _ints(k))
    record = {**run_record(["longdoc", *sys.argv[1:]]), "seed": seed, **result}
    out = out or Path(f"eval-retrieval-{safe}.json")
    out.write_text(json.dumps(record, indent=2) + "\n")
    metrics = list(next(iter(result["modes"].values())))
    table = Table(title=f"{result['dataset']}: {result['queries']} queries over {result['documents']} documents "
                        f"({result['chunks']} chunks)")
    table.add_column("metric")
    for mode in result["modes"]:
        table.add_column(mode, justify="right")
    for metric in metrics:
        values = [result["modes"][m][metric] for m in result["modes"]]
        best = max(values)
        table.add_row(metric, *[f"[bold]{v:.3f}[/]" if v == best else f"{v:.3f}" for v in values])
    console.print(table)
    console.print(f"wrote {out}", highlight=False)
