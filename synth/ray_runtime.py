"""The Ray runtime synth uses: one `init_ray` for the pipeline, the curation commands and
the tests (a module of its own, so that stages do not import the pipeline runner)."""

from __future__ import annotations

import os


def init_ray(address: str | None = None):
    import ray

    if ray.is_initialized():
        return
    kwargs: dict = {"namespace": "synth", "ignore_reinit_error": True, "include_dashboard": False,
                    "logging_level": "warning",
                    "log_to_driver": os.environ.get("SYNTH_RAY_LOGS", "0") == "1"}
    if address:
        import synth

        kwargs["address"] = address
        # Ship this package to workers of an existing cluster that may not have it installed.
        kwargs["runtime_env"] = {"py_modules": [synth]}
    ray.init(**kwargs)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows its own progress bar
    ctx.print_on_execution_start = False
