"""Linux isolation for the code sandbox: namespaces, cgroups, mounts, rlimits, privileges.

Stdlib + ctypes only. `enter()` is what a freshly forked child runs, as root, before the
untrusted program: see `sandbox.server` for who forks it and `verifiers.code` for what
holds and what does not. `Slot` bundles what runs reuse one after another: an empty network
namespace and a memory + pids cgroup pair.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import resource
import signal
import sys
import time

UID_BASE = 1_000_000_000  # a run's uid = UID_BASE + its pid on the host: unique among live runs
NOBODY = 65534  # used when the uid range is not mapped (inside a user namespace)
MIB = 1 << 20
ENV_PATH = "/usr/local/bin:/usr/bin:/bin"

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_MOVE = 2, 4, 8, 4096, 8192
MS_REC, MS_PRIVATE = 16384, 1 << 18
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]

# The seccomp module: loaded by path under a private name in the fork server, or as part of the
# package when this module is imported by the client or the tests.
_seccomp = sys.modules.get("_synth_sandbox_seccomp")
if _seccomp is None:
    from verifiers.sandbox import seccomp as _seccomp


# --------------------------------------------------------------------------- kernel calls


def _check(ret: int, what: str) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def new_netns() -> int | None:
    """An fd holding a fresh, empty network namespace (we stay in ours), or None."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        unshare(CLONE_NEWNET)
    except OSError:
        os.close(own)
        return None
    try:
        return os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        setns(own, CLONE_NEWNET)
        os.close(own)


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


# --------------------------------------------------------------------------- cgroups (v1)


def cgroup_parents() -> dict[str, str]:
    """{controller: this process's own cgroup dir} for the v1 memory and pids hierarchies.

    Job cgroups are made inside our own, so limits set above us (a container's) still apply."""
    mounts = {}
    try:
        for line in _read("/proc/self/mountinfo").splitlines():
            pre, _, post = line.partition(" - ")
            fields, post = pre.split(), post.split()
            if len(post) >= 3 and post[0] == "cgroup":
                for ctrl in ("memory", "pids"):
                    if ctrl in post[2].split(","):
                        mounts[ctrl] = (fields[4], fields[3])  # mount point, root inside it
        own = {}
        for line in _read("/proc/self/cgroup").splitlines():
            _, ctrls, path = line.split(":", 2)
            for ctrl in ctrls.split(","):
                own[ctrl] = path
    except (OSError, ValueError):
        return {}
    parents = {}
    for ctrl, (point, root) in mounts.items():
        rel = own.get(ctrl, "/")
        if root != "/" and rel.startswith(root):
            rel = rel[len(root):]
        path = os.path.join(point, rel.lstrip("/"))
        if os.path.isdir(path) and os.access(path, os.W_OK):
            parents[ctrl] = path
    return parents


class Cgroups:
    """A memory and a pids cgroup (whichever of the two the kernel allows), reused by the runs of
    one slot. Limits are rewritten only when a run asks for different ones; OOM kills are
    counted from the previous run's count."""

    NAME = re.compile(r"synth-sbx-(\d+)-(\d+)")

    def __init__(self, name: str, parents: dict[str, str]):
        self.dirs: dict[str, str] = {}
        for ctrl, parent in parents.items():
            path = os.path.join(parent, name)
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            except OSError:
                continue
            self.dirs[ctrl] = path
        self.applied: tuple[int, int] | None = None
        self.oom_seen = self._oom_kills()

    @classmethod
    def sweep(cls, parents: dict[str, str]) -> None:
        """Remove slot cgroups left by fork servers that were killed (their pid is gone)."""
        for parent in parents.values():
            try:
                names = os.listdir(parent)
            except OSError:
                continue
            for name in names:
                m = cls.NAME.fullmatch(name)
                if m and not os.path.exists(f"/proc/{m.group(1)}"):
                    try:
                        os.rmdir(os.path.join(parent, name))
                    except OSError:
                        pass

    def configure(self, memory_bytes: int, max_procs: int) -> None:
        """This run's limits; a controller that refuses them is dropped."""
        if self.applied == (memory_bytes, max_procs):
            return
        for ctrl, path in list(self.dirs.items()):
            try:
                if ctrl == "memory":
                    # memory+swap must stay >= memory: lift it, set memory, then bring it down.
                    memsw = f"{path}/memory.memsw.limit_in_bytes"
                    has_memsw = os.path.exists(memsw)
                    if has_memsw:
                        _write(memsw, "-1")
                    _write(f"{path}/memory.limit_in_bytes", str(memory_bytes))
                    if has_memsw:
                        _write(memsw, str(memory_bytes))
                else:
                    _write(f"{path}/pids.max", str(max_procs))
            except OSError:
                del self.dirs[ctrl]
        self.applied = (memory_bytes, max_procs)

    def join(self) -> list[str]:
        """Move the calling process in (writing "0" means "me")."""
        joined = []
        for ctrl, path in self.dirs.items():
            try:
                _write(f"{path}/cgroup.procs", "0")
                joined.append(ctrl)
            except OSError:
                pass
        return joined

    def procs(self) -> list[int]:
        pids = set()
        for path in self.dirs.values():
            try:
                pids.update(int(p) for p in _read(f"{path}/cgroup.procs").split())
            except (OSError, ValueError):
                continue
        return sorted(pids)

    def _oom_kills(self) -> int:
        path = self.dirs.get("memory")
        try:
            for line in _read(f"{path}/memory.oom_control").splitlines() if path else ():
                key, _, val = line.partition(" ")
                if key == "oom_kill":
                    return int(val)
        except (OSError, ValueError):
            pass
        return 0

    def oom_killed_since_last(self) -> bool:
        count = self._oom_kills()
        killed, self.oom_seen = count > self.oom_seen, count
        return killed

    def kill_members(self) -> bool:
        """SIGKILL every process in the cgroups; True if there were any."""
        pids = self.procs()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        return bool(pids)

    def remove(self) -> None:
        for _ in range(200):
            if not self.kill_members():
                break
            time.sleep(0.005)
        for path in self.dirs.values():
            for _ in range(200):  # the last tasks leave a moment after they are reaped
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)


class Slot:
    """Reusable per-concurrency resources: an empty network namespace and cgroups."""

    def __init__(self, index: int, cgroup_parents: dict[str, str]):
        self.index = index
        self.netns = new_netns()
        self.cg = Cgroups(f"synth-sbx-{os.getpid()}-{index}", cgroup_parents) \
            if cgroup_parents else None

    def close(self) -> None:
        if self.cg:
            self.cg.remove()
        if self.netns is not None:
            os.close(self.netns)


# --------------------------------------------------------------------------- the child


def _dup_high(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)


def exposure_plan() -> list[tuple[str, list[str]]]:
    """Directories the interpreter needs that an unprivileged uid cannot reach, by the closed
    directory hiding them: e.g. [("/root", ["/root/.pyenv/versions/3.11.7"])] when Python is a
    pyenv build under a 0700 /root. In the sandbox, the closed directory is covered with an
    empty tmpfs and only those paths are bind-mounted back, so the program can import the
    standard library without seeing anything else there."""
    wanted = set()
    for p in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix, *sys.path):
        if p and os.path.isdir(p):
            wanted.add(os.path.realpath(p))
    plan: dict[str, set[str]] = {}
    for path in wanted:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:i])
            if not os.stat(ancestor).st_mode & 0o001:  # others may not traverse it
                plan.setdefault(ancestor, set()).add(path)
                break
    result = []
    for hidden, paths in sorted(plan.items()):
        top = [p for p in sorted(paths) if not any(p.startswith(q + "/") for q in paths)]
        result.append((hidden, top))
    return result


def _private_mounts(job: dict, proc: bool, plan: list) -> None:
    # Never let our mounts propagate back to the host's mount namespace.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={job['tmpfs_mb']}m,mode=1777")
    for path in ("/var/tmp", "/dev/shm"):
        if os.path.isdir(path):
            mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=1777")
    for n, (hidden, paths) in enumerate(plan):
        staged = []
        for i, path in enumerate(paths):  # park each needed tree, hide its parent, move it back
            stage = f"/tmp/.stage-{n}-{i}"
            os.mkdir(stage)
            mount(path, stage, None, MS_BIND | MS_REC)
            staged.append((stage, path))
        mount("tmpfs", hidden, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        for stage, path in staged:
            os.makedirs(path, exist_ok=True)
            mount(stage, path, None, MS_MOVE)
            os.rmdir(stage)
    if proc:  # a /proc that shows only this PID namespace
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _set_rlimits(job: dict) -> None:
    cpu = int(job["timeout"]) + 1
    mem = job["memory_mb"] * MIB
    limits = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),  # SIGXCPU, then SIGKILL a second later
        resource.RLIMIT_AS: (mem, mem),
        resource.RLIMIT_NPROC: (job["max_procs"], job["max_procs"]),
        resource.RLIMIT_FSIZE: (job["file_size_mb"] * MIB, job["file_size_mb"] * MIB),
        resource.RLIMIT_NOFILE: (job["max_open_files"], job["max_open_files"]),
        resource.RLIMIT_STACK: (job["stack_mb"] * MIB, job["stack_mb"] * MIB),
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_MSGQUEUE: (0, 0),
    }
    for which, lim in limits.items():
        resource.setrlimit(which, lim)


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if 0 in os.getresuid() or 0 in os.getresgid():
        raise RuntimeError("privileges were not dropped")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise RuntimeError("setuid(0) succeeded after dropping privileges")


def enter(job: dict, fds: tuple[int, int, int, int], slot: Slot, host_workdir: str, iso: dict,
          plan: list, ids: str, seccomp_filter: bytes | None) -> str:
    """Isolate the calling process, a child just forked as PID 1 of a fresh PID namespace, in
    the order that matters: everything that needs root first, then drop root, then seccomp.
    `fds` become its stdin, stdout, stderr and report fd (0-3); every other fd is closed.
    Records what held in `iso`, returns the work dir; raises if anything essential failed."""
    os.setsid()
    # A uid no other live run has: derived from our pid as the host sees it (the host's
    # /proc is still mounted here), or nobody where the uid range is not ours.
    uid = UID_BASE + int(os.readlink("/proc/self")) if ids == "unique" else NOBODY
    iso["cgroups"] = slot.cg.join() if slot.cg else []
    wanted = {"ipc_ns": CLONE_NEWIPC, "mount_ns": CLONE_NEWNS}
    iso["net_ns"] = False
    if slot.netns is not None:
        try:
            setns(slot.netns, CLONE_NEWNET)
            iso["net_ns"] = True
        except OSError:
            pass
    if not iso["net_ns"]:
        wanted["net_ns"] = CLONE_NEWNET
    try:
        unshare(sum(wanted.values()))
        iso.update(dict.fromkeys(wanted, True))
    except OSError:
        for key, flag in wanted.items():
            try:
                unshare(flag)
                iso[key] = True
            except OSError:
                iso[key] = False
    workdir = host_workdir
    iso["private_tmp"] = False
    if iso["mount_ns"]:
        try:
            _private_mounts(job, iso["pid_ns"], plan)
            workdir, iso["private_tmp"] = "/tmp/work", True
        except OSError:
            pass
    os.mkdir(workdir, 0o700)
    os.chown(workdir, uid, uid)
    os.chdir(workdir)

    high = [_dup_high(fd) for fd in fds]
    for target, fd in enumerate(high):  # 0 stdin, 1 stdout, 2 stderr, 3 report
        os.dup2(fd, target)
    os.set_inheritable(3, False)
    os.closerange(4, max(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    iso["fds_wired"] = True  # from here on, the report fd is 3

    _set_rlimits(job)
    os.environ.clear()
    os.environ.update({"PATH": ENV_PATH, "HOME": workdir, "USER": "sandbox",
                       "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"})
    sys.dont_write_bytecode = True
    _drop_privileges(uid, uid)
    iso["uid"] = uid
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        iso["seccomp"] = _seccomp.install(_libc, seccomp_filter)
    except OSError:
        iso["seccomp"] = False
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    return workdir


def kill_uid(uid: int) -> None:
    """Last resort without a PID namespace or cgroup: kill(-1) as the job's uid."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def id_mode() -> str:
    """"unique" if the whole uid range is ours (not inside a user namespace), else "nobody"."""
    try:
        for line in _read("/proc/self/uid_map").splitlines():
            inside, outside, count = (int(x) for x in line.split())
            if inside == 0 and count >= UID_BASE + (1 << 22):
                return "unique"
    except (OSError, ValueError):
        pass
    return "nobody"


