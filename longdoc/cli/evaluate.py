"""`longdoc eval run | report | datasets`: the evaluation runner, its reports, and the dataset registry."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .common import console, friendly_errors

eval_app = typer.Typer(help="Evaluate retrieval, question answering and long context on standard datasets.",
                       no_args_is_help=True)


def _list(text: Optional[str], convert=str):
    if text is None:
        return None
    try:
        return [convert(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected a comma-separated list, got {text!r}") from None


@eval_app.command("run")
@friendly_errors
def run(
    config: Optional[Path] = typer.Argument(None, help="Eval config TOML (see `longdoc.evaluation.run_config`). "
                                                       "Flags override its keys."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Comma-separated datasets (`longdoc eval "
                                                                        "datasets` lists them)."),
    limit: Optional[int] = typer.Option(None, help="Questions per dataset (the corpus stays whole)."),
    modes: Optional[str] = typer.Option(None, help="Retrieval modes scored (default dense,bm25,hybrid)."),
    k: Optional[str] = typer.Option(None, "-k", help="Retrieval cut-offs (default 1,5,20)."),
    attention: Optional[str] = typer.Option(None, help="Reader backends to answer with: full, block, block-rN, "
                                                       "landmark, retrieval (default: none, retrieval only)."),
    qa_k: Optional[str] = typer.Option(None, "--qa-k", help="Passages per question for the reader (default 5)."),
    qa_modes: Optional[str] = typer.Option(None, "--qa-modes", help="Retrieval modes feeding the reader (default hybrid)."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Answer from this index (datasets without passages)."),
    seed: Optional[int] = typer.Option(None, help="Seed (sampled datasets, needle keys, torch)."),
    name: Optional[str] = typer.Option(None, help="Label of this run in reports."),
    workdir: Optional[Path] = typer.Option(None, help="Where corpus files and indexes live (reused across runs)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Answer on Ray actors: a cluster address, or 'local'."),
    out: Path = typer.Option(Path("eval-results.db"), "--out", "-o", help="Results file (SQLite); a re-run resumes it."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Run the grid dataset x mode x attention x k; every scored question is stored at once, so a
    killed run resumes where it stopped."""
    import sys

    from ..evaluation.run_config import load_eval_config
    from ..evaluation.runner import run_eval

    datasets = _list(dataset)
    if datasets and index_dir:
        datasets = [{"name": d, "index": str(index_dir)} for d in datasets]
    cfg = load_eval_config(config, datasets=datasets, limit=limit, seed=seed, name=name, ray=ray,
                           workdir=str(workdir) if workdir else None,
                           **{"retrieval.modes": _list(modes), "retrieval.k": _list(k, int),
                              "qa.attention": _list(attention), "qa.k": _list(qa_k, int), "qa.modes": _list(qa_modes)})
    counts = run_eval(cfg, out, ["longdoc", *sys.argv[1:]], progress=not quiet)
    console.print(f"{out}: {counts['scored']} results scored now, {counts['skipped']} already there "
                  f"(run {counts['run_id']}); `longdoc eval report {out}` writes the report", highlight=False,
                  soft_wrap=True)


@eval_app.command("report")
@friendly_errors
def report(
    results: List[Path] = typer.Argument(..., help="Results files from `longdoc eval run` (several: compared)."),
    out: Path = typer.Option(Path("eval-report"), "--out", "-o", help="Folder for report.md, report.html and PNGs."),
    resamples: int = typer.Option(2000, help="Bootstrap resamples for the confidence intervals."),
):
    """Markdown and HTML report with plots: recall@k, QA scores with CIs, needle heatmap, latency."""
    from ..evaluation.reports import write_report

    written = write_report(results, out, resamples)
    for path in written.values():
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


@eval_app.command("datasets")
@friendly_errors
def datasets():
    """The datasets the runner knows, whether each is here offline, and how to fetch the rest."""
    from rich.markup import escape

    from ..evaluation.registry import dataset_table

    table = Table(title="Evaluation datasets")
    for column in ("name", "about", "offline", "how to get it"):
        table.add_column(column)
    for row in dataset_table():
        style = {"here": "green", "not fetched": "yellow"}.get(row["offline"], "")
        table.add_row(escape(row["name"]), escape(row["about"]),
                      f"[{style}]{row['offline']}[/]" if style else row["offline"], escape(row["fetch"]))
    console.print(table)
