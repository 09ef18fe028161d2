"""Shared fixtures: one Ray runtime and one embedded model per test session.

Engine actors live as long as the Ray driver (this pytest process), so every in-process
pipeline run with the same model spec reuses one loaded vLLM engine (see synth.backends.pool).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="session")
def ray_session():
    """The real Ray runtime, started once (a local cluster on this machine)."""
    from synth.ray_runtime import init_ray

    init_ray(None)
    import ray

    yield ray
    from synth.backends.pool import forget_engines

    forget_engines()
    ray.shutdown()


@pytest.fixture(scope="module")
def one_torch_thread():
    """For modules of tiny tensors (the hybrid model, NVFP4): one intra-op thread is faster
    (more threads only add sync overhead) and immune to a busy 2-core machine. Use with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def model_path() -> str:
    """The embedded default model as a local HF folder (pulled once, then cached)."""
    from synth.models import DEFAULT_MODEL, pull

    return str(pull(DEFAULT_MODEL))


def write_pipeline(path: Path, **sections) -> Path:
    """Write a pipeline YAML file from keyword sections; returns its path."""
    import yaml

    path.write_text(yaml.safe_dump(sections, sort_keys=False))
    return path


def lose_unit(shard: Path) -> None:
    """Undo one finished unit of a run, as if it had never been written: its shard, its
    rejects and its completion marker (`part-<unit>-<p0>.parquet`, `_completions/<unit>-<p0>.json`)."""
    out = shard.parent
    shard.unlink()
    (out / "rejects" / shard.name).unlink(missing_ok=True)
    (out / "_completions" / (shard.stem.split("-", 1)[1] + ".json")).unlink()


class S3Server:
    """A local S3 server (moto's, a subprocess) with one bucket, that checks credentials: only
    requests signed with the key pair in `env` are allowed (any other is refused), so a test
    passes only if the credentials reach every process that touches the store.

    `env`: the standard AWS variables that point a client at it (set in this process for the
    session by the `s3_server` fixture; subprocesses inherit them). `uri(...)` builds
    `s3://<bucket>/...` URIs; `prefix()` a fresh folder for one test."""

    def __init__(self, endpoint: str, bucket: str, proc, key: str, secret: str):
        self.endpoint, self.bucket, self.proc = endpoint, bucket, proc
        self.env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": key,
                    "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1"}
        self._n = 0

    def uri(self, *parts: str) -> str:
        return "/".join([f"s3://{self.bucket}", *parts])

    def prefix(self, name: str = "t") -> str:
        self._n += 1
        return self.uri(f"{name}-{self._n}")

    def keys(self, under: str = "") -> list[str]:
        """Every object key in the bucket (under `under`), recursively, sorted."""
        from pyarrow import fs

        s3 = self.filesystem()
        path = f"{self.bucket}/{under}".rstrip("/")
        infos = s3.get_file_info(fs.FileSelector(path, recursive=True, allow_not_found=True))
        return sorted(i.path.split("/", 1)[1] for i in infos if i.type == fs.FileType.File)

    def filesystem(self, **kw):
        """A pyarrow S3FileSystem on this server, made independently of synth.io.shards."""
        from pyarrow import fs

        host = self.endpoint.split("://", 1)[1]
        return fs.S3FileSystem(endpoint_override=host, scheme="http", region="us-east-1",
                               access_key=self.env["AWS_ACCESS_KEY_ID"],
                               secret_key=self.env["AWS_SECRET_ACCESS_KEY"], **kw)


def start_s3_server(bucket: str = "synth-test") -> S3Server:
    """Start moto's S3 server on a free localhost port, with an IAM user allowed s3:* whose key
    pair is the only accepted one, and create `bucket`; stop it with `stop_s3_server`."""
    import json
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Its request log goes to a file: a pipe nobody reads would fill up and stall the server.
    log = tempfile.TemporaryFile()
    # moto checks signatures after its first N requests (INITIAL_NO_AUTH_ACTION_COUNT): the
    # three IAM calls below that create the user and its key.
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()  # no request:
            break  # requests count towards the unauthenticated ones
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log.seek(0)
                err = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"moto S3 server did not start on port {port}: {err}")
            time.sleep(0.2)
    log.close()  # the child keeps its own handle
    try:
        import boto3  # a dependency of moto

        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="setup", aws_secret_access_key="setup")
        iam.create_user(UserName="synth")
        iam.put_user_policy(UserName="synth", PolicyName="s3", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="synth")["AccessKey"]
        server = S3Server(endpoint, bucket, proc, key["AccessKeyId"], key["SecretAccessKey"])
        server.filesystem(allow_bucket_creation=True).create_dir(bucket)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return server


def stop_s3_server(server: S3Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except Exception:
        server.proc.kill()
        server.proc.wait(10)


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 server for the session (moto, see `S3Server`), with its AWS variables set in
    this process (restored at the end)."""
    server = start_s3_server()
    before = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        stop_s3_server(server)


@pytest.fixture
def subprocess_env():
    """The environment of a `synth` subprocess with a local Ray of its own. Ray's unix
    socket paths must stay under 107 bytes: a short temp dir, removed afterwards."""
    import shutil
    import tempfile

    ray_tmp = tempfile.mkdtemp(prefix="rr", dir="/tmp")
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", RAY_TMPDIR=ray_tmp)
    env.pop("RAY_ADDRESS", None)
    yield env
    shutil.rmtree(ray_tmp, ignore_errors=True)
