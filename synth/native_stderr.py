"""Keep the Ray core worker's own log lines off a user's terminal (issue 16 item 6).

The driver's C++ core worker writes its log lines straight to file descriptor 2, past
Python's logging: Ray Data always hands an actor pool its constructor arguments through the
object store, so every run printed a red ``[... E ...] core_worker.cc:NNNN: Actor ... has
constructor arguments in the object store and max_restarts > 0 ...`` line that looks like a
failure and is not one. These lines also go to the driver's log file in the Ray session
folder (``python-core-driver-*.log``), so nothing is lost by not showing them.

`install()` points descriptor 2 at a pipe read by a small child process that copies
everything to the real stderr except lines in the C++ log format at the debug, info,
warning and error levels; fatal lines, crash reports and any other text pass. Python's
`sys.stderr` keeps the real stderr, so progress bars still see a terminal and synth's own
messages are not delayed. A child process, not a thread, so that what a crashing driver
writes last still reaches the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys

# "[2026-12-04 06:15:02,488 E 13063 13063] core_worker.cc:2465: ..."
RAY_NATIVE_LINE = rb"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [DIWE] \d+ \d+\] [\w./-]+\.(?:cc|h):\d+: "

_FILTER = r"""
import os, re, signal
signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is the driver's to handle
native = re.compile(%r)
buf, mid = b"", False
def put(data):
    try:
        os.write(1, data)
    except OSError:
        raise SystemExit(0)
while True:
    try:
        chunk = os.read(0, 65536)
    except InterruptedError:
        continue
    if not chunk:
        break
    buf += chunk
    out = []
    while buf:
        nl = buf.find(b"\n")
        if mid:  # the rest of a line already passed on
            if nl < 0:
                out.append(buf); buf = b""
                break
            out.append(buf[:nl + 1]); buf = buf[nl + 1:]; mid = False
            continue
        if nl < 0:
            if buf.startswith(b"[") and len(buf) < 8192:
                break  # may be a log line: wait for its end
            out.append(buf); buf = b""; mid = True
            break
        line, buf = buf[:nl + 1], buf[nl + 1:]
        if not native.match(line):
            out.append(line)
    if out:
        put(b"".join(out))
if buf and not native.match(buf):
    put(buf)
""" % RAY_NATIVE_LINE

_installed = False


def install() -> bool:
    """Filter this process's descriptor 2 from now on; False when it cannot (no usable
    stderr), in which case nothing changes."""
    global _installed
    if _installed:
        return True
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return False
    r, w = os.pipe()
    try:
        subprocess.Popen([sys.executable, "-S", "-c", _FILTER], stdin=r, stdout=real,
                         stderr=real, close_fds=True)
    except OSError:
        for fd in (r, w, real):
            os.close(fd)
        return False
    os.close(r)
    os.dup2(w, 2)
    os.close(w)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=encoding, errors="backslashreplace")
    _installed = True
    return True
