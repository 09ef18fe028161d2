"""One writer per output folder: `with output_lock(OUT, "synth filter"): ...`.

Two commands writing into one OUT at once lose rows (one's cleanup deletes the other's temp
files and shards), so every command that writes an OUT holds this lock while it works. The
lock is the file `OUT/.synth.lock` holding JSON `{host, host_id, pid, pid_start, command,
started, token}`; code that checks what OUT holds must ignore the names `is_lock_name` accepts
(`.synth.lock`, and for a few system calls of a stale-lock takeover `.synth.lock.takeover` and
`.synth.lock.stale-<hex>`).

Local folders and shared filesystems (NFS): the file is made with an atomic exclusive create
(`O_CREAT | O_EXCL`), so of two commands exactly one wins; the other raises `SynthError` (one
line, CLI exit 2) naming the holder and what to do. While held, a daemon thread touches the
file every `HEARTBEAT_S` seconds (its mtime is the heartbeat). A lock is stale, and is taken
over, when its holder ran on this machine and its process is gone, or when its heartbeat is
older than `STALE_AFTER_S` (the holder's host died, or it is stuck): a SIGKILLed command never
blocks OUT for good. Takers take turns (a second exclusive-create file,
`OUT/.synth.lock.takeover`, held for a few system calls): the one whose turn it is checks the
lock is still the one it judged stale, renames it to a private name, checks again that it
moved that very file, deletes it; then every taker competes with the exclusive create like
anyone else, so two takers cannot both win. Hosts are
told apart by hostname, boot id and pid namespace; clocks of hosts sharing a filesystem must
agree within a minute or so (the heartbeat age is judged against this host's clock).

Object stores (`s3://`, `gs://`, through `pyarrow.fs`): there is no atomic create-if-absent
through pyarrow, so the lock is best effort: a command that finds a fresh lock object loses;
otherwise it writes its own, waits `SETTLE_S` and reads it back, and wins only if its token is
still there (of two commands that write within that window, the later write wins and the
other sees it and loses). Two commands can both win only when one stalls longer than
`SETTLE_S` between its check and its write; the heartbeat (a rewrite of the object) notices a
lock replaced under its holder, and the holder then fails at release instead of reporting
success.

Released on exit, exceptions and Ctrl-C (and OUT itself removed again if this lock created it
and nothing else was written).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator

from synth.errors import SynthError

LOCK_NAME = ".synth.lock"
HEARTBEAT_S = 10.0  # how often a held lock's heartbeat is refreshed
STALE_AFTER_S = 180.0  # a lock whose heartbeat is older than this is taken over
SETTLE_S = 2.0  # object stores: wait between writing the lock and reading it back
TAKEOVER_STALE_S = 30.0  # a takeover left half-done by a dead taker is cleared after this


def is_lock_name(name: str) -> bool:
    """True for the names this module makes in OUT (ignore them when checking OUT's contents)."""
    return name.startswith(LOCK_NAME)


# --------------------------------------------------------------------------- who holds it


def host_id() -> str:
    """This machine and pid namespace: a pid is only comparable between equal host ids."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts)


def _pid_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name in (...) may hold spaces


def _pid_gone(pid: int, start: str | None) -> bool:
    """True when process `pid` (started at `start`, if known) of this host no longer runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: it runs
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # exited, not yet reaped
        return True
    return start is not None and fields[19] != start  # the pid now names another process


def _holder_info(command: str) -> dict:
    return {
        "host": socket.gethostname(), "host_id": host_id(), "pid": os.getpid(),
        "pid_start": _pid_start(os.getpid()), "command": command,
        "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "token": uuid.uuid4().hex,
    }


def stale_reason(holder: dict | None, age_s: float, stale_after: float = STALE_AFTER_S) -> str | None:
    """Why a lock held by `holder` (its JSON, None if unreadable) whose heartbeat is `age_s`
    seconds old may be taken over, or None while it is live."""
    if age_s > stale_after:
        return f"no heartbeat for {age_s:.0f}s"
    if holder and holder.get("host_id") == host_id() and isinstance(holder.get("pid"), int):
        if holder["pid"] != os.getpid() and _pid_gone(holder["pid"], holder.get("pid_start")):
            return f"its process {holder['pid']} is gone"
    return None


def _busy(out: str, lock: str, holder: dict | None, age_s: float, stale_after: float) -> SynthError:
    if holder:
        who = (f"`{holder.get('command', '?')}` (pid {holder.get('pid', '?')} on "
               f"{holder.get('host', '?')}, since {holder.get('started', '?')})")
    else:
        who = "another synth command (starting)"
    return SynthError(
        f"output {out} is in use by {who}; wait for it to finish or choose another output "
        f"(if that command is dead, its lock {lock} is taken over {stale_after / 60:.0f} min "
        f"after its last heartbeat, {age_s:.0f}s ago)")


# --------------------------------------------------------------------------- local / NFS


def _stat_and_text(path: Path) -> tuple[os.stat_result, str] | None:
    """The status and the content of one file, read through one descriptor, or None when it
    does not exist. Separate `stat` and `read` calls could pair the age and inode of a stale
    lock with the content of the fresh lock made in its place (whose inode number may be the
    stale one's, just freed): a taker would then remove a live lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return st, b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(fd)


class _FileLock:
    """OUT/.synth.lock on a local or shared (NFS) filesystem."""

    def __init__(self, out: Path, command: str, stale_after: float):
        self.out, self.path = out, out / LOCK_NAME
        self.info = _holder_info(command)
        self.stale_after = stale_after
        self.ident: tuple | None = None  # (inode, content) of the lock this command made
        self.created_out = False

    def acquire(self) -> None:
        from synth.paths import refuse_file_in_the_way

        refuse_file_in_the_way(self.out, "output path")
        data = (json.dumps(self.info) + "\n").encode()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # each round wins, loses, or clears a stale lock
            if not self.out.exists():
                try:
                    self.out.mkdir(parents=True)
                    self.created_out = True
                except FileExistsError:
                    pass
                except OSError as e:
                    raise SynthError(f"cannot create output folder {self.out}: {e.strerror}") from None
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder, age, ident = self._read()
                if ident is None:  # released in between: try again
                    continue
                if stale_reason(holder, age, self.stale_after) is None:
                    raise _busy(str(self.out), str(self.path), holder, age, self.stale_after) from None
                self._remove_stale(ident)
                continue
            except FileNotFoundError:  # OUT was removed in between (an empty OUT's release)
                continue
            except OSError as e:
                raise SynthError(f"cannot lock output {self.out}: {e.strerror} ({self.path})") from None
            try:
                os.write(fd, data)
                os.fsync(fd)
                self.ident = (os.fstat(fd).st_ino, data.decode())
            finally:
                os.close(fd)
            return
        raise SynthError(f"could not lock output {self.out}: its lock {self.path} keeps changing")

    def _read(self) -> tuple[dict | None, float, tuple | None]:
        """(holder JSON or None, heartbeat age in seconds, identity or None if no lock).

        The identity is (inode, content): an inode number alone is reused at once after an
        unlink, the content holds a random token."""
        holder = None
        for attempt in range(3):  # a lock just created may not hold its JSON yet
            got = _stat_and_text(self.path)
            if got is None:
                return None, 0.0, None
            st, text = got
            try:
                holder = json.loads(text)
                break
            except ValueError:
                time.sleep(0.05 * (attempt + 1))
        return holder, max(0.0, time.time() - st.st_mtime), (st.st_ino, text)

    def _identity(self, path: Path) -> tuple | None:
        got = _stat_and_text(path)
        return None if got is None else (got[0].st_ino, got[1])

    def _mine(self) -> bool:
        return self._identity(self.path) == self.ident

    def _remove_stale(self, ident: tuple) -> None:
        """Remove the stale lock `ident` (see `_read`), and no other.

        Takers remove a stale lock one at a time, under a second exclusive-create file
        (`.synth.lock.takeover`): the taker holding it checks that the lock is still the one
        it judged stale, moves it to a private name and deletes it. Without that, a taker
        that read the stale lock could remove a fresh lock another taker had just made in
        its place. A takeover file left by a taker that died inside those few system calls
        is removed after `TAKEOVER_STALE_S`."""
        mutex = self.path.with_name(LOCK_NAME + ".takeover")
        try:
            os.close(os.open(mutex, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:  # another taker is at it: look again in a moment
            with contextlib.suppress(FileNotFoundError):
                if time.time() - os.stat(mutex).st_mtime > TAKEOVER_STALE_S:
                    os.unlink(mutex)
            time.sleep(0.02)
            return
        try:
            if self._identity(self.path) != ident:  # already replaced: nothing to remove
                return
            grave = self.path.with_name(f"{LOCK_NAME}.stale-{uuid.uuid4().hex}")
            try:
                os.rename(self.path, grave)
            except FileNotFoundError:  # its holder came back and released it
                return
            if self._identity(grave) != ident:
                # Its holder came back, released and a new lock was made in between: put
                # that one back, never over a lock made since (link fails if the name exists).
                with contextlib.suppress(FileExistsError):
                    os.link(grave, self.path)
            os.unlink(grave)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(mutex)

    def heartbeat(self) -> bool:
        """Refresh the heartbeat; False when the lock is no longer this one (taken over)."""
        try:
            if not self._mine():
                return False
            os.utime(self.path)  # mtime = now (the file server's clock on NFS)
        except FileNotFoundError:
            return False
        except OSError:
            pass  # a passing I/O error: try again next beat
        return True

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self._mine():
                os.unlink(self.path)
        if self.created_out:  # leave no empty OUT behind when nothing was written
            with contextlib.suppress(OSError):
                self.out.rmdir()


# --------------------------------------------------------------------------- object stores


class _StoreLock:
    """OUT/.synth.lock as an object, best effort (see the module docstring)."""

    def __init__(self, fs, root: str, label: str, command: str, stale_after: float,
                 settle: float = SETTLE_S):
        self.fs, self.label = fs, label
        self.path = root.rstrip("/") + "/" + LOCK_NAME
        self.info = _holder_info(command)
        self.stale_after, self.settle = stale_after, settle

    def _read(self) -> tuple[dict | None, float, bool]:
        from pyarrow import fs as pafs

        info = self.fs.get_file_info(self.path)
        if info.type == pafs.FileType.NotFound:
            return None, 0.0, False
        try:
            with self.fs.open_input_stream(self.path) as f:
                holder = json.loads(f.read().decode())
        except (OSError, ValueError):
            holder = None
        mtime = info.mtime.timestamp() if info.mtime is not None else time.time()
        return holder, max(0.0, time.time() - mtime), True

    def _write(self) -> None:
        self.fs.create_dir(self.path.rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(self.path) as f:
            f.write((json.dumps(self.info) + "\n").encode())

    def acquire(self) -> None:
        holder, age, found = self._read()
        if found and stale_reason(holder, age, self.stale_after) is None:
            raise _busy(self.label, f"{self.label}/{LOCK_NAME}", holder, age, self.stale_after)
        self._write()
        time.sleep(self.settle)
        holder, age, found = self._read()
        if not holder or holder.get("token") != self.info["token"]:
            raise _busy(self.label, f"{self.label}/{LOCK_NAME}", holder, age, self.stale_after)

    def heartbeat(self) -> bool:
        holder, _, _ = self._read()
        if not holder or holder.get("token") != self.info["token"]:
            return False
        self._write()
        return True

    def release(self) -> None:
        holder, _, _ = self._read()
        if holder and holder.get("token") == self.info["token"]:
            with contextlib.suppress(OSError):
                self.fs.delete_file(self.path)


# --------------------------------------------------------------------------- the lock


def _make(out: str | Path, command: str, stale_after: float):
    s = str(out)
    if "://" in s and not s.startswith("file://"):
        from pyarrow import fs as pafs

        try:
            fs, root = pafs.FileSystem.from_uri(s)
        except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a bad URI
            raise SynthError(f"output {s}: not a usable URI ({e})") from None
        return _StoreLock(fs, root, s.rstrip("/"), command, stale_after)
    return _FileLock(Path(s[len("file://"):] if s.startswith("file://") else s), command, stale_after)


class OutputLock:
    """A held lock: `path`, `info` (the JSON written), `lost` (set when another command took it
    over while held, e.g. after this process was stopped for longer than STALE_AFTER_S)."""

    def __init__(self, impl, heartbeat: float):
        self._impl = impl
        self.path = str(impl.path)
        self.info = impl.info
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(heartbeat,),
                                        name="synth-output-lock", daemon=True)

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                ok = self._impl.heartbeat()
            except Exception:  # a passing storage error: the next beat tries again
                continue
            if not ok:
                self.lost = True
                return

    def _release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._impl.release()


@contextlib.contextmanager
def output_lock(out: str | Path, command: str, *, heartbeat: float = HEARTBEAT_S,
                stale_after: float = STALE_AFTER_S) -> Iterator[OutputLock]:
    """Hold OUT's lock for the block: raises `SynthError` (naming the holder) when another
    command holds it; released on exit, exceptions and Ctrl-C. A block that ends normally
    after its lock was taken over raises `SynthError`: the output may hold another command's
    rows too and should be checked."""
    impl = _make(out, command, stale_after)
    impl.acquire()
    lock = OutputLock(impl, heartbeat)
    lock._thread.start()
    try:
        yield lock
    finally:
        lock._release()
    if lock.lost:
        raise SynthError(f"output {out}: this command's lock was taken over by another command "
                         "while it ran (it was stopped or cut off from the filesystem for longer "
                         f"than {stale_after:.0f}s); check the output before using it")
