"""The code sandbox's fork server: one per client process, stdlib only, runs as root.

    client (verifiers.code) --control socket--> fork server --fork--> child (one per run)

- The **fork server** ("zygote") is started by the client with `python -I` and a scrubbed
  environment. It imports everything a run needs (the harness, ctypes, common stdlib modules)
  once and freezes its heap for the GC. Each job arrives as one end of a fresh socketpair
  passed over the control socket (SCM_RIGHTS). The server is also the monitor of every run:
  one `poll` loop reads jobs, feeds stdin, reads stdout/stderr/report with caps while they
  stream, watches each child through a pidfd, enforces deadlines (no signals, no alarm),
  kills what is left and writes the answers back. It exits, after the runs in flight, when
  the client's end of the control socket closes. A run whose client hangs up is killed.
- Each child is forked straight into a fresh PID namespace (the server re-points its
  "namespace for children" with setns + unshare before every fork), so a run costs one fork.
- A **slot** holds what is costly to make and safe to reuse by runs one after another (never
  by two at once): an empty network namespace (held open by an fd) and a memory + pids cgroup
  pair. Creating and destroying a network namespace per run costs more CPU, in kernel workers,
  than the rest of the run; a namespace no process is in keeps nothing an unprivileged program
  could have left (no interfaces to configure, its sockets died with it). There are as many
  slots as runs ever in flight at once.
- The **child** is PID 1 of its PID namespace. `isolation.enter` starts a new session,
  joins the slot's cgroups and network namespace, enters new mount and IPC namespaces, mounts
  private tmpfs on /tmp, /var/tmp, /dev/shm and a fresh /proc, makes its work dir, wires fds
  0-3 and closes every other fd, sets rlimits, scrubs the environment, drops to an
  unprivileged uid/gid with no groups, sets no_new_privs and the parent-death signal and
  installs the seccomp filter; only then does the child run the untrusted program through
  `harness.run` (no exec: the interpreter is already warm). When it exits the kernel
  kills every process left in its PID namespace.

Every isolation step the kernel refuses is recorded in the result's `isolation` map instead of
failing the run, except dropping privileges: without it nothing runs. Modules: this one
(scheduling and I/O), `isolation` (kernel mechanisms), `seccomp` (the filter), `harness`
(what runs inside).
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import select
import shutil
import signal
import socket
import struct
import sys
import time


def _sibling(name: str):
    """A sibling module: loaded by path under a private name in the fork server (which runs with
    `python -I` and has no `verifiers` package), or from the package in the client and tests."""
    mod = sys.modules.get(f"_synth_sandbox_{name}")
    if mod is None:
        import importlib

        mod = importlib.import_module(f"verifiers.sandbox.{name}")
    return mod


isolation = _sibling("isolation")
ENV_PATH, MIB = isolation.ENV_PATH, isolation.MIB
SETUP_FAILED = 70  # child exit code when isolation could not be set up
REPORT_CAP = 4 * MIB
STDERR_TAIL = 8192
EXIT_GRACE_S = 0.25  # after the child exits, how long to wait for pipes someone else holds
_HDR = struct.Struct("!Q")


# --------------------------------------------------------------------------- framing


def send_msg(sock: socket.socket, obj) -> None:
    data = json.dumps(obj, ensure_ascii=True).encode()
    sock.sendall(_HDR.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError("sandbox socket closed")
        buf += chunk
    return bytes(buf)


def recv_msg(sock: socket.socket):
    (n,) = _HDR.unpack(_recv_exact(sock, _HDR.size))
    return json.loads(_recv_exact(sock, n))


# --------------------------------------------------------------------------- the child


def _child(run: "Run", fds: tuple[int, ...]) -> None:
    """In the freshly forked child: forget the other runs, isolate, then run the program.
    Never returns. The run's report key is made here, after the fork, so neither the fork
    server nor any other run ever holds it before this run's harness has written it."""
    server, iso = run.server, run.iso
    server.forget_runs_but(run)
    key = os.urandom(32)
    harness = _sibling("harness")
    _report_raw(fds[3], {"event": "key", "key": key.hex()})  # before any untrusted code
    try:
        workdir = isolation.enter(run.job, fds, run.slot, run.host_workdir, iso, server.settings)
    except BaseException as e:  # never run the program half-isolated
        rep = 3 if iso.get("fds_wired") else fds[3]
        harness.report_to(rep, key, {"event": "setup_error", "error": f"{type(e).__name__}: {e}"})
        os._exit(SETUP_FAILED)
    iso.pop("fds_wired", None)
    harness.report_to(3, key, {"event": "isolation", **iso})
    harness.run(run.job, workdir, key)
    os._exit(0)  # not reached: run() exits


def _report_raw(fd: int, obj: dict) -> None:
    try:
        os.write(fd, (json.dumps(obj) + "\n").encode())
    except OSError:
        pass


# --------------------------------------------------------------------------- runs


class _Streams:
    """Reads the child's stdout, stderr and report pipes with caps applied as data arrives."""

    def __init__(self, out_r: int, err_r: int, rep_r: int, output_limit: int):
        self.out_r, self.err_r, self.rep_r = out_r, err_r, rep_r
        self.out, self.err, self.rep = bytearray(), bytearray(), bytearray()
        self.total = 0
        self.limit = output_limit
        self.over = False
        self.open = {out_r, err_r, rep_r}

    def read(self, fd: int) -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.open.discard(fd)
            return
        if fd == self.rep_r:
            if len(self.rep) + len(data) > REPORT_CAP:
                self.over = True
            else:
                self.rep += data
            return
        self.total += len(data)
        if self.total > self.limit:
            self.over = True
        if fd == self.out_r:
            self.out += data[: max(0, self.limit - len(self.out))]
        else:
            self.err += data
            if len(self.err) > 2 * STDERR_TAIL:
                del self.err[:-STDERR_TAIL]

    def drain(self) -> None:
        for fd in list(self.open):
            for _ in range(64):
                if fd not in self.open or self.over:
                    break
                r, _, _ = select.select([fd], [], [], 0)
                if not r:
                    break
                self.read(fd)


def _parse_report(raw: bytes) -> tuple[list[dict], bool, int]:
    """(events, finished, forged) from a run's report pipe. Its first line is the run's key,
    written by the child before any untrusted code ran; every later line must carry that
    key's MAC (`harness.sign`). A line without a valid MAC (written by the program, or cut
    off) is counted as forged and otherwise ignored; nothing in it can crash this parser."""
    harness = _sibling("harness")
    lines = raw.split(b"\n")
    key = None
    try:
        first = json.loads(lines[0])
        if isinstance(first, dict) and first.get("event") == "key":
            key = bytes.fromhex(first["key"])
    except (ValueError, TypeError, KeyError):
        pass
    events, finished, forged = [], False, 0
    if key is None:
        return events, finished, int(bool(raw.strip()))
    for line in lines[1:]:
        if not line:
            continue
        ev = harness.verify(key, line)
        if ev is None:
            forged += 1
            continue
        if ev.get("event") == "done":
            finished = True
            continue
        if len(events) < 2000:
            events.append(ev)
    return events, finished, forged


class Run:
    """One job: receive it, fork its child, watch it, answer. Driven by `Server.loop`."""

    def __init__(self, server: "Server", conn: socket.socket, job_fd: int, stdin_fd: int | None):
        self.server, self.conn = server, conn
        # The program and tests (`job_fd`) and the stdin data (`stdin_fd`) are read-only
        # files the client made; they go to the child unread: the server never holds them.
        self.job_fd, self.stdin_fd = job_fd, stdin_fd
        self.inbuf = bytearray()
        self.outbuf = memoryview(b"")
        self.job: dict | None = None  # the limits: time, memory, output, processes...
        self.slot: isolation.Slot | None = None
        self.pid = self.pidfd = None
        self.streams: _Streams | None = None
        self.iso = {"pid_ns": False}
        self.status = self.rusage = self.exited_at = None
        self.deadline = self.start = 0.0
        self.timed_out = self.killed = self.client_gone = self.finished = False
        self.host_workdir = ""
        conn.setblocking(False)
        server.watch(conn.fileno(), select.POLLIN, self.on_conn)

    # ---- the client socket

    def on_conn(self, fd: int, events: int) -> None:
        if self.outbuf:
            self._send()
            return
        try:
            data = self.conn.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client hung up: stop the run, nobody wants its answer
            self.client_gone = True
            self.server.unwatch(self.conn.fileno())
            if self.pid is None:
                self.close()
            else:
                self.kill()
            return
        if self.job is not None:
            return  # nothing more is expected while the run goes on
        self.inbuf += data
        if len(self.inbuf) >= _HDR.size:
            (n,) = _HDR.unpack_from(self.inbuf)
            if len(self.inbuf) >= _HDR.size + n:
                try:
                    self.job = json.loads(bytes(self.inbuf[_HDR.size:_HDR.size + n]))
                    self.inbuf = bytearray()
                    self.begin()
                except Exception as e:  # a sandbox failure, not the program's: say so
                    self.answer({"sandbox_error": f"{type(e).__name__}: {e}"})

    def answer(self, result: dict) -> None:
        data = json.dumps(result, ensure_ascii=True).encode()
        self.outbuf = memoryview(_HDR.pack(len(data)) + data)
        self.server.watch(self.conn.fileno(), select.POLLOUT, self.on_conn)
        self._send()

    def _send(self) -> None:
        try:
            n = self.conn.send(self.outbuf[:1 << 20])
            self.outbuf = self.outbuf[n:]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.outbuf = memoryview(b"")
        if not self.outbuf:
            self.close()

    def close(self) -> None:
        self.server.unwatch(self.conn.fileno())
        self.conn.close()
        self.close_inputs()
        self.server.runs.discard(self)

    def close_inputs(self) -> None:
        """The job and stdin files, if no child took them (the client left first)."""
        for name in ("job_fd", "stdin_fd"):
            fd = getattr(self, name)
            if fd is not None:
                setattr(self, name, None)
                try:
                    os.close(fd)
                except OSError:
                    pass

    def forget(self) -> None:
        """In a child forked for another run: wipe what this run's buffers hold (its output
        so far and its report), so no run can read another's state from the fork server's
        memory it inherited."""
        import ctypes

        for buf in (self.inbuf, *((self.streams.out, self.streams.err, self.streams.rep)
                                  if self.streams else ())):
            if len(buf):
                ctypes.memset((ctypes.c_char * len(buf)).from_buffer(buf), 0, len(buf))

    def fail(self, error: BaseException) -> None:
        """A bug in the server's handling of this run: kill it, free what we can, say so."""
        self.kill()
        if self.pid is not None and self.status is None:
            try:
                os.waitpid(self.pid, 0)  # SIGKILLed: returns at once
            except ChildProcessError:
                pass
        self.finished = True
        for fd, handler in list(self.server.handlers.items()):
            if getattr(handler, "__self__", None) is self and fd != self.conn.fileno():
                self.server.unwatch(fd)
                try:
                    os.close(fd)
                except OSError:
                    pass
        if self.slot is not None:
            self.server.release_slot(self.slot)
            self.slot = None
        if self.client_gone or self.conn.fileno() < 0:
            self.server.runs.discard(self)
        else:
            self.answer({"sandbox_error": f"{type(error).__name__}: {error}"})

    # ---- the child

    def begin(self) -> None:
        job = self.job
        self.slot = slot = self.server.acquire_slot()
        self.host_workdir = f"/tmp/synth-sbx-{self.server.host_pid}-{secrets.token_hex(6)}"
        if slot.cg:
            slot.cg.configure(job["memory_mb"] * MIB, job["max_procs"])
        child_ends: list[int] = []  # the child's copies; ours are closed once it has them
        ours: list[int] = []
        try:
            if self.stdin_fd is None:
                child_ends.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            else:
                child_ends.append(self.stdin_fd)
                self.stdin_fd = None
            for _ in range(3):  # stdout, stderr, report
                r, w = os.pipe()
                ours.append(r)
                child_ends.append(w)
            child_ends.append(self.job_fd)
            self.job_fd = None
            self.iso["pid_ns"] = self.server.next_child_in_new_pidns()
            self.start = time.monotonic()
            try:
                self.pid = os.fork()
            finally:
                if self.pid != 0:
                    self.server.next_child_in_own_pidns()
            if self.pid == 0:
                try:
                    _child(self, tuple(child_ends))
                finally:
                    os._exit(SETUP_FAILED)
        except BaseException:
            for fd in ours:
                os.close(fd)
            self.server.release_slot(slot)
            self.slot = None
            raise
        finally:
            if self.pid != 0:
                for fd in child_ends:
                    os.close(fd)
        out_r, err_r, rep_r = ours[-3:]
        self.streams = _Streams(out_r, err_r, rep_r, job["output_limit"])
        self.deadline = self.start + job["timeout"]
        for fd in (out_r, err_r, rep_r):
            self.server.watch(fd, select.POLLIN, self.on_stream)
        try:
            self.pidfd = os.pidfd_open(self.pid)
            self.server.watch(self.pidfd, select.POLLIN, self.on_exit)
        except (AttributeError, OSError):
            self.pidfd = None  # old kernel: `tick` polls with waitpid instead

    def on_stream(self, fd: int, events: int) -> None:
        self.streams.read(fd)
        if fd not in self.streams.open:
            self.server.unwatch(fd)
        if self.streams.over:
            self.kill()
        self._maybe_finish()

    def on_exit(self, fd: int, events: int) -> None:
        self.server.unwatch(self.pidfd)
        self._reap()
        self._maybe_finish()

    def _reap(self) -> None:
        if self.status is not None:
            return
        try:
            wpid, st, ru = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            wpid, st, ru = self.pid, 0, None
        if wpid == self.pid:
            self.status, self.rusage, self.exited_at = st, ru, time.monotonic()

    def kill(self) -> None:
        """Kill the child; with a PID namespace, that is every process of the run."""
        if self.pid is None or self.status is not None:
            return
        self.killed = True
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.slot.cg:
            self.slot.cg.kill_members()

    def tick(self, now: float) -> float | None:
        """Deadline checks; returns the next time this run needs attention."""
        if self.pid is None or self.finished:
            return None
        if self.pidfd is None:
            self._reap()
        if self.status is None:
            if now >= self.deadline and not self.killed:
                self.timed_out = True
                self.kill()
            nxt = self.deadline if not self.killed else now + 0.05
            return min(nxt, now + 0.01) if self.pidfd is None else nxt
        if self.streams.open and now < self.exited_at + EXIT_GRACE_S:
            return self.exited_at + EXIT_GRACE_S
        self._finish()
        return None

    def _maybe_finish(self) -> None:
        if self.status is not None and (not self.streams.open or self.streams.over):
            self._finish()

    def _finish(self) -> None:
        if self.pid is None or self.finished:
            return
        self.finished = True
        end = self.exited_at or time.monotonic()
        cg = self.slot.cg
        if self.server.settings.level == "root" and not self.iso["pid_ns"] \
                and not (cg and "pids" in cg.dirs):
            unique = self.server.settings.ids == "unique"
            isolation.kill_uid(isolation.UID_BASE + self.pid if unique else isolation.NOBODY)
        if cg and not self.iso["pid_ns"]:
            cg.kill_members()
        self.streams.drain()
        for fd in list(self.streams.open):
            self.server.unwatch(fd)
        for fd in (self.streams.out_r, self.streams.err_r, self.streams.rep_r):
            os.close(fd)
        if self.pidfd is not None:
            self.server.unwatch(self.pidfd)
            os.close(self.pidfd)
        shutil.rmtree(self.host_workdir, ignore_errors=True)
        result = self._result(end)
        self.server.release_slot(self.slot)
        self.slot = None
        if self.client_gone:
            self.close()
        else:
            self.answer(result)

    def _result(self, end: float) -> dict:
        streams, status, job = self.streams, self.status, self.job
        events, finished, forged = _parse_report(bytes(streams.rep))
        iso = dict(self.iso)
        for ev in events:
            if ev.get("event") == "isolation":
                iso.update({k: v for k, v in ev.items() if k != "event"})
        setup_error = next((ev.get("error") for ev in events if ev.get("event") == "setup_error"),
                           None)
        cpu = (self.rusage.ru_utime + self.rusage.ru_stime) if self.rusage else 0.0
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        cpu_limit = sig == signal.SIGXCPU or (sig == signal.SIGKILL
                                              and cpu >= int(job["timeout"]) + 1)
        return {
            "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": sig,
            "timed_out": self.timed_out,
            "cpu_limit": cpu_limit,
            "oom": bool(self.slot.cg and self.slot.cg.oom_killed_since_last()),
            "output_limit": streams.over,
            "elapsed": end - self.start,
            "cpu": cpu,
            "stdout": streams.out.decode("utf-8", "replace"),
            "stdout_bytes": streams.total,
            "stderr": streams.err[-STDERR_TAIL:].decode("utf-8", "replace"),
            "events": [ev for ev in events if ev.get("event") not in ("isolation", "setup_error")],
            "finished": finished,
            "forged": forged,
            "setup_error": setup_error,
            "isolation": iso,
        }


# --------------------------------------------------------------------------- the server


class _Settings:
    """What the fork server works out once and every run reuses. `level` is "root", "rootless"
    (uid 0 of a user namespace of its own) or "none" (no isolation: the client refuses it
    unless the user opted in); `why` says what was missing when it is "none"."""

    def __init__(self, level: str, why: str = ""):
        import tempfile

        self.level, self.why = level, why
        self.ids = isolation.id_mode() if level == "root" else "nobody"
        self.cgroup_parents = isolation.cgroup_parents() if level != "none" else {}
        self.fs_plan = isolation.filesystem_plan() if level != "none" else []
        # The empty host directory each run mounts its own root on (in its own mount
        # namespace: the host never sees what is mounted there).
        self.root_dir = tempfile.mkdtemp(prefix=f"synth-sbx-root-{isolation.host_pid()}-",
                                         dir="/tmp") if level != "none" else ""
        self.seccomp_filter = _sibling("seccomp").build_filter()

    @staticmethod
    def sweep() -> None:
        """Remove the empty root directories of fork servers that were killed."""
        import glob
        import re

        for path in glob.glob("/tmp/synth-sbx-root-*"):
            m = re.fullmatch(r"synth-sbx-root-(\d+)-\w+", os.path.basename(path))
            if m and not os.path.exists(f"/proc/{m.group(1)}"):
                try:
                    os.rmdir(path)
                except OSError:
                    pass

    def close(self) -> None:
        if self.root_dir:
            try:
                os.rmdir(self.root_dir)
            except OSError:
                pass


class Server:
    """The poll loop that owns every run, plus the slot pool and the PID-namespace switch."""

    def __init__(self, ctl: socket.socket, settings: _Settings):
        self.ctl, self.settings = ctl, settings
        self.poller = select.poll()
        self.handlers: dict[int, object] = {}
        self.runs: set[Run] = set()
        self.slots: list[isolation.Slot] = []
        self.free: list[isolation.Slot] = []
        self.closing = False
        self.host_pid = isolation.host_pid()
        try:
            self.own_pidns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.own_pidns = None
        self.watch(ctl.fileno(), select.POLLIN, self.on_ctl)

    def watch(self, fd: int, mask: int, handler) -> None:
        if fd in self.handlers:
            self.poller.modify(fd, mask)
        else:
            self.poller.register(fd, mask)
        self.handlers[fd] = handler

    def unwatch(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            self.poller.unregister(fd)

    def acquire_slot(self) -> isolation.Slot:
        if self.free:
            return self.free.pop()
        slot = isolation.Slot(len(self.slots), self.settings.cgroup_parents,
                              self.settings.root_dir, self.settings.fs_plan)
        self.slots.append(slot)
        return slot

    def release_slot(self, slot: isolation.Slot) -> None:
        self.free.append(slot)

    def forget_runs_but(self, keep: "Run") -> None:
        """In a child: wipe the other runs' buffers inherited with the server's memory."""
        for run in self.runs:
            if run is not keep:
                run.forget()

    def next_child_in_new_pidns(self) -> bool:
        """Make our next fork land as PID 1 of a fresh PID namespace (False if refused)."""
        if self.own_pidns is None:
            return False
        try:
            # unshare(CLONE_NEWPID) works only while our children's namespace is our own
            isolation.setns(self.own_pidns, isolation.CLONE_NEWPID)
            isolation.unshare(isolation.CLONE_NEWPID)
            return True
        except OSError:
            return False

    def next_child_in_own_pidns(self) -> None:
        if self.own_pidns is not None:
            try:
                isolation.setns(self.own_pidns, isolation.CLONE_NEWPID)
            except OSError:
                pass

    def on_ctl(self, fd: int, events: int) -> None:
        try:
            msg, fds, _, _ = socket.recv_fds(self.ctl, 16, 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            msg, fds = b"", []
        if not msg and not fds:  # the client is gone: finish the runs in flight, then exit
            self.closing = True
            self.unwatch(self.ctl.fileno())
            return
        # One message per job: the client's end of a socketpair (limits in, answer out), the
        # read-only job file (program and tests) and, in stdio mode, the stdin file.
        if msg[:1] != b"J" or len(fds) not in (2, 3):
            for fd in fds:
                os.close(fd)
            return
        self.runs.add(Run(self, socket.socket(fileno=fds[0]), fds[1],
                          fds[2] if len(fds) == 3 else None))

    def loop(self) -> None:
        while not (self.closing and not self.runs):
            now = time.monotonic()
            wake = [t for t in (run.tick(now) for run in list(self.runs)) if t is not None]
            timeout_ms = None if not wake else max(0, int((min(wake) - now) * 1000) + 1)
            for fd, events in self.poller.poll(timeout_ms):
                handler = self.handlers.get(fd)
                if handler is None:  # an earlier handler in this batch dropped it
                    continue
                try:
                    handler(fd, events)
                except Exception as e:
                    run = getattr(handler, "__self__", None)
                    if not isinstance(run, Run):
                        raise
                    run.fail(e)

    def close(self) -> None:
        for slot in self.slots:
            slot.close()
        self.settings.close()


_PRELOAD = ("collections", "itertools", "functools", "math", "re", "heapq", "bisect", "string",
            "typing", "random", "dataclasses", "operator", "copy", "fractions", "decimal",
            "threading", "atexit")


def _isolation_level(ctl_fd: int) -> tuple[str, str]:
    """As root: "root". Otherwise enter a user namespace of our own and become PID 1 of a PID
    namespace it owns (so that the per-run PID namespaces can be made and left again without
    privileges on the host): "rootless". When the kernel refuses: "none", and why."""
    if os.geteuid() == 0:
        return "root", ""
    try:
        isolation.enter_user_namespace()
        # Network and mount namespaces of our own too (the server needs no network: its
        # sockets are a unix pair it already holds; its mounts are a copy of the host's), so
        # that making a slot's namespaces and coming back to ours needs no privilege on the
        # host.
        isolation.unshare(isolation.CLONE_NEWPID | isolation.CLONE_NEWNET | isolation.CLONE_NEWNS)
    except OSError as e:
        return "none", (f"not root, and user namespaces are refused ({e.strerror}); enable them "
                        "(sysctl user.max_user_namespaces=15000, and on Debian/Ubuntu "
                        "kernel.unprivileged_userns_clone=1 or "
                        "kernel.apparmor_restrict_unprivileged_userns=0)")
    pid = os.fork()
    if pid:  # the first process only waits: the server goes on as the namespace's PID 1
        os.close(ctl_fd)
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    isolation._libc.prctl(isolation.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return "rootless", ""


def serve(ctl_fd: int, allow_unisolated: bool = False) -> None:
    """The fork server's main: isolate itself, preload, say hello on the control socket, run
    the loop. Without root or user namespaces it says so in the hello and, unless the client
    opted in to running code without isolation (`allow_unisolated`), exits."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    level, why = _isolation_level(ctl_fd)
    ctl = socket.socket(fileno=ctl_fd)
    if level == "none" and not allow_unisolated:
        ctl.sendall(json.dumps({"pid": isolation.host_pid(), "euid": os.geteuid(),
                                "level": level, "why": why}).encode())
        return
    for name in _PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    _Settings.sweep()
    settings = _Settings(level, why)
    isolation.Cgroups.sweep(settings.cgroup_parents)
    server = Server(ctl, settings)
    gc.collect()
    gc.freeze()  # keep the GC from touching (and copying) the server's objects in each child
    hello = {"pid": server.host_pid, "euid": os.geteuid(), "level": level, "why": why,
             "ids": settings.ids, "cgroups": sorted(settings.cgroup_parents),
             "filesystem": [[kind, path] for kind, path, _ in settings.fs_plan], "seccomp": settings.seccomp_filter is not None}
    try:
        ctl.sendall(json.dumps(hello).encode())
        ctl.setblocking(False)
        server.loop()
    finally:
        server.close()
