"""Linux isolation for the code sandbox: namespaces, cgroups, mounts, rlimits, privileges.

Stdlib + ctypes only. `enter()` is what a freshly forked child runs, as root or as uid 0 of
the fork server's user namespace (rootless), before the untrusted program: see `sandbox.server` for who forks it and `verifiers.code` for what
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

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 1, 24, 28
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
# SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP, SECBIT_KEEP_CAPS, SECBIT_NO_CAP_AMBIENT_RAISE, each
# with its _LOCKED bit: uid 0 gets no capabilities back, not even through execve.
SECUREBITS_LOCKED_DOWN = 0xFF
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

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


# --------------------------------------------------------------------------- cgroups


def cgroup_parents(mountinfo: str | None = None, proc_cgroup: str | None = None) -> dict[str, str]:
    """Where run cgroups are made: {"memory": dir, "pids": dir} on cgroup v1 (this process's own
    cgroup in each hierarchy, when writable), else {"v2": dir} on cgroup v2 (see
    `_cgroup2_parent`), else {} (rlimits only). Limits set above the chosen place (a
    container's, a Slurm job's) still apply to the runs. The arguments are for tests."""
    try:
        mountinfo = _read("/proc/self/mountinfo") if mountinfo is None else mountinfo
        proc_cgroup = _read("/proc/self/cgroup") if proc_cgroup is None else proc_cgroup
    except OSError:
        return {}
    v1, v2 = {}, None
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields, post = pre.split(), post.split()
        if len(fields) < 5 or not post:
            continue
        if post[0] == "cgroup" and len(post) >= 3:
            for ctrl in ("memory", "pids"):
                if ctrl in post[2].split(","):
                    v1[ctrl] = (fields[4], fields[3])  # mount point, root inside it
        elif post[0] == "cgroup2":
            v2 = (fields[4], fields[3])
    own = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for ctrl in parts[1].split(",") if parts[1] else ["v2"]:
                own[ctrl] = parts[2]
    parents = {}
    for ctrl, mount_root in v1.items():
        path = _cgroup_dir(mount_root, own.get(ctrl, "/"))
        if os.path.isdir(path) and os.access(path, os.W_OK):
            parents[ctrl] = path
    if parents or v2 is None or "v2" not in own:
        return parents
    parent = _cgroup2_parent(_cgroup_dir(v2, own["v2"]), v2[0])
    return {"v2": parent} if parent else {}


def _cgroup_dir(mount_root: tuple[str, str], rel: str) -> str:
    point, root = mount_root
    if root != "/" and rel.startswith(root):
        rel = rel[len(root):]
    return os.path.join(point, rel.lstrip("/"))


def _cgroup2_parent(own: str, top: str) -> str | None:
    """A cgroup v2 directory D where run cgroups can get memory and pids limits: D's children
    have both controllers (D's cgroup.subtree_control lists them: D holds no processes, as
    cgroup v2 requires), we may write D and its cgroup.procs (as root, or in a subtree
    delegated to us: a systemd user slice, `systemd-run --user -p Delegate=yes`), and no
    cgroup between our own and D sets a memory or pids limit that the runs would escape.
    Tried from our own cgroup upwards; None when there is no such place."""
    d = own
    while d.startswith(top):
        try:
            enabled = _read(f"{d}/cgroup.subtree_control").split()
        except OSError:
            return None
        if {"memory", "pids"} <= set(enabled) and os.access(d, os.W_OK) \
                and os.access(f"{d}/cgroup.procs", os.W_OK):
            return d
        for name in ("memory.max", "memory.high", "pids.max"):  # our runs would escape these
            try:
                if _read(f"{d}/{name}").strip() != "max":
                    return None
            except FileNotFoundError:
                continue
            except OSError:
                return None
        if d.rstrip("/") == top.rstrip("/"):
            return None
        d = os.path.dirname(d.rstrip("/"))
    return None


class Cgroups:
    """A memory and a pids cgroup (v1: one in each hierarchy; v2: one cgroup with both), as the
    kernel allows, reused by the runs of one slot. Limits are rewritten only when a run asks
    for different ones; OOM kills are counted from the previous run's count."""

    NAME = re.compile(r"synth-sbx-(\d+)-(\d+)")

    def __init__(self, name: str, parents: dict[str, str]):
        self.dirs: dict[str, str] = {}
        self.v2 = "v2" in parents
        targets = {"memory": parents["v2"], "pids": parents["v2"]} if self.v2 else parents
        for ctrl, parent in targets.items():
            path = os.path.join(parent, name)
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            except OSError:
                continue
            if self.v2 and not os.path.exists(f"{path}/{ctrl}.max"):
                continue
            self.dirs[ctrl] = path
        self.applied: tuple[int, int] | None = None
        self.oom_seen = self._oom_kills()

    @classmethod
    def sweep(cls, parents: dict[str, str]) -> None:
        """Remove slot cgroups left by fork servers that were killed (their pid is gone)."""
        for parent in set(parents.values()):
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
                if ctrl == "memory" and self.v2:
                    _write(f"{path}/memory.max", str(memory_bytes))
                    if os.path.exists(f"{path}/memory.swap.max"):
                        _write(f"{path}/memory.swap.max", "0")  # swap would stretch the limit
                elif ctrl == "memory":
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
                if not (self.v2 and joined):  # v2: one cgroup holds both controllers
                    _write(f"{path}/cgroup.procs", "0")
                joined.append(ctrl)
            except OSError:
                pass
        return joined

    def procs(self) -> list[int]:
        pids = set()
        for path in set(self.dirs.values()):
            try:
                pids.update(int(p) for p in _read(f"{path}/cgroup.procs").split())
            except (OSError, ValueError):
                continue
        return sorted(pids)

    def _oom_kills(self) -> int:
        path = self.dirs.get("memory")
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            for line in _read(f"{path}/{name}").splitlines() if path else ():
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
        if pids and self.v2:
            try:  # the whole cgroup at once, forks in flight included (Linux 5.14+)
                _write(f"{next(iter(self.dirs.values()))}/cgroup.kill", "1")
            except OSError:
                pass
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
        for path in set(self.dirs.values()):
            for _ in range(200):  # the last tasks leave a moment after they are reaped
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)


class Slot:
    """Reusable per-concurrency resources: an empty network namespace, the mount namespace of
    the runs' filesystem (`prepare_root`) and cgroups. `root_error` says why there is no
    mount namespace, if there is none."""

    def __init__(self, index: int, cgroup_parents: dict[str, str], root_dir: str = "",
                 fs_plan: list | None = None):
        self.index = index
        self.netns = new_netns()
        self.mntns, self.root_error = None, "no filesystem plan"
        if root_dir:
            try:
                self.mntns = prepare_root(root_dir, fs_plan or [])
            except OSError as e:
                self.root_error = f"building the run's filesystem failed: {e}"
        self.cg = Cgroups(f"synth-sbx-{host_pid()}-{index}", cgroup_parents) \
            if cgroup_parents else None

    def close(self) -> None:
        if self.cg:
            self.cg.remove()
        for fd in (self.netns, self.mntns):
            if fd is not None:
                os.close(fd)


# --------------------------------------------------------------------------- the child


def _dup_high(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)


# The run's filesystem is built from an allow-list, in the manner of bubblewrap: a tmpfs root
# holding read-only binds of what the interpreter needs, a few device nodes, private tmpfs on
# /tmp, /var/tmp and /dev/shm, and a /proc of the run's own PID namespace. Nothing else of
# the host (home directories, the project tree, the host's /tmp, /sys, other mounts) exists.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32")
ETC_PATHS = ("passwd", "group", "hosts", "nsswitch.conf", "host.conf", "ld.so.cache",
             "ld.so.conf", "ld.so.conf.d", "localtime", "os-release", "alternatives")
DEVICES = ("null", "zero", "full", "random", "urandom")


def filesystem_plan() -> list[tuple[str, str, str]]:
    """What the run's root holds, as ("dir" | "file" | "link" | "copy", host path, link target
    or, for "copy", the small file's bytes as latin-1 text):
    system directories, basic /etc files, and Python: its install (prefixes, the directory of
    the executable) and site-packages directories. A sys.path entry that is neither under a
    prefix nor a site-packages directory (an editable install's source tree) is left out.
    Nested entries are covered by their top-most ancestor."""
    plan: list[tuple[str, str, str]] = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            plan.append(("link", path, os.readlink(path)))
        elif os.path.isdir(path):
            plan.append(("dir", path, ""))
    for name in ETC_PATHS:
        path = f"/etc/{name}"
        if os.path.isdir(path):
            plan.append(("dir", path, ""))
        elif os.path.isfile(path) and os.stat(path).st_mode & 0o004:  # world-readable only
            # small files are copied into the run's root (one write, not two mounts per run)
            with open(path, "rb") as f:
                plan.append(("copy", path, f.read(1 << 20).decode("latin-1")))
    wanted = {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix,
              os.path.dirname(os.path.realpath(sys.executable))}
    wanted |= {p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")}
    real = {os.path.realpath(p) for p in wanted if p and os.path.isdir(p)}
    # Resolve system-path symlinks (/lib -> usr/lib) so a Python under /usr is seen as covered.
    covered = [os.path.realpath(path) for kind, path, _ in plan if kind == "dir"]
    for path in sorted(real):
        if path == "/" or any(path == c or path.startswith(c + "/") for c in covered):
            continue
        plan.append(("dir", path, ""))
        covered.append(path)
    return plan


def _mount_flags(path: str) -> int:
    """The flags a read-only bind of `path` must keep: a user namespace may not clear the
    source mount's nosuid/nodev/noexec/atime flags (they are locked), only add to them."""
    st = os.statvfs(path).f_flag
    flags = MS_NOSUID | MS_NODEV
    for st_bit, ms_bit in ((8, MS_NOEXEC), (1024, 1024), (2048, 2048), (4096, 1 << 21)):
        if st & st_bit:  # ST_NOEXEC, ST_NOATIME, ST_NODIRATIME, ST_RELATIME
            flags |= ms_bit
    if not st & (1024 | 4096):
        flags |= 1 << 24  # MS_STRICTATIME: a remount would otherwise default to relatime
    return flags


def _touch(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


def _bind(src: str, dst: str, kind: str, read_only: bool = True) -> None:
    if kind == "dir":
        os.makedirs(dst, exist_ok=True)
    else:
        _touch(dst)
    mount(src, dst, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | _mount_flags(src))


def pivot_root(new_root: str, put_old: str) -> None:
    import platform

    nr = _SYS_PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise OSError(38, f"pivot_root: no syscall number for {platform.machine()}")
    _check(_libc.syscall(nr, new_root.encode(), put_old.encode()), "pivot_root")


def prepare_root(root: str, plan: list) -> int:
    """In the fork server: a mount namespace whose root is the runs' filesystem (see
    `filesystem_plan`), made once per slot and held by the returned fd. Its root is a
    read-only tmpfs with the allow-listed binds, the devices, and empty mount points for /tmp,
    /var/tmp and /dev/shm; the host's /proc is bound at /proc, to be covered by each run's
    own (an unprivileged user namespace may mount a proc only where one is already fully
    visible). The host's tree is detached. Each run enters it and takes a copy of it
    (`enter_root`): a few mounts per run, not a rebuild."""
    own = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        unshare(CLONE_NEWNS)
        ns = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _build_root(root, plan)
        except BaseException:
            os.close(ns)
            raise
        return ns
    finally:
        setns(own, CLONE_NEWNS)  # back home: the server's root and cwd are the host's again
        os.close(own)


def _build_root(root: str, plan: list) -> None:
    # Never let our mounts propagate back to the host's mount namespace.
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    for kind, path, target in plan:
        dst = root + path
        if kind == "link":
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.symlink(target, dst)
        elif kind == "copy":  # `target` holds the file's bytes (latin-1)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, target.encode("latin-1"))
            finally:
                os.close(fd)
        else:
            _bind(path, dst, kind)
    os.makedirs(f"{root}/dev", exist_ok=True)
    for name in DEVICES:  # device nodes bound from the host (a new node needs CAP_MKNOD)
        if os.path.exists(f"/dev/{name}"):
            _bind(f"/dev/{name}", f"{root}/dev/{name}", "file", read_only=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{root}/dev/{name}")
    for path in RUN_TMPFS:
        os.makedirs(root + path, exist_ok=True)
    _bind("/proc", f"{root}/proc", "dir", read_only=False)
    os.mkdir(f"{root}/.old")
    pivot_root(root, f"{root}/.old")
    os.chdir("/")
    _check(_libc.umount2(b"/.old", MNT_DETACH), "umount /.old")
    os.rmdir("/.old")
    # The root's own tmpfs (mount points, links, copied /etc files) becomes read-only too.
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


RUN_TMPFS = ("/tmp", "/var/tmp", "/dev/shm")


def enter_root(job: dict, proc: bool) -> None:
    """In a run, just after it took its own copy of the slot's mount namespace: fresh tmpfs
    on /tmp (`tmpfs_mb`), /var/tmp and /dev/shm, and a /proc of its PID namespace."""
    for path in RUN_TMPFS:
        size = f"{job['tmpfs_mb']}m" if path == "/tmp" else "8m"
        mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")
    if proc:  # covers the host's /proc bound there
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


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_bounding_set() -> None:
    """Empty the capability bounding and ambient sets (needs CAP_SETPCAP: call it while
    privileged), so that not even an execve of a file with capabilities brings any back."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == 22:  # EINVAL: past the last capability of this kernel
                break
            _check(-1, f"prctl(PR_CAPBSET_DROP, {cap})")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def drop_capabilities() -> None:
    """Rootless: the run is uid 0 of the fork server's user namespace (the only uid mapped, the
    user's own), so it cannot switch uid; it gives up every capability instead, for good:
    the bounding and ambient sets are emptied, the securebits locked so that neither uid 0 nor
    an execve brings any back, then the effective, permitted and inheritable sets cleared."""
    drop_bounding_set()
    _check(_libc.prctl(PR_SET_SECUREBITS, SECUREBITS_LOCKED_DOWN, 0, 0, 0), "securebits")
    header, data = _CapHeader(0x20080522, 0), (_CapData * 2)()  # _LINUX_CAPABILITY_VERSION_3
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(("CapEff:", "CapPrm:", "CapBnd:")) and int(line.split()[1], 16):
            raise RuntimeError(f"capabilities were not dropped ({line})")


def enter_user_namespace() -> None:
    """Rootless: make the calling (single-threaded) process uid and gid 0 of a new user
    namespace, mapped to the caller's own uid and gid, with setgroups denied (all an
    unprivileged process may map). Inside it, it may make PID, network, mount and IPC
    namespaces and mount tmpfs, binds and proc in them."""
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"0 {uid} 1")
    _write("/proc/self/gid_map", f"0 {gid} 1")


def enter(job: dict, fds: tuple[int, ...], slot: Slot, host_workdir: str, iso: dict,
          settings) -> str:
    """Isolate the calling process, a child just forked as PID 1 of a fresh PID namespace, in
    the order that matters: everything that needs privilege first, then drop it, then seccomp.
    `fds` become its stdin, stdout, stderr, report fd and job fd (0-4); every other fd is
    closed. `settings.level` is "root" (the fork server runs as root: the run drops to a uid
    of its own), "rootless" (the server is uid 0 of its own user namespace: the run drops every
    capability) or "none" (no isolation, an explicit opt-in: rlimits, seccomp and a work dir
    only). Records what held in `iso`, returns the work dir; raises if anything essential
    failed (the run then never starts)."""
    level = settings.level
    os.setsid()
    iso["level"] = level
    # A uid no other live run has: derived from our pid as the host sees it (the host's
    # /proc is still mounted here), or nobody where the uid range is not ours.
    uid = UID_BASE + int(os.readlink("/proc/self")) if settings.ids == "unique" else NOBODY
    iso["cgroups"] = slot.cg.join() if slot.cg else []
    iso.update(net_ns=False, ipc_ns=False, mount_ns=False, private_root=False)
    if level != "none":
        _enter_namespaces(slot, iso)
    workdir = host_workdir
    if iso["private_root"] and not iso["mount_ns"]:  # never mount into the slot's namespace
        raise RuntimeError("entered the run's filesystem but could not copy its namespace")
    if iso["private_root"]:
        enter_root(job, iso["pid_ns"])
        workdir = "/tmp/work"
    elif level == "rootless":  # the run would see everything the user can: never run it
        raise RuntimeError(f"no private filesystem for the run ({slot.root_error})")
    elif iso["mount_ns"]:  # root on a kernel without the root filesystem: private tmpfs
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        for path in RUN_TMPFS:
            if os.path.isdir(path):
                mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=1777")
        if iso["pid_ns"]:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        workdir = "/tmp/work"
    os.mkdir(workdir, 0o700)
    if level == "root":
        os.chown(workdir, uid, uid)
    os.chdir(workdir)

    high = [_dup_high(fd) for fd in fds]
    for target, fd in enumerate(high):  # 0 stdin, 1 stdout, 2 stderr, 3 report, 4 job
        os.dup2(fd, target)
    os.set_inheritable(3, False)
    os.set_inheritable(4, False)
    os.closerange(5, max(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    iso["fds_wired"] = True  # from here on, the report fd is 3

    _set_rlimits(job)
    os.environ.clear()
    os.environ.update({"PATH": ENV_PATH, "HOME": workdir, "USER": "sandbox",
                       "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"})
    sys.dont_write_bytecode = True
    if level == "root":
        drop_bounding_set()
        _drop_privileges(uid, uid)  # root -> another uid: the kernel clears every other set
        iso["uid"] = uid
    elif level == "rootless":
        drop_capabilities()
        iso["uid"], iso["capabilities"] = 0, "none"  # uid 0 of the user namespace: the user
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        iso["seccomp"] = _seccomp.install(_libc, settings.seccomp_filter)
    except OSError:
        iso["seccomp"] = False
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    return workdir


def _enter_namespaces(slot: Slot, iso: dict) -> None:
    """The slot's network namespace (or a new one), new IPC and mount namespaces (the mount
    namespace a copy of the slot's, whose root is the runs' filesystem, when there is one)."""
    if slot.mntns is not None:
        try:
            setns(slot.mntns, CLONE_NEWNS)  # the root and cwd become the slot's root
            iso["private_root"] = True
        except OSError as e:
            slot.root_error = f"entering the run's filesystem failed: {e}"
    wanted = {"ipc_ns": CLONE_NEWIPC, "mount_ns": CLONE_NEWNS}
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


def host_pid() -> int:
    """This process's pid as the host sees it (the host's /proc is mounted here), also when
    it runs in a PID namespace of its own (the rootless fork server is PID 1 of one)."""
    try:
        return int(os.readlink("/proc/self"))
    except (OSError, ValueError):
        return os.getpid()


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


