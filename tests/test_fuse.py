"""The FUSE front end through real mounts made with the CLI (``zvfs mount`` / ``zvfs umount``).

Everything here goes through the kernel: shell tools, plain ``os`` calls, a daemon killed with
SIGKILL, a store damaged under a live mount. Mounts are module-scoped where tests only read.
"""

from __future__ import annotations

import ctypes.util
import errno
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from support import (
    TIMEOUT,
    ZVFS,
    build_polylines,
    is_mounted,
    mounted,
    read_files,
    relative_paths,
    served,
    tree_digest,
    zvfs,
)

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or not (shutil.which("fusermount3") or shutil.which("fusermount")),
    reason="needs /dev/fuse and fusermount",
)

SPATIAL = "annotations/spatial0"


# -- helpers -----------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def daemon_pid(mount_stderr: str) -> int:
    """The daemon pid that ``zvfs mount`` reports on stderr."""
    m = re.search(r"daemon pid (\d+)", mount_stderr)
    assert m, mount_stderr
    return int(m.group(1))


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie counts: its files, /dev/fuse included, are closed)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def disconnected(mountpoint: Path) -> bool:
    """Whether the FUSE connection behind ``mountpoint`` is gone (ENOTCONN, as for a stale mount)."""
    try:
        os.statvfs(mountpoint)
    except OSError as exc:
        return exc.errno == errno.ENOTCONN
    return False


def mount_options(mountpoint: Path) -> list[str]:
    """The options column of ``mountpoint``'s line in /proc/self/mounts."""
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields[1] == str(mountpoint):
                return fields[3].split(",")
    raise AssertionError(f"{mountpoint} is not mounted")


def assert_one_line_error(res: subprocess.CompletedProcess, *names: object) -> None:
    """Exit status 2 and a single 'zvfs: error:' line naming every one of ``names``."""
    assert res.returncode == 2, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zvfs: error: "), res.stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])


def log_to(mountpoint: Path) -> tuple[str, str]:
    """``--log-file`` beside the mount point, so daemon logs stay in pytest's temporary directory."""
    return "--log-file", str(mountpoint.with_name(mountpoint.name + ".log"))


def umount_if_mounted(mountpoint: Path) -> None:
    if is_mounted(mountpoint):
        zvfs("umount", str(mountpoint))


def kill_daemon(store: Path, mountpoint: Path, use_first: bool) -> int:
    """Mount ``store``, optionally use it, then SIGKILL its daemon: a stale mount. Returns the pid."""
    pid = daemon_pid(zvfs("mount", str(store), str(mountpoint), *log_to(mountpoint)).stderr)
    if use_first:  # as ``ls -l`` would: the kernel now holds the root's attributes
        assert stat.S_ISDIR(os.stat(mountpoint).st_mode)
        assert os.listdir(mountpoint) == ["annotations"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: process_gone(pid), f"daemon {pid} to die")
    # The leader can be a zombie while its other threads still hold /dev/fuse (requests in that
    # window fail with ECONNABORTED): wait until the kernel reports the mount as disconnected.
    wait_for(lambda: disconnected(mountpoint), f"{mountpoint} to be disconnected")
    return pid


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def typed_mount(point_stores: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``typed`` store mounted for the whole module."""
    mp = tmp_path_factory.mktemp("mnt_typed")
    with mounted(point_stores["typed"], mp, *log_to(mp)):
        yield mp


@pytest.fixture(scope="module")
def typed_files(typed_mount: Path) -> dict[str, bytes]:
    """relative path -> bytes of every file of the ``typed`` mount."""
    files = read_files(typed_mount)
    assert len(files) > 3000  # info + 3000 by_id + spatial cells + objects
    return files


@pytest.fixture
def mountpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh empty mount point, unmounted afterwards if a test left something there."""
    mp = tmp_path_factory.mktemp("mp")
    yield mp
    umount_if_mounted(mp)


# -- shell tools, sizes, modes -------------------------------------------------------------------


def test_ls_find_du(typed_mount: Path, typed_files: dict[str, bytes]) -> None:
    """``ls -lR``, ``find -type f`` and ``du -b`` agree with the files Python reads."""
    ls = subprocess.run(["ls", "-lR", str(typed_mount)], capture_output=True, text=True, timeout=TIMEOUT)
    assert ls.returncode == 0 and ls.stderr == "", ls.stderr
    entries = [line for line in ls.stdout.splitlines() if line[:1] in ("-", "d")]
    assert "?" not in "".join(e[:10] for e in entries)  # ls prints ?????????? when stat fails
    assert sum(e.startswith("-r--r--r--") for e in entries) == len(typed_files)
    assert all(e.startswith(("-r--r--r--", "dr-xr-xr-x")) for e in entries)

    find = subprocess.run(["find", str(typed_mount), "-type", "f"], capture_output=True, text=True, timeout=TIMEOUT)
    assert find.returncode == 0
    found = sorted(str(Path(p).relative_to(typed_mount)) for p in find.stdout.splitlines())
    assert found == sorted(typed_files)

    du = subprocess.run(["du", "-sb", str(typed_mount)], capture_output=True, text=True, timeout=TIMEOUT)
    assert du.returncode == 0
    total = sum(os.stat(typed_mount / rel).st_size for rel in typed_files)
    assert int(du.stdout.split()[0]) == total == sum(map(len, typed_files.values()))


def test_cat_and_cp(typed_mount: Path, typed_files: dict[str, bytes], tmp_path: Path) -> None:
    """``cat`` of a file and ``cp -r`` of the whole mount give the same bytes."""
    cat = subprocess.run(["cat", str(typed_mount / "annotations" / "info")], capture_output=True, timeout=TIMEOUT)
    assert cat.returncode == 0 and cat.stdout == typed_files["annotations/info"]
    assert json.loads(cat.stdout)["@type"] == "neuroglancer_annotations_v1"

    copy = tmp_path / "copy"
    cp = subprocess.run(["cp", "-r", str(typed_mount), str(copy)], capture_output=True, text=True, timeout=TIMEOUT)
    assert cp.returncode == 0, cp.stderr
    assert read_files(copy) == typed_files


def test_sizes_and_modes(typed_mount: Path) -> None:
    """st_size is exactly the bytes read; directories are 0555, files 0444."""
    dirs, files = relative_paths(typed_mount)
    for rel in files:
        st = os.stat(typed_mount / rel)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o444, rel
        with open(typed_mount / rel, "rb") as f:
            assert st.st_size == len(f.read()), rel
    for rel in ["", *dirs]:
        st = os.stat(typed_mount / rel)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o555, rel
    assert {"annotations", "annotations/by_id", SPATIAL, "annotations/rel_object"} <= set(dirs)


def test_partial_reads(typed_mount: Path, typed_files: dict[str, bytes]) -> None:
    """``pread`` at random offsets and sizes of a spatial chunk equals the slice of the whole file."""
    name = max((rel for rel in typed_files if rel.startswith(SPATIAL + "/")), key=lambda r: len(typed_files[r]))
    full = typed_files[name]
    assert len(full) > 4096
    rng = random.Random(7)
    fd = os.open(typed_mount / name, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # let reads reach the daemon again
        for _ in range(300):
            offset = rng.randrange(0, len(full) + 100)
            size = rng.choice([1, 3, 512, 4096, 5000, len(full)])
            assert os.pread(fd, size, offset) == full[offset : offset + size], (offset, size)
        assert os.pread(fd, 10, len(full) - 4) == full[-4:]
        assert os.pread(fd, 10, len(full)) == b""
    finally:
        os.close(fd)


# -- export --------------------------------------------------------------------------------------


def test_export_equals_mount(
    point_stores: dict[str, Path], typed_mount: Path, typed_files: dict[str, bytes], tmp_path: Path
) -> None:
    """``zvfs export`` writes exactly the mount's directories and files, byte for byte."""
    out = tmp_path / "out"
    res = zvfs("export", str(point_stores["typed"]), str(out), "--no-progress")
    assert f"exported {len(typed_files)} files" in res.stdout
    assert relative_paths(out)[0] == relative_paths(typed_mount)[0]
    assert read_files(out) == typed_files


def test_export_refuses_non_empty_outdir(point_stores: dict[str, Path], tmp_path: Path) -> None:
    """A non-empty output directory is left alone, with a one-line error naming it."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = zvfs("export", str(point_stores["tiny"]), str(out), "--no-progress", check=False)
    assert_one_line_error(res, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


# -- read only -----------------------------------------------------------------------------------


def _new_file(root: Path) -> object:
    return open(root / "annotations" / "new.json", "xb")


def _open(path: Path, mode: str) -> None:
    """Open (and close again) with Python's ``open``, which must fail on a read-only mount."""
    with open(path, mode):
        pass


WRITES: dict[str, Callable[[Path], object]] = {
    "create": _new_file,
    "create_in_spatial": lambda r: os.open(r / SPATIAL / "9_9_9", os.O_WRONLY | os.O_CREAT, 0o644),
    "mkdir": lambda r: os.mkdir(r / "annotations" / "newdir"),
    "rm": lambda r: os.unlink(r / "annotations" / "info"),
    "rmdir": lambda r: os.rmdir(r / "annotations" / "by_id"),
    "rename": lambda r: os.rename(r / "annotations" / "info", r / "annotations" / "info2"),
    "rename_dir": lambda r: os.rename(r / SPATIAL, r / "annotations" / "moved"),
    "touch": lambda r: os.utime(r / "annotations" / "info"),
    "open_rw": lambda r: _open(r / "annotations" / "info", "r+b"),
    "open_write": lambda r: _open(r / "annotations" / "info", "wb"),
    "open_wronly": lambda r: os.open(r / "annotations" / "info", os.O_WRONLY),
    "open_append": lambda r: _open(r / "annotations" / "info", "ab"),
    "open_trunc": lambda r: os.open(r / "annotations" / "info", os.O_RDONLY | os.O_TRUNC),
    "chmod": lambda r: os.chmod(r / "annotations" / "info", 0o644),
    "chmod_dir": lambda r: os.chmod(r / "annotations", 0o755),
    "chown": lambda r: os.chown(r / "annotations" / "info", 1, 1),
    "truncate": lambda r: os.truncate(r / "annotations" / "info", 0),
    "symlink": lambda r: os.symlink("info", r / "annotations" / "link"),
    "hardlink": lambda r: os.link(r / "annotations" / "info", r / "annotations" / "link"),
    "mkfifo": lambda r: os.mkfifo(r / "annotations" / "fifo"),
    "setxattr": lambda r: os.setxattr(r / "annotations" / "info", "user.zvfs", b"1"),
}


def attempt_write(op: Callable[[Path], object], root: Path) -> OSError | None:
    """Run one write attempt; the error it raised, or None (closing whatever it opened)."""
    try:
        got = op(root)
    except OSError as exc:
        return exc
    if isinstance(got, int):
        os.close(got)
    elif hasattr(got, "close"):
        got.close()
    return None


@pytest.mark.parametrize("name", list(WRITES))
def test_writes_are_refused(typed_mount: Path, typed_files: dict[str, bytes], name: str) -> None:
    """Every kind of write fails with EROFS and changes nothing."""
    exc = attempt_write(WRITES[name], typed_mount)
    assert exc is not None, f"{name} succeeded on a read-only mount"
    assert exc.errno == errno.EROFS, (name, exc)
    assert not os.access(typed_mount / "annotations" / "info", os.W_OK)
    assert sorted(os.listdir(typed_mount / "annotations")) == ["by_id", "info", "rel_object", "spatial0"]
    assert (typed_mount / "annotations" / "info").read_bytes() == typed_files["annotations/info"]


def test_store_never_modified(point_stores: dict[str, Path], mountpoint: Path) -> None:
    """Mount, read everything, try every write, unmount: the store's files are unchanged."""
    store = point_stores["typed_anonymous"]
    before = tree_digest(store)
    with mounted(store, mountpoint, *log_to(mountpoint)):
        files = read_files(mountpoint)
        assert len(files) > 1500 and not any(rel.startswith("annotations/rel_") for rel in files)
        for name, op in WRITES.items():
            exc = attempt_write(op, mountpoint)
            assert exc is not None and exc.errno == errno.EROFS, (name, exc)
    assert not is_mounted(mountpoint) and os.listdir(mountpoint) == []
    assert tree_digest(store) == before


def test_reopening_a_read_file_does_not_reach_the_daemon(point_stores: dict[str, Path], mountpoint: Path) -> None:
    """Under libfuse 3 the kernel learns at the first open that opens need no answer: a file read
    again (as nginx does per request) comes from the page cache without any request to the daemon."""
    if not ctypes.util.find_library("fuse3"):
        pytest.skip("libfuse 3 is not installed")
    log = mountpoint.parent / f"{mountpoint.name}-debug.log"
    with mounted(point_stores["typed_anonymous"], mountpoint, "-o", "debug", "--log-file", str(log)):
        files = sorted(p for p in (mountpoint / "annotations" / "by_id").iterdir())[:20]

        def read(path: Path) -> bytes:  # as nginx does: open, fstat, read, close (no isatty ioctl)
            fd = os.open(path, os.O_RDONLY)
            try:
                return os.read(fd, os.fstat(fd).st_size + 1)
            finally:
                os.close(fd)

        first = [read(p) for p in files]
        before = log.read_text().count("opcode: ")
        again = [read(p) for p in files]
        after = log.read_text().count("opcode: ")
    assert again == first and all(first)
    text = log.read_text()
    assert "FUSE library version: 3." in text, text[:2000]
    assert text.count("opcode: OPEN ") <= 1 and text.count("opcode: RELEASE ") == 0, text[-2000:]
    assert after == before, text[-2000:]


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_reads_of_every_file(point_stores: dict[str, Path], mountpoint: Path) -> None:
    """16 threads read every file of a cold mount of the ``large`` store; the bytes equal a
    single-threaded read of the same tree in this process (independent of the daemon's caches)."""
    from zvfs.frontends.export import walk
    from zvfs.source import open_virtual_tree

    store = point_stores["large"]
    with mounted(store, mountpoint, *log_to(mountpoint)):
        _, names = relative_paths(mountpoint)

        def read(rel: str) -> bytes:
            with open(mountpoint / rel, "rb") as f:
                return f.read()

        with ThreadPoolExecutor(16) as pool:
            concurrent = dict(zip(names, pool.map(read, names), strict=True))
    tree = open_virtual_tree(str(store))
    single = {path: tree.read(path) for path, is_dir in walk(tree) if not is_dir}
    assert len(single) > 40_000
    assert sorted(single) == names
    mismatched = [rel for rel in names if concurrent[rel] != single[rel]]
    assert not mismatched, mismatched[:10]


# -- errors --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unsupported_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ZVF store declaring a geometry type zvfs does not know (a future one)."""
    path = tmp_path_factory.mktemp("unsupported") / "tetrahedra.zarrvectors"
    build_polylines(path, "polyline")
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["zarr_vectors"]["geometry_types"] = ["tetrahedra"]
    (path / "zarr.json").write_text(json.dumps(meta))
    return path


def test_mount_missing_store(tmp_path: Path, mountpoint: Path) -> None:
    res = zvfs("mount", str(tmp_path / "nope.zarrvectors"), str(mountpoint), check=False)
    assert_one_line_error(res, tmp_path / "nope.zarrvectors", "no such file")
    assert not is_mounted(mountpoint)


def test_mount_plain_directory(tmp_path: Path, mountpoint: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    res = zvfs("mount", str(plain), str(mountpoint), check=False)
    assert_one_line_error(res, plain, "not a ZVF store")
    assert not is_mounted(mountpoint)


def test_mount_unsupported_geometry(unsupported_store: Path, mountpoint: Path) -> None:
    res = zvfs("mount", str(unsupported_store), str(mountpoint), check=False)
    kind = unsupported_store.name.split(".")[0]
    assert_one_line_error(res, unsupported_store, f"'{kind}'", "not supported")
    assert not is_mounted(mountpoint)


def test_mount_point_missing(point_stores: dict[str, Path], tmp_path: Path) -> None:
    res = zvfs("mount", str(point_stores["tiny"]), str(tmp_path / "absent"), check=False)
    assert_one_line_error(res, tmp_path / "absent", "does not exist")
    assert not (tmp_path / "absent").exists()


def test_mount_point_is_a_file(point_stores: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    res = zvfs("mount", str(point_stores["tiny"]), str(target), check=False)
    assert_one_line_error(res, target, "not a directory")
    assert not is_mounted(target)


def test_mount_point_not_empty(point_stores: dict[str, Path], mountpoint: Path) -> None:
    (mountpoint / "something").write_text("x")
    res = zvfs("mount", str(point_stores["tiny"]), str(mountpoint), check=False)
    assert_one_line_error(res, mountpoint, "not empty")
    assert not is_mounted(mountpoint)


def test_mount_point_busy(point_stores: dict[str, Path], typed_mount: Path) -> None:
    res = zvfs("mount", str(point_stores["tiny"]), str(typed_mount), check=False)
    assert_one_line_error(res, typed_mount, "busy")
    assert os.listdir(typed_mount) == ["annotations"]  # the first mount is untouched
    assert len(os.listdir(typed_mount / "annotations" / "by_id")) == 3000


def test_mount_point_with_unicode_and_spaces(point_stores: dict[str, Path], tmp_path: Path) -> None:
    """A mount point named in UTF-8 with spaces and a backslash mounts, reads and unmounts."""
    where = tmp_path / "données 🧠 Ünï\\cödé"
    with mounted(point_stores["tiny"], where) as mp:
        assert os.listdir(mp) == ["annotations"]
        assert json.loads((mp / "annotations" / "info").read_bytes())["@type"] == "neuroglancer_annotations_v1"
        assert_one_line_error(zvfs("mount", str(point_stores["tiny"]), str(mp), check=False), mp, "busy")
    assert not is_mounted(where) and os.listdir(where) == []


def test_umount_not_mounted(mountpoint: Path) -> None:
    res = zvfs("umount", str(mountpoint), check=False)
    assert_one_line_error(res, mountpoint, "not mounted")


def test_store_missing_fragment_index(point_stores: dict[str, Path], tmp_path: Path, mountpoint: Path) -> None:
    """A missing fragment index chunk: the mount comes up, ``info`` and the listings read, the cell
    that needs the chunk fails with EIO, the daemon keeps serving, the log names the chunk, and an
    export stops with a one-line error."""
    store = Path(shutil.copytree(point_stores["tiny"], tmp_path / "broken.zarrvectors"))
    chunks = store / "0" / "vertex_fragments" / "c"
    chunk = next(p for p in sorted(chunks.rglob("*")) if p.is_file())
    chunk.unlink()
    # bounds start at 0 and no chunk_grid_origin: chunk key = ZVF cell = spatial cell
    damaged = tuple(int(i) for i in chunk.relative_to(chunks).parts)
    with mounted(store, mountpoint, "--log-file", str(tmp_path / "log")):
        assert json.loads((mountpoint / "annotations" / "info").read_bytes())["@type"] == "neuroglancer_annotations_v1"
        cells = os.listdir(mountpoint / "annotations" / "spatial0")
        name = "_".join(map(str, damaged))
        assert name in cells, "listed: Neuroglancer asks for it whatever the listing"
        with pytest.raises(OSError) as info:
            (mountpoint / "annotations" / "spatial0" / name).read_bytes()
        assert info.value.errno == errno.EIO
        for cell in set(cells) - {name}:
            assert (mountpoint / "annotations" / "spatial0" / cell).read_bytes()[:8] != b"\0" * 8
        assert os.listdir(mountpoint) == ["annotations"], "the daemon survives"
    assert str(store) in (tmp_path / "log").read_text() and f"cell {damaged}" in (tmp_path / "log").read_text()
    assert_one_line_error(zvfs("export", str(store), str(tmp_path / "out"), check=False), store)


# -- stale mounts, foreground, options ------------------------------------------------------------


def test_stale_mount_recovery(point_stores: dict[str, Path], mountpoint: Path) -> None:
    """A killed daemon leaves ENOTCONN; ``zvfs umount`` clears it and a fresh mount works."""
    kill_daemon(point_stores["tiny"], mountpoint, use_first=True)
    assert is_mounted(mountpoint)
    with pytest.raises(OSError) as info:
        os.listdir(mountpoint)
    assert info.value.errno == errno.ENOTCONN
    zvfs("umount", str(mountpoint))
    assert not is_mounted(mountpoint) and os.listdir(mountpoint) == []
    with mounted(point_stores["tiny"], mountpoint, *log_to(mountpoint)):
        assert os.listdir(mountpoint) == ["annotations"]
        assert json.loads((mountpoint / "annotations" / "info").read_bytes())["@type"] == "neuroglancer_annotations_v1"
    assert_one_line_error(zvfs("umount", str(mountpoint), check=False), mountpoint, "not mounted")


@pytest.mark.parametrize(
    "use_first",
    [
        pytest.param(False, id="unused"),
        pytest.param(True, id="used"),
    ],
)
def test_mount_onto_stale_mount_says_stale(point_stores: dict[str, Path], mountpoint: Path, use_first: bool) -> None:
    """Mounting onto a stale mount fails with a one-line error that says stale and how to fix it."""
    kill_daemon(point_stores["tiny"], mountpoint, use_first=use_first)
    res = zvfs("mount", str(point_stores["tiny"]), str(mountpoint), check=False)
    assert is_mounted(mountpoint)  # still the stale one; cleaned up by the fixture
    assert_one_line_error(res, mountpoint, "stale", "zvfs umount")


def test_foreground_mount_stops_on_sigterm(point_stores: dict[str, Path], mountpoint: Path, tmp_path: Path) -> None:
    """``zvfs mount -f`` serves until SIGTERM, then exits 0 with the mount gone."""
    log = tmp_path / "fg.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*ZVFS, "mount", "-f", str(point_stores["tiny"]), str(mountpoint)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        wait_for(lambda: is_mounted(mountpoint) or proc.poll() is not None, "the foreground mount")
        assert proc.poll() is None, log.read_text()
        assert os.listdir(mountpoint) == ["annotations"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0, log.read_text()
        assert not is_mounted(mountpoint)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)


def test_fuse_option_passthrough(point_stores: dict[str, Path], mountpoint: Path) -> None:
    """``-o allow_other`` reaches the kernel mount."""
    with mounted(point_stores["tiny"], mountpoint, "-o", "allow_other", *log_to(mountpoint)):
        options = mount_options(mountpoint)
        assert "allow_other" in options and "ro" in options
        assert os.listdir(mountpoint) == ["annotations"]


# -- a damaged store -------------------------------------------------------------------------------


def test_damaged_chunk_is_eio_for_its_cell_only(
    point_stores: dict[str, Path], typed_files: dict[str, bytes], tmp_path: Path, mountpoint: Path
) -> None:
    """Under a live mount, delete one vertex chunk and garble another: reading exactly those cells'
    spatial files fails with EIO, everything else still reads as before, the daemon lives on and
    its log names the store and the failing file."""
    store = Path(shutil.copytree(point_stores["typed"], tmp_path / "copy.zarrvectors"))
    log = tmp_path / "daemon.log"
    pid = daemon_pid(zvfs("mount", "--log-file", str(log), str(store), str(mountpoint)).stderr)
    info = json.loads((mountpoint / "annotations" / "info").read_bytes())

    # chunk key on disk = ZVF cell - chunk_grid_origin; spatial cell = ZVF cell - lower_bound / chunk_size
    vertices = store / "0" / "vertices"
    key_origin = np.array(json.loads((vertices / "zarr.json").read_text())["attributes"]["chunk_grid_origin"])
    grid_origin = np.round(np.array(info["lower_bound"]) / np.array(info["spatial"][0]["chunk_size"])).astype(int)
    chunks = sorted(p for p in (vertices / "c").rglob("*") if p.is_file())
    assert len(chunks) == len([r for r in typed_files if r.startswith(SPATIAL + "/")])
    deleted, garbled = chunks[len(chunks) // 2], chunks[-1]  # not chunks[0]: by_id/1 lives there
    deleted.unlink()
    garbled.write_bytes(b"\x00not zstd at all\xff" * 7)
    damaged = {
        "_".join(map(str, np.array(p.relative_to(vertices / "c").parts, int) + key_origin - grid_origin))
        for p in (deleted, garbled)
    }

    failed: dict[str, int] = {}
    for name in sorted(os.listdir(mountpoint / SPATIAL)):
        try:
            size = os.stat(mountpoint / SPATIAL / name).st_size
            data = (mountpoint / SPATIAL / name).read_bytes()
        except OSError as exc:
            assert exc.errno is not None
            failed[name] = exc.errno
            continue
        assert len(data) == size and data == typed_files[f"{SPATIAL}/{name}"], name
    assert failed == dict.fromkeys(damaged, errno.EIO)

    assert not process_gone(pid)
    assert (mountpoint / "annotations" / "by_id" / "1").read_bytes() == typed_files["annotations/by_id/1"]
    assert (mountpoint / "annotations" / "info").read_bytes() == typed_files["annotations/info"]
    text = log.read_text()
    for name in damaged:
        line = next((ln for ln in text.splitlines() if f"/{SPATIAL}/{name}" in ln), None)
        assert line is not None and str(store) in line and "ERROR" in line, text


def test_serving_a_directory_with_a_stale_mount(point_stores: dict[str, Path], tmp_path: Path) -> None:
    """``zvfs serve DIR`` over a directory holding a stale mount: the mount's path answers 500 with
    a message naming it (its stat and listing fail with ENOTCONN), everything else is served."""
    root = tmp_path / "served"
    stale = root / "stale"
    stale.mkdir(parents=True)
    (root / "note.txt").write_text("still here")
    kill_daemon(point_stores["tiny"], stale, use_first=False)
    try:
        with served(root, tmp_path / "serve.log") as (_, base):
            for target in ("stale/", "stale/annotations/info"):
                resp = requests.get(base + target, timeout=TIMEOUT)
                assert resp.status_code == 500 and "/stale" in resp.json()["error"], (target, resp.text)
            assert requests.get(base + "note.txt", timeout=TIMEOUT).text == "still here"
    finally:
        umount_if_mounted(stale)
