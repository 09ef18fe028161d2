"""`synth inspect PATH`: schema, counts, per-column stats and sample rows (see synth/inspect.py)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from synth.cli.common import user_errors


def inspect(
    path: Annotated[str, typer.Argument(help="A shard, or a folder of shards (part-*.parquet, else *.parquet); "
                                        "a local path or a URI (s3://bucket/out, gs://..., file://...).")],
    columns: Annotated[
        list[str] | None,
        typer.Option("--columns", "-c", help="Only these columns: comma-separated or repeated, e.g. -c id,response."),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(help="Keep rows matching this SQL expression (DuckDB), e.g. \"finish_reason = 'length'\"."),
    ] = None,
    head: Annotated[int, typer.Option("--head", "-n", min=0, help="Number of sample rows to show.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    full: Annotated[bool, typer.Option(
        "--full", help="Show sample values whole (texts are cut at 200 characters and lists summarized otherwise).")] = False,
    skip_bad_inputs: Annotated[bool, typer.Option(
        "--skip-bad-inputs", help="Leave out unreadable or corrupt shards (listed in the output).")] = False,
) -> None:
    """Schema, row and shard counts, per-column stats, verdict counts and sample rows of shards."""
    from synth.inspect import inspect_shards

    wanted = [c.strip() for opt in columns or [] for c in opt.split(",") if c.strip()]
    with user_errors():
        report = inspect_shards(path, columns=wanted or None, where=where, head=head,
                                skip_bad=skip_bad_inputs, full=full)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    _print_report(report, where)


def _print_report(report: dict[str, Any], where: str | None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    shards = f"{report['shards']} shard{'s' if report['shards'] != 1 else ''}"
    rows = f"{report['rows']} rows"
    if where:
        rows = f"{report['rows']} of {report['total_rows']} rows match --where {where}"
    console.print(Text(f"{report['path']}: {shards}, {rows}", style="bold"))
    for s in report.get("skipped", []):
        console.print(Text(f"skipped {s['path']}: {s['reason']}"), soft_wrap=True)

    t = Table(title="columns", title_justify="left")
    for header in ("column", "type", "nulls", "min / mean / max", "values"):
        t.add_column(header, overflow="fold")  # fold, not "…": a name or value is never cut
    for name, s in report["columns"].items():
        t.add_row(Text(name), Text(s["type"]), str(s["nulls"]), Text(_range(s)), Text(_values(s.get("distinct"))))
    console.print(t)

    for name, counts in report["verdicts"].items():
        total = sum(counts.values()) or 1
        parts = ", ".join(f"{v or chr(39) * 2} {n} ({100 * n / total:.1f}%)" for v, n in counts.items())
        console.print(Text(f"{name}: {parts or '(no rows)'}"))

    for i, row in enumerate(report["sample"], 1):
        grid = Table(show_header=False, title=f"row {i}", title_justify="left", box=None, padding=(0, 1))
        grid.add_column(style="cyan", no_wrap=True)
        grid.add_column(overflow="fold")
        for k, v in row.items():
            grid.add_row(Text(k), Text(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)))
        console.print(grid)


def _range(s: dict[str, Any]) -> str:
    for lo, avg, hi, prefix in (("min_len", "mean_len", "max_len", "len "), ("min", "mean", "max", "")):
        if hi in s:
            if s[hi] is None:  # no non-null values
                return "-"
            return f"{prefix}{s[lo]} / {s[avg]} / {s[hi]}" if avg in s else f"{s[lo]} / {s[hi]}"
    return ""


def _values(distinct: dict[str, int] | None, limit: int = 120) -> str:
    if distinct is None:
        return ""
    text = ", ".join(f"{v or chr(39) * 2} ({n})" for v, n in distinct.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"
