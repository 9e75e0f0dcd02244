"""`longdoc eval retrieval` and `longdoc eval qa` (the full runner comes with a later issue)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .common import console, friendly_errors

eval_app = typer.Typer(help="Evaluate retrieval and question answering on standard datasets.", no_args_is_help=True)


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def _safe(name: str) -> str:
    """A file-name-safe form of a dataset name."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60]


@eval_app.command("retrieval")
@friendly_errors
def retrieval(
    dataset: str = typer.Option("quoref", help="quoref, drop, quoref-multiaspect, beir:PATH, squad:PATH, ... "
                                               "(see `longdoc eval qa --help`)."),
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
    safe = _safe(dataset)
    workdir = workdir or cache_dir("eval", _safe(data.corpus_name))
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



@eval_app.command("qa")
@friendly_errors
def qa(
    dataset: str = typer.Option("quoref", help="quoref, drop, minute-mysteries, quoref:PATH, squad:PATH, "
                                               "hotpotqa:PATH, nq-open:PATH, flashrag:PATH or longbench:PATH."),
    attention: str = typer.Option("full,block", help="Comma-separated backends: full, block, block-rN "
                                                     "(block re-encoding the N best passages)."),
    k: int = typer.Option(5, "-k", help="Passages per question."),
    limit: Optional[int] = typer.Option(None, help="Evaluate the first N questions (the corpus stays whole)."),
    workdir: Optional[Path] = typer.Option(None, help="Where the corpus files and index live (reused)."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Answer from this index instead "
                                                                  "(needed for NQ-open and FlashRAG without a corpus)."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Longest answer, in tokens (default 48)."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings TOML file (reader, kv_dtype, ...)."),
    out: Optional[Path] = typer.Option(None, help="JSON result file (default eval-qa-<dataset>.json)."),
):
    """Answer a dataset's questions with each attention backend and compare them side by side."""
    import sys

    from ..config import load_settings
    from ..evaluation.qa_eval import evaluate_qa
    from ..evaluation.report import run_record
    from ..evaluation.retrieval_eval import load_dataset
    from ..models.cache import cache_dir

    data = load_dataset(dataset, limit)
    backends = [b.strip() for b in attention.split(",") if b.strip()]
    settings = load_settings(config)
    result = evaluate_qa(data, workdir or cache_dir("eval", _safe(data.corpus_name)), backends, k, settings,
                         index_dir, max_new_tokens=max_new_tokens)
    record = {**run_record(["longdoc", *sys.argv[1:]]), **result}
    out = out or Path(f"eval-qa-{_safe(dataset)}.json")
    out.write_text(json.dumps(record, indent=2) + "\n")
    table = Table(title=f"{result['dataset']}: {result['questions']} questions, k={k}, reader {result['reader']} "
                        f"(answer in retrieved context: {result['answer_in_context'] or 0:.3f})")
    table.add_column("metric")
    for b in result["backends"]:
        table.add_column(b, justify="right")
    for metric in next(iter(result["backends"].values())):
        values = [result["backends"][b][metric] for b in result["backends"]]
        table.add_row(metric, *["-" if v is None else f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}" for v in values])
    console.print(table)
    console.print(f"wrote {out}", highlight=False)
