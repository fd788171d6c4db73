"""A sandbox worker: runs one tenant's uploaded plugin code, one call at a time, in the
order the requests arrive (the service may have several in flight).

A standalone program, ``python -I -S -B worker.py CONFIG_JSON``, started by
``process.py`` with an empty environment in an empty temporary directory; it never
imports ``app``. Before it reads the first request it confines itself, in this order:
pre-imports the allowed modules (nothing can be imported from disk afterwards), mounts
an empty read-only tmpfs on its directory and chroots into it, sets its rlimits, then
enters a Landlock domain and loads a seccomp filter. It then says hello with the layers
that took, and answers requests on its pipe with the framing of ``protocol.py``
(mirrored here).
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import importlib
import json
import os
import resource
import struct
import sys
import types
from collections import OrderedDict
from typing import Any

ALLOWED_MODULES = (
    "base64",
    "binascii",
    "bisect",
    "collections",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "hmac",
    "ipaddress",
    "itertools",
    "json",
    "math",
    "operator",
    "random",
    "re",
    "statistics",
    "string",
    "textwrap",
    "time",
    "typing",
    "unicodedata",
    "urllib.parse",
    "uuid",
    "zlib",
    "struct",
)
"""What plugin code can ``import``: once chrooted nothing else is on disk to import."""

# Imported lazily by the stdlib itself (codecs by name, datetime.strptime), which would
# fail after the chroot.
LAZY_STDLIB = (
    "_strptime",
    "encodings.ascii",
    "encodings.base64_codec",
    "encodings.cp1252",
    "encodings.hex_codec",
    "encodings.idna",
    "encodings.latin_1",
    "encodings.raw_unicode_escape",
    "encodings.unicode_escape",
    "encodings.utf_16",
    "encodings.utf_32",
)

DENIED_SYSCALLS = (
    # new processes and programs
    "fork",
    "vfork",
    "clone",
    "clone3",
    "execve",
    "execveat",
    # network
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    # other processes
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_open",
    "pidfd_getfd",
    "pidfd_send_signal",
    # leaving the confinement
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "setrlimit",
    "prlimit64",
    "open_by_handle_at",
    "name_to_handle_at",
    "fsopen",
    "fsmount",
    "fspick",
    "open_tree",
    "move_mount",
    "mount_setattr",
    # kernel attack surface
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "syslog",
    "quotactl",
    "fanotify_init",
)

HEADER = struct.Struct(">I")
REPLY = struct.Struct(">IIBBI")
"""The reply's frame size (what follows it), id, kind, flags, output size."""
OK, EXCEPTION, MISSING_HOOK, NOT_JSON, OVERSIZED_REPLY, NEED_SOURCE, HELLO = range(7)
RETIRE, CACHED = 1, 2
MAX_DETAIL = 300
MAX_MODULES = 16
READ_SIZE = 1 << 16
PLUGIN_FILE = "<plugin "
ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

# <sys/mount.h>, <linux/prctl.h>
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 4, 38
# The same numbers on every architecture (system calls added since Linux 5.1 share them).
LANDLOCK_CREATE_RULESET, LANDLOCK_RESTRICT_SELF = 444, 446


class Pipe:
    """The worker's end of its dedicated pipe pair, blocking. Requests may arrive several
    at a time: they are read in large chunks and answered one by one."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self.fd_in = fd_in
        self.fd_out = fd_out
        self.buffer = bytearray()

    def receive(self) -> Any:
        """The next request, or ``None`` when the service closed the pipe."""
        buffer = self.buffer
        while True:
            wanted = HEADER.size
            if len(buffer) >= HEADER.size:
                wanted += HEADER.unpack_from(buffer)[0]
                if len(buffer) >= wanted:
                    body = bytes(buffer[HEADER.size : wanted])
                    del buffer[:wanted]
                    return json.loads(body)
            chunk = os.read(self.fd_in, max(READ_SIZE, wanted - len(buffer)))
            if not chunk:
                return None
            buffer += chunk

    def send(self, call_id: int, kind: int, flags: int, output: bytes, body: bytes) -> None:
        size = REPLY.size - HEADER.size + len(output) + len(body)
        view = memoryview(REPLY.pack(size, call_id, kind, flags, len(output)) + output + body)
        while view:
            view = view[os.write(self.fd_out, view) :]


class Capture:
    """``sys.stdout`` and ``sys.stderr`` during a call: keeps the first ``limit`` bytes."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.limit - self.size
        kept = text
        if len(text) > room:
            self.truncated = True
            kept = text[: max(room, 0)]
        if kept:
            self.parts.append(kept)
            self.size += len(kept)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def take(self) -> bytes:
        """What was written since the last ``take``, UTF-8, at most ``limit`` bytes and a
        note when truncated."""
        if not self.parts and not self.truncated:
            return b""
        raw = "".join(self.parts).encode("utf-8", "replace")
        truncated = self.truncated or len(raw) > self.limit
        self.parts, self.size, self.truncated = [], 0, False
        if not truncated:
            return raw
        kept = raw[: self.limit].decode("utf-8", "ignore").encode("utf-8")
        return kept + b"\n[output truncated]"


class Failed(Exception):
    def __init__(self, kind: int, detail: str, retire: bool = False) -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail[:MAX_DETAIL]
        self.retire = retire


def describe(exc: BaseException) -> str:
    """``Type: message (line N)``: never a traceback, never locals."""
    try:
        return _describe(exc)
    except BaseException:
        return "an exception that cannot be described"


def _describe(exc: BaseException) -> str:
    # The exception is the plugin's: its __str__ and even its class's __name__ run its code.
    try:
        message = str(exc)
    except BaseException:
        message = "<unprintable>"
    name = str(type(exc).__name__)
    text = f"{name}: {message}" if message else name
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.startswith(PLUGIN_FILE):
            line = tb.tb_lineno
        tb = tb.tb_next
    return text if line is None else f"{text[: MAX_DETAIL - 16]} (line {line})"


class Runner:
    def __init__(self, pipe: Pipe, max_output_bytes: int, max_reply_bytes: int) -> None:
        self.pipe = pipe
        self.max_reply_bytes = max_reply_bytes
        self.capture = Capture(max_output_bytes)
        self.modules: OrderedDict[str, types.ModuleType] = OrderedDict()

    def serve(self) -> None:
        capture, stdout, stderr = self.capture, sys.__stdout__, sys.__stderr__
        while (request := self.pipe.receive()) is not None:
            kind, flags = OK, 0
            # Set before every call: the plugin may have replaced them during the last.
            sys.stdout = sys.stderr = capture
            try:
                body = self.run(request)
            except Failed as failed:
                kind, body = failed.kind, failed.detail.encode("utf-8", "replace")
                flags = RETIRE if failed.retire else 0
            finally:
                sys.stdout, sys.stderr = stdout, stderr
            if request["module"]["key"] in self.modules:
                flags |= CACHED
            self.pipe.send(request["id"], kind, flags, capture.take(), body)

    def run(self, request: dict[str, Any]) -> bytes:
        module = self.load(request["module"])
        hook = module.__dict__.get(request["hook"])
        if not callable(hook):
            raise Failed(MISSING_HOOK, f"the module defines no function {request['hook']}")
        try:
            result = hook(**request["args"])
        except BaseException as exc:
            raise Failed(EXCEPTION, describe(exc), isinstance(exc, MemoryError)) from None
        if result is None:
            return b"null"
        try:
            encoded = ENCODER.encode(result).encode("utf-8")
        except BaseException as exc:
            raise Failed(NOT_JSON, describe(exc), isinstance(exc, MemoryError)) from None
        if len(encoded) > self.max_reply_bytes:
            raise Failed(OVERSIZED_REPLY, f"{len(encoded)} bytes")
        return encoded

    def load(self, spec: dict[str, Any]) -> types.ModuleType:
        key: str = spec["key"]
        module = self.modules.get(key)
        if module is not None:
            # A source sent again (two first calls in flight at once) is not reloaded.
            self.modules.move_to_end(key)
            return module
        source = spec.get("source")
        if not isinstance(source, str):
            raise Failed(NEED_SOURCE, key)
        name: str = spec["name"]
        module = types.ModuleType(name)
        module.__dict__["__builtins__"] = builtins
        try:
            code = compile(source, f"{PLUGIN_FILE}{name}>", "exec", dont_inherit=True)
            exec(code, module.__dict__)  # noqa: S102 - this process exists to run it
        except BaseException as exc:
            raise Failed(EXCEPTION, describe(exc), isinstance(exc, MemoryError)) from None
        for old in [k for k in self.modules if k.startswith(f"{name}:")]:
            del self.modules[old]
        self.modules[key] = module
        while len(self.modules) > MAX_MODULES:
            self.modules.popitem(last=False)
        return module


# --- confinement ---------------------------------------------------------------------


def import_seccomp(directory: str | None) -> Any:
    if not directory:
        return None
    sys.path.insert(0, directory)
    try:
        return importlib.import_module("pyseccomp")
    except Exception:
        return None
    finally:
        sys.path.remove(directory)


def libc() -> Any:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True)
    except Exception:
        return None


def preimport() -> None:
    for name in (*ALLOWED_MODULES, *LAZY_STDLIB):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def namespaces() -> dict[str, str]:
    found = {}
    for kind in ("user", "net", "mnt"):
        try:
            found[kind] = os.readlink(f"/proc/self/ns/{kind}")
        except OSError:
            found[kind] = ""
    return found


def readonly_root(c: Any) -> bool:
    """An empty read-only tmpfs over the working directory, seen only in this mount
    namespace: nothing can be created in the root the worker is about to chroot into."""
    here = os.getcwd()
    flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if c is None or c.mount(b"none", here.encode(), b"tmpfs", flags, b"size=4k,mode=0555"):
        return False
    os.chdir(here)
    return True


def chroot_here() -> bool:
    try:
        os.chroot(".")
        os.chdir("/")
    except OSError:
        return False
    return True


def set_rlimits(config: dict[str, Any], nproc_counts: bool) -> tuple[bool, bool]:
    wanted = (
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_FSIZE, config["file_size_bytes"], config["file_size_bytes"]),
        (resource.RLIMIT_NOFILE, config["open_files"], config["open_files"]),
        (resource.RLIMIT_CPU, config["cpu_s"], config["cpu_s"] + 1),
        (resource.RLIMIT_AS, config["memory_bytes"], config["memory_bytes"]),
    )
    done = True
    for limit, soft, hard in wanted:
        _, current = resource.getrlimit(limit)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        try:
            resource.setrlimit(limit, (soft, hard))
        except (ValueError, OSError):
            done = False
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    except (ValueError, OSError):
        nproc_counts = False
    return done, nproc_counts


def landlock(c: Any) -> bool:
    """A Landlock domain with no rules: no file can be opened, created or executed; from
    ABI 4 no TCP bind or connect, from ABI 6 no signal to a process outside the domain."""
    if c is None:
        return False
    import ctypes

    c.syscall.restype = ctypes.c_long
    abi = c.syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return False
    fs_rights = 13 if abi < 2 else 14 if abi < 3 else 15 if abi < 5 else 16
    attr = (ctypes.c_uint64 * 3)(
        (1 << fs_rights) - 1, 0b11 if abi >= 4 else 0, 0b11 if abi >= 6 else 0
    )
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    fd = c.syscall(LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if fd < 0:
        return False
    try:
        return bool(c.syscall(LANDLOCK_RESTRICT_SELF, ctypes.c_int(fd), ctypes.c_uint32(0)) == 0)
    finally:
        os.close(fd)


def load_seccomp(seccomp: Any) -> bool:
    if seccomp is None:
        return False
    try:
        syscall_filter = seccomp.SyscallFilter(seccomp.ALLOW)
        syscall_filter.set_attr(seccomp.Attr.CTL_NNP, 1)
        for name in DENIED_SYSCALLS:
            # Some are not system calls of this architecture or libseccomp.
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                syscall_filter.add_rule(seccomp.ERRNO(errno.EPERM), name)
        syscall_filter.load()
    except (OSError, ValueError, RuntimeError):
        return False
    return True


def confine(config: dict[str, Any]) -> dict[str, bool]:
    seccomp = import_seccomp(config.get("seccomp_dir"))
    c = libc()
    preimport()
    mine, theirs = namespaces(), config.get("service_ns", {})
    layers = {
        f"{label}_namespace": bool(mine[kind]) and mine[kind] != theirs.get(kind)
        for kind, label in (("user", "user"), ("net", "network"), ("mnt", "mount"))
    }
    root = os.geteuid() == 0
    layers["readonly_root"] = root and layers["mount_namespace"] and readonly_root(c)
    layers["chroot"] = root and chroot_here()
    # RLIMIT_NPROC is not enforced for root of the initial user namespace.
    layers["rlimits"], layers["rlimit_nproc"] = set_rlimits(
        config, layers["user_namespace"] or not root
    )
    layers["not_dumpable"] = c is not None and c.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
    layers["no_new_privs"] = c is not None and c.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    layers["landlock"] = landlock(c)
    layers["seccomp"] = load_seccomp(seccomp)
    return layers


def main(argv: list[str]) -> int:
    config: dict[str, Any] = json.loads(argv[1])
    pipe = Pipe(config["fd_in"], config["fd_out"])
    layers = confine(config)
    hello = json.dumps({"pid": os.getpid(), "layers": layers}).encode()
    pipe.send(0, HELLO, 0, b"", hello)
    Runner(pipe, config["max_output_bytes"], config["max_reply_bytes"]).serve()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (OSError, KeyboardInterrupt):
        sys.exit(1)
