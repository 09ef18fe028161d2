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


VERBOSE_ENV = "SYNTH_VERBOSE"
# Set by the `synth` command (not by the library or the tests): keep the driver's C++ log
# lines off the terminal when Ray starts (`synth.native_stderr`).
FILTER_NATIVE_STDERR = False


def verbose() -> bool:
    """`synth --verbose` (or SYNTH_VERBOSE=1; SYNTH_RAY_LOGS=1 as before): show Ray's and
    vLLM's own log lines and warnings, and the workers' output, next to synth's."""
    return os.environ.get(VERBOSE_ENV, "") == "1" or os.environ.get("SYNTH_RAY_LOGS", "") == "1"


def quiet_ray() -> None:
    """By default a user sees synth's progress and summary, not Ray's: its loggers keep
    errors only (the token-authentication notice, Ray Data's "Progress bars disabled" and
    INFO lines go), and the Python warnings raised inside Ray's modules or about Ray Data's
    arguments are not shown. In the `synth` command the driver's C++ core worker lines go too
    (`synth.native_stderr`); they stay in the Ray session's log files."""
    import logging
    import warnings

    for name in ("ray", "ray.util", "ray._private"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import ray.data  # noqa: F401  (configures its logger at import: console and a log file)

    for h in logging.getLogger("ray.data").handlers:  # the console only: the file keeps all
        if not isinstance(h, logging.FileHandler) and "File" not in type(h).__name__:
            h.setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"ray(\.|$)")
    warnings.filterwarnings("ignore", message=r".*`ray_remote_args` is deprecated")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def init_ray(address: str | None = None):
    import ray

    if ray.is_initialized():
        return
    loud = verbose()
    if not loud:
        quiet_ray()
        if FILTER_NATIVE_STDERR:
            from synth import native_stderr

            native_stderr.install()
    kwargs: dict = {"namespace": "synth", "ignore_reinit_error": True, "include_dashboard": False,
                    "logging_level": "info" if loud else "error", "log_to_driver": loud}
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
