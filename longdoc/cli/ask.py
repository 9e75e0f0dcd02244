"""`longdoc ask` (from the index) and `longdoc read` (a whole document): the answer streamed as it is
generated, then its citations with snippets."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .common import IndexOption, JsonOption, console, friendly_errors, print_json
from .search import snippet


@friendly_errors
def ask(
    questions: list[str] = typer.Argument(..., help="The question; several are answered in turn by one "
                                          "loaded reader."),
    index_dir: Path = IndexOption,
    k: Optional[int] = typer.Option(None, "-k", help="Passages to read (default 5)."),
    attention: Optional[str] = typer.Option(None, help="auto (default: block, which reuses cached passage KV, "
                                            "while the passages fit; scan beyond), block, full, scan, landmark "
                                            "or retrieval."),
    recompute_top: Optional[int] = typer.Option(None, "--recompute-top",
                                                help="block: fully re-encode this many best passages."),
    reencode_first: Optional[int] = typer.Option(None, "--reencode-first",
                                                 help="block: re-encode the first N tokens of every passage."),
    reencode_focus: Optional[int] = typer.Option(None, "--reencode-focus",
                                                 help="block: re-encode the matched chunk of the N best passages (default 1; 0: off)."),
    mode: Optional[str] = typer.Option(None, help="Retrieval: hybrid (default), dense, multihead or bm25."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Longest answer, in tokens."),
    reader: Optional[str] = typer.Option(None, help="Reader LLM: packaged name, HF id, local dir or .gguf."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings TOML file."),
    json_out: bool = JsonOption,
):
    """Answer a question from the index, citing the passages the answer drew on."""
    from ..config import load_settings
    from ..index import open_index

    settings = load_settings(config, reader=reader, answer_reencode_first=reencode_first,
                             answer_reencode_focus=reencode_focus)
    answers = []
    with open_index(index_dir, settings=settings) as ix:
        for n, question in enumerate(questions):
            if len(questions) > 1 and not json_out:
                console.print(f"{chr(10) if n else ''}[bold]Q: {escape(question)}[/]", highlight=False)
            answer = ix.ask(question, k=k, attention=attention, recompute_top=recompute_top, mode=mode,
                            max_new_tokens=max_new_tokens, on_token=_stream(json_out))
            if json_out:
                answers.append(answer.as_dict())
            else:
                show_answer(answer, question, json_out)
    if json_out:
        print_json(answers[0] if len(answers) == 1 else answers)


def _stream(json_out: bool):
    """The answer's text is printed as it comes, unless the whole Answer is wanted as JSON."""
    return None if json_out else (lambda piece: (sys.stdout.write(piece), sys.stdout.flush()))


def show_answer(answer, question: str, json_out: bool) -> None:
    """After the streamed text: the citation markers, a table of cited passages, and the timings."""
    if json_out:
        return print_json(answer.as_dict())
    if answer.abstained:
        console.print(answer.text, highlight=False)
        return
    marks = " ".join(f"[{c.number}]" for c in answer.citations if c.marked)
    console.print(f" {marks}" if marks else "", highlight=False, markup=False)
    table = Table(show_lines=False, box=None, pad_edge=False)
    for col in ("", "share", "source", "passage"):
        table.add_column(col)
    for c in answer.citations:
        where = " > ".join(c.section) if c.section else ""
        page = f" p.{c.page}" if c.page else ""
        source = f"{c.path}{page}\n{where}\nchars {c.char_start}-{c.char_end}"
        label = f"[bold][{c.number}][/]" if c.marked else f"[dim]{c.number}[/]"
        table.add_row(label, f"{c.attention:.0%}", source, snippet(c.text, question))
    console.print(table)
    t = answer.timings
    per_token = f", {t['ms_per_token']:.0f} ms/token" if t.get("ms_per_token") else ""
    retrieval = f"retrieval {t['retrieve_s'] * 1000:.0f} ms, " if "retrieve_s" in t else ""
    read = f", {t['keys_read_share']:.1%} of context keys read" if "keys_read_share" in t else ""
    console.print(f"[dim]{answer.attention} attention: {retrieval}first token {t['ttft_s'] * 1000:.0f} ms{per_token}, "
                  f"{t['prompt_tokens']} prompt tokens{read}[/]", highlight=False)


@friendly_errors
def read(
    path: Path = typer.Argument(..., help="The document (txt, md, rst, html, pdf)."),
    question: str = typer.Option(..., "--question", "-q", help="The question."),
    attention: str = typer.Option("auto", help="auto (default: block while the document fits, scan beyond), "
                                  "scan (the sentences the question attends to, segment by segment, read exactly), "
                                  "landmark or retrieval (sparse attention over the whole document), block or full."),
    max_new_tokens: Optional[int] = typer.Option(None, help="Longest answer, in tokens."),
    reader: Optional[str] = typer.Option(None, help="Reader LLM: packaged name, HF id, local dir or .gguf."),
    config: Optional[Path] = typer.Option(None, "--config", help="Settings TOML file."),
    json_out: bool = JsonOption,
):
    """Answer a question over a whole document, with no retrieval stage."""
    from ..config import load_settings
    from ..reader.read import read as read_document

    settings = load_settings(config, reader=reader)
    answer = read_document(path, question, attention, settings, max_new_tokens=max_new_tokens,
                           on_token=_stream(json_out))
    show_answer(answer, question, json_out)
