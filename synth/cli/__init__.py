"""The `synth` command line: thin Typer commands over library functions.

One module per command group, joined here. A `SynthError` prints one line and exits 2.
"""

from __future__ import annotations

import typer

from synth.cli import (curate_cmd, inspect_cmd, model_cmd, report_cmd, run_cmd, serve_cmd, train_cmd,
                       verify_cmd)

app = typer.Typer(
    name="synth",
    help="Generate, verify and curate synthetic training data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(verbose: bool = typer.Option(
        False, "--verbose", "-v",
        help="Also show Ray's and vLLM's own log lines and warnings and the workers' output.")):
    """Generate, verify and curate synthetic training data."""
    if verbose:
        import os

        from synth.ray_runtime import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"  # read by init_ray here and by the workers it starts


app.command("run")(run_cmd.run)
app.command("serve")(serve_cmd.serve)
app.command("inspect")(inspect_cmd.inspect)
app.command("filter")(curate_cmd.filter_)
app.command("dedup")(curate_cmd.dedup)
app.command("decontam")(curate_cmd.decontam)
app.command("report")(report_cmd.report)
app.add_typer(model_cmd.app, name="model")
app.add_typer(verify_cmd.app, name="verify")
app.add_typer(train_cmd.app, name="train")


def main() -> None:
    from synth.cli import common

    from synth import ray_runtime

    common.STANDALONE = True
    ray_runtime.FILTER_NATIVE_STDERR = True
    app()
