"""`longdoc models list|pull` and `longdoc data pull`."""
from __future__ import annotations

import typer
from rich.table import Table

from .common import JsonOption, console, friendly_errors, print_json

models_app = typer.Typer(help="Models known by name, and fetching them for offline use.", no_args_is_help=True)
data_app = typer.Typer(help="Corpora shipped inside PyPI packages.", no_args_is_help=True)


@models_app.command("list")
@friendly_errors
def list_models(json_out: bool = JsonOption):
    """Known models, whether they are ready offline, and where they come from."""
    from ..models import list_models as rows

    models = rows()
    if json_out:
        return print_json(models)
    table = Table("name", "kind", "ready", "where", "source")
    for m in models:
        table.add_row(m["name"], m["kind"], "yes" if m["ready"] else "no", m["where"], m["source"])
    console.print(table)


@models_app.command("pull")
@friendly_errors
def pull(name: str = typer.Argument(..., help="A known model name or a .gguf file.")):
    """Fetch and convert a model so it loads offline."""
    from ..models import pull_model

    console.print(f"{name}: ready at {pull_model(name)}", highlight=False)


@data_app.command("pull")
@friendly_errors
def pull_data(name: str = typer.Argument("paul-graham-essays")):
    """Fetch a corpus into the cache and print its directory."""
    from ..evaluation.corpora import corpus_path

    print(corpus_path(name))
