"""Helpers shared by the commands."""

from __future__ import annotations

import contextlib
import sys

import typer

from synth.errors import SynthError


# Set by `synth.cli.main` (the `synth` command): the process is ours to end.
STANDALONE = False


def exit_interrupted(message: str):
    """After Ctrl-C: say `message` (how to resume) and exit 130. In the `synth` command the
    process ends at once (`os._exit`, after flushing): unwinding through Ray's driver after an
    interrupt can crash it (SIGSEGV, about one Ctrl-C in five while a dataflow starts), and
    what is on disk is SIGKILL-safe by design (a local Ray's processes end with the driver).
    Elsewhere (in-process callers, tests) a normal `typer.Exit(130)`."""
    typer.echo(message, err=True)
    if STANDALONE:
        import os

        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(130)
    raise typer.Exit(130)


@contextlib.contextmanager
def user_errors():
    """Turn a `SynthError` into one line on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except SynthError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        exit_interrupted("interrupted")


def stderr_console():
    from rich.console import Console

    return Console(stderr=True, force_terminal=None if sys.stderr.isatty() else False)
