"""`synth run CHAIN.yaml`: a chain file (see synth/pipeline/chain.py) runs its steps with progress and
ends with a one-screen summary and the report's path."""

from __future__ import annotations

from pathlib import Path

import typer

from synth.cli.common import exit_interrupted, stderr_console, user_errors


class _Hooks:
    """Progress display for a chain: a header per step, a bar for generation and training."""

    def __init__(self, console):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self._cols = (BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn())
        self._Progress, self._Text = Progress, TextColumn
        self.progress = None
        self.task = None

    def _close(self):
        if self.progress is not None:
            self.progress.stop()
        self.progress = self.task = None

    def step(self, i: int, n: int, step) -> None:
        self._close()
        kind = type(step).__name__.replace("Step", "").lower()
        self.console.print(f"[bold]step {i + 1}/{n}[/bold] {kind} {step.name}")

    def _bar(self, label: str, total: int):
        if self.task is None:
            self.progress = self._Progress(self._Text(f"[bold]{label}"), *self._cols, console=self.console)
            self.progress.start()
            self.task = self.progress.add_task(label, total=total, info="")

    def generation(self, p: dict) -> None:
        self._bar("generating", p["total"])
        rate = p["tokens"] / p["elapsed"] if p["elapsed"] > 0 else 0.0
        self.progress.update(self.task, completed=p["done"],
                             info=f"seeds · {p['tokens']} tokens · {rate:.0f} tok/s")

    def training(self, p: dict) -> None:
        self._bar("training", p["steps"])
        self.progress.update(self.task, completed=p["step"],
                             info=f"steps · {p['tok_per_s']:.0f} tok/s · loss {p['loss']:.3f}")


def run_chain_file(path: Path, *, address: str | None, fresh: bool) -> None:
    from rich.table import Table

    from synth.pipeline.chain import load_chain, run_chain

    console = stderr_console()
    hooks = _Hooks(console)
    from synth.io.lock import output_lock

    with user_errors():
        chain = load_chain(path)
        try:
            with output_lock(chain.out, "synth run"):  # the chain's folder: one chain at a time
                results = run_chain(chain, address=address, hooks=hooks, fresh=fresh)
        except KeyboardInterrupt:
            hooks._close()
            exit_interrupted(f"interrupted; finished work is kept. Resume with: synth run {path}")
        finally:
            hooks._close()
    table = Table(title=f"{chain.name}: {len(results)} steps in {sum(r.elapsed_s for r in results):.0f}s",
                  show_lines=False)
    table.add_column("step")
    table.add_column("result")
    table.add_column("time", justify="right")
    for r in results:
        table.add_row(r.step.name, r.summary, f"{r.elapsed_s:.0f}s")
    from rich.console import Console

    Console(width=max(100, Console().width)).print(table)
    typer.echo(f"outputs: {chain.out}")
    reports = [r.result for r in results if type(r.step).__name__ == "ReportStep"]
    if reports:
        typer.echo(f"report: {reports[-1]}")
