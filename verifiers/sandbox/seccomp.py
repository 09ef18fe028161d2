"""A small seccomp-BPF deny list for the code sandbox (stdlib + ctypes only).

Installed in the sandboxed child after it has dropped root and set `no_new_privs`, just before
the untrusted program runs. It is a deny list, not an allow list: ordinary Python (threads,
subprocess, files, sockets) keeps working, while the calls that let an unprivileged process
grow new kernel attack surface or look outside its own process fail with EPERM:

- new namespaces (`unshare`, `setns`, `clone` with any CLONE_NEW* flag): an unprivileged user
  namespace would give the program "root" inside it, and mounts, raw sockets and so on with it;
- mounts and root changes (`mount`, `umount2`, `pivot_root`, `chroot`, the new mount API);
- looking into other processes (`ptrace`, `process_vm_readv/writev`, `kcmp`);
- kernel keyrings, `bpf`, `perf_event_open`, `userfaultfd`, `io_uring`, module loading,
  `kexec`, `reboot`, swap, quotas, file handles.

`clone3` answers ENOSYS (its flags live in memory a BPF filter cannot read), so glibc falls
back to `clone`, whose flags the filter does check. On x86-64 the x32 ABI is refused. Only
x86-64 and aarch64 have tables; elsewhere `install()` returns False and the sandbox says so.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

# Syscall numbers. aarch64 uses the generic table; the new mount API, io_uring and clone3
# have the same numbers on both.
_DENY = {
    "x86_64": {
        "ptrace": 101, "syslog": 103, "uselib": 134, "personality": 135, "vhangup": 153,
        "modify_ldt": 154, "pivot_root": 155, "chroot": 161, "acct": 163, "mount": 165,
        "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172,
        "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179,
        "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
        "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303,
        "open_by_handle_at": 304, "setns": 308, "process_vm_readv": 310,
        "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "kexec_file_load": 320,
        "bpf": 321, "userfaultfd": 323,
    },
    "aarch64": {
        "umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51, "quotactl": 60,
        "acct": 89, "personality": 92, "unshare": 97, "kexec_load": 104, "init_module": 105,
        "delete_module": 106, "syslog": 116, "ptrace": 117, "reboot": 142, "add_key": 217,
        "request_key": 218, "keyctl": 219, "swapon": 224, "swapoff": 225,
        "perf_event_open": 241, "name_to_handle_at": 264, "open_by_handle_at": 265,
        "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272,
        "finit_module": 273, "bpf": 280, "userfaultfd": 282, "kexec_file_load": 294,
    },
}
_COMMON = {
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442,
}
_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE3 = 435
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NS_MASK = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
                  | 0x40000000)

# Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_ERRNO, _RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None) -> bytes | None:
    """The BPF program for this machine's architecture, or None where there is no table."""
    arch = machine or platform.machine()
    if arch not in _DENY:
        return None
    eperm = _RET_ERRNO | errno.EPERM
    prog = [
        _ins(_LD_W_ABS, 4),                      # seccomp_data.arch
        _ins(_JEQ_K, _AUDIT_ARCH[arch], 1, 0),
        _ins(_RET_K, _RET_KILL_PROCESS),         # a foreign ABI: never expected, so kill
        _ins(_LD_W_ABS, 0),                      # seccomp_data.nr
    ]
    if arch == "x86_64":                         # x32 syscalls carry bit 30
        prog += [_ins(_JGE_K, 0x40000000, 0, 1), _ins(_RET_K, eperm)]
    for nr in sorted({*_DENY[arch].values(), *_COMMON.values()}):
        prog += [_ins(_JEQ_K, nr, 0, 1), _ins(_RET_K, eperm)]
    prog += [_ins(_JEQ_K, _CLONE3, 0, 1), _ins(_RET_K, _RET_ERRNO | errno.ENOSYS)]
    prog += [
        _ins(_JEQ_K, _CLONE[arch], 0, 3),
        _ins(_LD_W_ABS, 16),                     # low 32 bits of args[0] (little endian)
        _ins(_JSET_K, _CLONE_NS_MASK, 0, 1),
        _ins(_RET_K, eperm),
        _ins(_RET_K, _RET_ALLOW),
    ]
    return b"".join(prog)


def install(libc: ctypes.CDLL, code: bytes | None = None) -> bool:
    """Set no_new_privs and install the filter (`build_filter()` unless given) on the calling
    thread; False where there is no table for this architecture."""
    code = code or build_filter()
    if code is None:
        return False
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_char_p))
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")
    return True
