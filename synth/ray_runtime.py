"""The Ray runtime synth uses: one `init_ray` for the pipeline, the curation commands and
the tests (a module of its own, so that stages do not import the pipeline runner)."""

from __future__ import annotations

import os

# Object-store settings the workers need to read and write the same URIs as the driver
# (synth.io.shards): the standard AWS and Google Cloud variables.
STORAGE_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID",
               "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
               "AWS_PROFILE", "GOOGLE_APPLICATION_CREDENTIALS")


def storage_env() -> dict[str, str]:
    """The `STORAGE_ENV` variables set in this process."""
    return {k: os.environ[k] for k in STORAGE_ENV if os.environ.get(k)}


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
        # Ship this package to workers of an existing cluster that may not have it installed,
        # and the object-store settings (a local Ray's workers inherit this process's env).
        kwargs["runtime_env"] = {"py_modules": [synth]}
        if storage_env():
            kwargs["runtime_env"]["env_vars"] = storage_env()
    ray.init(**kwargs)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows its own progress bar
    ctx.print_on_execution_start = False
