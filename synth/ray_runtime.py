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
    _start(ray, kwargs)
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows its own progress bar
    ctx.print_on_execution_start = False


def _start(ray, kwargs: dict) -> None:
    """`ray.init`, with a failure said in one line with what to do (`RayUnavailable`). A local
    start that timed out (Ray waits a fixed 30 s for its raylet, which a busy machine can
    miss) is tried once more first."""
    for attempt in (1, 2):
        try:
            ray.init(**kwargs)
            return
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # ray.init also exits (SystemExit) when a GCS never answers
            try:
                ray.shutdown()
            except Exception:
                pass
            lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            what = f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")
            timed_out = "timed out" in what.lower()
            if timed_out and attempt == 1 and not kwargs.get("address"):
                continue
            from synth.errors import RayUnavailable

            if kwargs.get("address"):
                raise RayUnavailable(
                    f"could not connect to the Ray cluster at {kwargs['address']} ({what}); "
                    "check the address (`ray status` on the head node) and that this machine "
                    "can reach it") from None
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            hint = (f"the machine is busy (load average {load}): rerun the same command when it "
                    "is quieter, or start Ray once with `ray start --head` and pass "
                    "--address auto") if timed_out else \
                "its logs are under the Ray temp folder (RAY_TMPDIR, default /tmp/ray)"
            raise RayUnavailable(f"Ray did not start on this machine ({what}); {hint}") from None
