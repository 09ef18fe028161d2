"""The project's own error types.

A `SynthError` is a problem the user can fix (bad input, bad config, missing file): the CLI
prints its message on one line and exits with `exit_code` (2), without a traceback.
`GenerationFailed` is a run that stopped on a failing engine or server: finished shards are
kept, the run can be resumed, the CLI exits 1. `OutputFailed` is a write to the output folder
that the system refused (disk full, quota, I/O error): nothing half-written is left visible,
the CLI exits 1, and a rerun after the cause is fixed resumes. `RayUnavailable` is a Ray
runtime that did not start or could not be reached (exit 1). Anything else is a bug.
"""


class SynthError(Exception):
    """A problem the user can fix; the message says what and how."""

    exit_code = 2


class GenerationFailed(SynthError):
    """Generation stopped part way; the message gives the root cause and how to resume."""

    exit_code = 1


class OutputFailed(SynthError):
    """Writing to the output folder failed (e.g. the disk is full); names the path and the fix."""

    exit_code = 1


class RayUnavailable(SynthError):
    """The local Ray runtime did not start, or the cluster at --address could not be reached."""

    exit_code = 1
