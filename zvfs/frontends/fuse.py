"""FUSE front end: any :class:`~zvfs.tree.Tree` as a read-only filesystem (mfusepy, libfuse 2 or 3).

A thin adapter: ``getattr``/``readdir``/``read`` ask the tree, its two errors become ENOENT and EIO,
and every write is refused with EROFS. ``mount`` checks the mount point and opens the store before
anything is mounted, so bad input fails at once with a one-line message; by default the daemon then
runs in its own session and ``mount`` returns once the mount is live.
"""

from __future__ import annotations

import ctypes.util
import errno
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

# mfusepy loads libfuse 2 when both are installed. libfuse 3 lets the kernel stop asking about opens
# and releases (see ``TreeOperations.open``): a warm read of a cached file then never leaves the kernel.
if (
    "FUSE_LIBRARY_PATH" not in os.environ
    and "FUSE_LIBRARY_NAME" not in os.environ
    and ctypes.util.find_library("fuse3")
):
    os.environ["FUSE_LIBRARY_NAME"] = "fuse3"

import mfusepy

from ..errors import UsageError
from ..tree import NotFound, ReadFailed, Tree

log = logging.getLogger("zvfs")
T = TypeVar("T")

MOUNT_TIMEOUT = 60.0
# The tree never changes while mounted, so the kernel may keep attributes and pages for long.
KERNEL_OPTIONS: dict[str, str | bool] = {
    "ro": True,
    "kernel_cache": True,
    "attr_timeout": "3600",
    "entry_timeout": "3600",
}


# the tree's errors (and the two a path of the wrong kind raises) as the errno FUSE answers
ERRNO: dict[type[Exception], int] = {
    NotFound: errno.ENOENT,
    ReadFailed: errno.EIO,
    NotADirectoryError: errno.ENOTDIR,
    IsADirectoryError: errno.EISDIR,
}


class TreeOperations(mfusepy.Operations):
    """FUSE callbacks over a tree: directories 0555, files 0444, owned by the mounting user."""

    use_ns = True

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._owner = {"st_uid": os.getuid(), "st_gid": os.getgid()}
        self.started = False

    def init(self, path: str) -> None:
        self.started = True

    def _ask(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` with the tree's errors answered as their errno (:data:`ERRNO`)."""
        try:
            return fn(*args)
        except tuple(ERRNO) as exc:
            raise mfusepy.FuseOSError(next(code for kind, code in ERRNO.items() if isinstance(exc, kind))) from exc

    def getattr(self, path: str, fh: int | None = None) -> dict:
        st = self._ask(self.tree.stat, path)
        ns = int(st.mtime * 1e9)
        mode = (stat.S_IFDIR | 0o555) if st.is_dir else (stat.S_IFREG | 0o444)
        return {
            "st_mode": mode,
            "st_nlink": 2 if st.is_dir else 1,
            "st_size": st.size,
            "st_blocks": (st.size + 511) // 512,
            "st_atime": ns,
            "st_mtime": ns,
            "st_ctime": ns,
            **self._owner,
        }

    def readdir(self, path: str, fh: int) -> Iterator[str]:
        yield "."
        yield ".."
        yield from self._ask(lambda: list(self.tree.listdir(path)))

    def open(self, path: str, flags: int) -> int:
        """Refuse writes; under libfuse 3 answer ENOSYS, which tells the kernel (FUSE_NO_OPEN_SUPPORT)
        that opens always succeed, so it sends no more opens or releases and keeps cached pages."""
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & (os.O_TRUNC | os.O_APPEND | os.O_CREAT):
            raise mfusepy.FuseOSError(errno.EROFS)
        self._ask(self.tree.stat, path)
        if mfusepy.fuse_version_major == 3:
            raise mfusepy.FuseOSError(errno.ENOSYS)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self._ask(self.tree.read, path, offset, size)

    def access(self, path: str, amode: int) -> int:
        if amode & os.W_OK:
            raise mfusepy.FuseOSError(errno.EROFS)
        self._ask(self.tree.stat, path)
        return 0

    def statfs(self, path: str) -> dict:
        return {
            "f_bsize": 4096,
            "f_frsize": 4096,
            "f_blocks": 0,
            "f_bfree": 0,
            "f_bavail": 0,
            "f_files": 0,
            "f_ffree": 0,
            "f_favail": 0,
            "f_namemax": 255,
            "f_flag": os.ST_RDONLY,
        }

    # Every change is refused with EROFS, also where mfusepy's defaults would answer otherwise:
    # utimens (touch) would succeed silently, setxattr/removexattr would say ENOTSUP.
    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def create(self, path: str, mode: int, fi: object = None) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def mkdir(self, path: str, mode: int) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def unlink(self, path: str) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def rmdir(self, path: str) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def rename(self, old: str, new: str) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def link(self, target: str, source: str) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def symlink(self, target: str, source: str) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def fallocate(self, path: str, mode: int, offset: int, size: int, fh: int) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def chmod(self, path: str, mode: int) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def chown(self, path: str, uid: int, gid: int) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def setxattr(self, path: str, name: str, value: bytes, options: int, position: int = 0) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)

    def removexattr(self, path: str, name: str) -> int:
        raise mfusepy.FuseOSError(errno.EROFS)


# -- mounting ---------------------------------------------------------------------------------


_OCTAL = re.compile(rb"\\([0-7]{3})")


def _mount_table() -> set[str]:
    """Mount points the kernel knows, also stale ones (which ``os.path.ismount`` cannot stat). The
    kernel writes each path's bytes with space, tab, newline and backslash as octal escapes
    (``\\040``); other bytes, UTF-8 included, stand as they are."""
    points = set()
    with open("/proc/self/mounts", "rb") as f:
        for line in f:
            field = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), line.split()[1])
            points.add(os.fsdecode(field))
    return points


def is_mounted(mountpoint: str) -> bool:
    return os.path.abspath(mountpoint) in _mount_table()


def check_mountpoint(mountpoint: str) -> str:
    """The absolute mount point, or a :class:`UsageError` saying why it cannot be mounted on."""
    path = os.path.abspath(mountpoint)
    if is_mounted(path):
        try:
            os.statvfs(path)  # not os.stat: the kernel may answer that from its attribute cache
        except OSError:
            raise UsageError(f"mount point {path} holds a stale mount: run 'zvfs umount {path}'") from None
        raise UsageError(f"mount point {path} is busy (already mounted): run 'zvfs umount {path}' first")
    if not os.path.exists(path):
        raise UsageError(f"mount point {path} does not exist")
    if not os.path.isdir(path):
        raise UsageError(f"mount point {path} is not a directory")
    if os.listdir(path):
        raise UsageError(f"mount point {path} is not empty")
    return path


def format_options(options: dict[str, str | bool]) -> str:
    return ",".join(k if v is True else f"{k}={v}" for k, v in options.items() if v is not False)


def run_foreground(tree: Tree, mountpoint: str, options: dict[str, str | bool]) -> int:
    """Serve ``tree`` at ``mountpoint`` until unmounted (or SIGINT/SIGTERM), multi-threaded."""
    opts = {**KERNEL_OPTIONS, "fsname": f"zvfs:{tree.label}", **options}
    if mfusepy.fuse_version_major == 3:
        opts.setdefault("subtype", "zvfs")
    log.info("serving %s at %s", tree.label, mountpoint)
    ops = TreeOperations(tree)
    try:
        mfusepy.FUSE(ops, mountpoint, foreground=True, nothreads=False, **opts)
    except RuntimeError as exc:
        if not ops.started:
            raise UsageError(f"cannot mount {tree.label} at {mountpoint}: libfuse failed ({exc})") from exc
        log.info("stopped serving %s at %s (libfuse returned %s)", tree.label, mountpoint, exc)  # libfuse 3: a signal
    return 0


def default_log_file(mountpoint: str) -> str:
    name = os.path.abspath(mountpoint).strip("/").replace("/", "_") or "root"
    return os.path.join(tempfile.gettempdir(), f"zvfs-{name}.log")


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:]).strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Mounted:
    """A live background mount: ``label`` mounted at ``mountpoint`` by ``daemon``, logging to ``log_file``."""

    label: str
    mountpoint: str
    daemon: subprocess.Popen
    log_file: str

    def __str__(self) -> str:
        return f"mounted {self.label} at {self.mountpoint} (daemon pid {self.daemon.pid}, log {self.log_file})"


def mount_foreground(open_tree: Callable[[], Tree], mountpoint: str, options: dict[str, str | bool]) -> int:
    """Check ``mountpoint``, open the tree, then serve it there until unmounted (:func:`run_foreground`)."""
    path = check_mountpoint(mountpoint)
    return run_foreground(open_tree(), path, options)


def mount(
    open_tree: Callable[[], Tree], mountpoint: str, *, daemon_argv: Sequence[str], log_file: str | None = None
) -> Mounted:
    """Mount a tree read-only at ``mountpoint`` in the background: check the mount point, open the
    tree here with ``open_tree()`` (bad input fails now; an index is built now, if there was none),
    then run ``zvfs DAEMON_ARGV --foreground`` (a ``zvfs mount`` command line for the same tree) as
    the daemon in its own session, and return once the mount is live."""
    path = check_mountpoint(mountpoint)
    tree = open_tree()
    log_file = os.path.abspath(log_file or default_log_file(path))
    cmd = [sys.executable, "-m", "zvfs", *daemon_argv, "--foreground"]
    with open(log_file, "ab") as out:
        child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while time.monotonic() < deadline:
        if is_mounted(path):
            return Mounted(tree.label, path, child, log_file)
        if child.poll() is not None:
            raise UsageError(f"mounting {tree.label} at {path} failed; daemon log {log_file}:\n{_tail(log_file)}")
        time.sleep(0.05)
    child.kill()
    raise UsageError(f"mounting {tree.label} at {path} timed out; daemon log {log_file}:\n{_tail(log_file)}")


def umount(mountpoint: str) -> int:
    """Unmount a zvfs (or any FUSE) mount, also a stale one whose daemon was killed."""
    path = os.path.abspath(mountpoint)
    if not is_mounted(path):
        raise UsageError(f"{path} is not mounted")
    attempts = [
        ["fusermount3", "-u", path],
        ["fusermount", "-u", path],
        ["umount", path],
        ["fusermount3", "-uz", path],
        ["fusermount", "-uz", path],
        ["umount", "-l", path],
    ]
    errors = []
    for cmd in attempts:
        if shutil.which(cmd[0]) is None:
            continue
        res = subprocess.run(cmd, capture_output=True, text=True)
        if not is_mounted(path):
            return 0
        errors.append(f"{' '.join(cmd)}: {res.stderr.strip() or res.returncode}")
    raise UsageError(f"cannot unmount {path}: " + "; ".join(errors))
