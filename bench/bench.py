#!/usr/bin/env python
"""zvfs benchmark: a Neuroglancer-like session replayed against nginx on an export (the baseline),
nginx on a zvfs mount (cold and warm) and ``zvfs serve``; chunk reads against zarr-vectors itself;
a stat storm; export throughput; peak RSS of the mount daemon. Ratios are to the baseline measured
in the same run. Run as root on a machine with FUSE and nginx: ``bench/run [--quick]``.

Stores and exports are built once into ``--cache-dir`` (default /tmp/zvfs-bench) and reused; the
replays check that every mode returned the same bytes as the export, so a stale export shows.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import importlib.metadata
import itertools
import json
import os
import platform
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's helpers, shared with the benchmark
from support import free_port, listening  # noqa: E402

from zvfs.encoders.annotations import AnnotationSchema, decode_multiple  # noqa: E402
from zvfs.encoders.meshes import Manifest  # noqa: E402

BIN = Path(sys.executable).parent
ZVFS = [str(BIN / "zvfs")] if (BIN / "zvfs").exists() else [sys.executable, "-m", "zvfs"]
MAKE_SAMPLES = Path(os.environ.get("ZVFS_MAKE_SAMPLES", ROOT.parent / "shared" / "tools" / "make_samples.py"))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SEED = 20240606
MiB = 2**20
CACHE_LIMITS = ("256M", "2G")

# -- output ------------------------------------------------------------------------------------

_LOG: list[str] = []


def say(text: str = "") -> None:
    print(text, flush=True)
    _LOG.append(text)


def note(text: str) -> None:
    """Progress, to stderr only (not part of the report)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def table(headers: list[str], rows: Sequence[Sequence], align: str | None = None) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)
    for k, r in enumerate(cells):
        say("  " + "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align, strict=True)))
        if k == 0:
            say("  " + "  ".join("-" * w for w in widths))


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.2f}" if x < 0.1 else f"{x * 1e3:.0f}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    note("$ " + shlex.join(cmd))
    return subprocess.run(cmd, check=True, **kw)


# -- machine -----------------------------------------------------------------------------------


def machine() -> list[tuple[str, str]]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    osname = (
        next(
            (
                line.split("=", 1)[1].strip('"')
                for line in Path("/etc/os-release").read_text().splitlines()
                if line.startswith("PRETTY_NAME")
            ),
            "?",
        )
        if Path("/etc/os-release").exists()
        else "?"
    )
    disk = subprocess.run(["df", "-hT", "/tmp"], capture_output=True, text=True).stdout.splitlines()[-1].split()
    versions = []
    for dist in (
        "zvfs",
        "zarr-vectors",
        "zarr",
        "numpy",
        "mfusepy",
        "tornado",
        "DracoPy",
        "fast-simplification",
        "cachetools",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    nginx = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip().split("/")[-1]
    fuse = (
        subprocess.run(["sh", "-c", "fusermount3 -V 2>&1 || fusermount -V 2>&1"], capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[0]
    )
    git = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} cores"),
        ("RAM", f"{mem / 2**20:.1f} GiB"),
        ("kernel", f"{platform.release()} ({osname})"),
        ("disk (/tmp)", f"{disk[1]} on {disk[0]}"),
        ("python", platform.python_version()),
        ("packages", ", ".join(versions)),
        ("nginx", nginx),
        ("fuse", fuse),
        ("zvfs tree", f"{ROOT} @ {git}"),
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
    ]


# -- stores ------------------------------------------------------------------------------------


@dataclass
class Store:
    name: str  # points, streamlines, meshes, skeletons
    path: Path
    what: str
    replay: bool = True  # skeletons: export comparison only
    export: Path | None = None
    export_record: dict = field(default_factory=dict)


def stores(cache: Path, quick: bool, only: set[str]) -> list[Store]:
    """Build (or reuse) the stores of this size, in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    sfx = "" if quick else "_large"
    summary_path = cache / "samples.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    wanted = {"points": "point_cloud", "streamlines": "streamline", "skeletons": "skeleton"}
    missing = [
        kind
        for name, kind in wanted.items()
        if name in only and not (kind + sfx in summary and (cache / f"{kind}{sfx}.zarrvectors").is_dir())
    ]
    if missing:
        if not MAKE_SAMPLES.exists():
            sys.exit(f"bench: {MAKE_SAMPLES} not found (set ZVFS_MAKE_SAMPLES to shared/tools/make_samples.py)")
        run(
            [
                sys.executable,
                str(MAKE_SAMPLES),
                str(cache),
                *([] if quick else ["--large"]),
                "--only",
                ",".join(missing),
                "--no-validate",
            ],
            stdout=sys.stderr,
        )
        summary = json.loads(summary_path.read_text())
    mesh = cache / f"mesh{sfx}.zarrvectors"
    mesh_args = ["--meshes", "10", "--resolution", "20", "--cell", "250"] if quick else []
    stamp = mesh.with_suffix(".built.json")
    if "meshes" in only and not (stamp.exists() and mesh.is_dir()):
        out = run(
            [sys.executable, str(BENCH / "build_mesh.py"), str(mesh), *mesh_args], capture_output=True, text=True
        ).stdout
        stamp.write_text(out)

    def describe(kind: str) -> str:
        levels = summary[kind + sfx]["levels"]
        return (
            f"{levels[0]['vertex_count']:,} vertices, {levels[0]['objects_present']:,} objects, "
            f"{len(levels)} levels, chunk {levels[0]['chunk_shape'][0]:g}"
        )

    out = []
    if "points" in only:
        out.append(Store("points", cache / f"point_cloud{sfx}.zarrvectors", "point_cloud: " + describe("point_cloud")))
    if "streamlines" in only:
        out.append(
            Store("streamlines", cache / f"streamline{sfx}.zarrvectors", "streamline: " + describe("streamline"))
        )
    if "meshes" in only:
        built = json.loads(stamp.read_text().strip().splitlines()[-1])
        out.append(
            Store(
                "meshes",
                mesh,
                f"mesh: {built['meshes']} meshes x {built['vertices_per_mesh']:,} vertices "
                f"/ {built['triangles_per_mesh']:,} triangles, 3 levels, chunk {built['cell']:g}",
            )
        )
    if "skeletons" in only:
        out.append(
            Store("skeletons", cache / f"skeleton{sfx}.zarrvectors", "skeleton: " + describe("skeleton"), replay=False)
        )
    return out


def tree_size(path: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, n)).st_size
    return files, size


def timed_export(cmd: list[str], out: Path) -> dict:
    """Run an export command from a dropped page cache: its seconds, and the files and bytes in ``out``."""
    drop_caches()
    t0 = time.perf_counter()
    run(cmd, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    files, size = tree_size(out)
    return {"files": files, "bytes": size, "seconds": seconds}


def ensure_export(store: Store, cache: Path, reexport: bool) -> None:
    """``zvfs export`` of the store (timed), or the one a previous run made."""
    out = cache / "export" / store.name
    record = out.with_suffix(".json")
    if reexport or not (record.exists() and out.is_dir()):
        shutil.rmtree(out, ignore_errors=True)
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        cmd = [*ZVFS, "export", str(store.path), str(partial), "--no-progress", "--sharding", "off"]
        timing = timed_export(cmd, partial)
        partial.rename(out)
        record.write_text(
            json.dumps({**timing, "command": shlex.join(cmd), "when": time.strftime("%Y-%m-%d %H:%M:%S")})
        )
        fresh = True
    else:
        fresh = False
    store.export = out
    store.export_record = {**json.loads(record.read_text()), "fresh": fresh}


# -- processes ---------------------------------------------------------------------------------


def drop_caches() -> bool:
    """Write back and drop the page cache, dentries and inodes (root only)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def wait_for(cond, proc: subprocess.Popen, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up in {timeout:.0f} s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(60)


@contextlib.contextmanager
def nginx(root: Path, work: Path) -> Iterator[int]:
    """nginx with the test suite's configuration (the documented location block) serving ``root``."""
    from test_nginx import nginx_config  # imports pytest: only when nginx runs

    prefix = Path(tempfile.mkdtemp(prefix="nginx-", dir=work))
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_config(root, port, prefix))
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: listening(port), proc, f"nginx ({prefix / 'error.log'})")
        yield port
    finally:
        stop(proc, signal.SIGQUIT)
        shutil.rmtree(prefix, ignore_errors=True)


def mounted(path: Path) -> bool:
    with open("/proc/self/mounts", encoding="utf-8") as f:
        return any(line.split()[1] == str(path) for line in f)


@contextlib.contextmanager
def mount(store: Path, mp: Path, cache_size: str, log: Path) -> Iterator[subprocess.Popen]:
    """``zvfs mount -f`` as our child, so its pid is the daemon's."""
    if mounted(mp):
        subprocess.run([*ZVFS, "umount", str(mp)], check=False)
    mp.mkdir(parents=True, exist_ok=True)
    cmd = [*ZVFS, "mount", "-f", str(store), str(mp), "--cache-size", cache_size]
    note("$ " + shlex.join(cmd))
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        wait_for(lambda: mounted(mp), proc, f"zvfs mount ({log})")
        yield proc
    finally:
        if mounted(mp):
            subprocess.run([*ZVFS, "umount", str(mp)], check=False, capture_output=True)
        stop(proc)


@contextlib.contextmanager
def serve(store: Path, log: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    port = free_port()
    cmd = [*ZVFS, "serve", str(store), "--port", str(port)]
    note("$ " + shlex.join(cmd))
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        wait_for(lambda: listening(port), proc, f"zvfs serve ({log})")
        yield port, proc
    finally:
        stop(proc)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (bytes) of a process."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


# -- the session -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    category: str
    path: str
    range: tuple[int, int] | None = None  # inclusive byte range


def _spatial_cells(info: dict, level: dict, lo, hi) -> list[tuple[int, ...]]:
    """Cells of a spatial level intersecting the box [lo, hi)."""
    lower = info["lower_bound"]
    ranges = []
    for d, (a, b) in enumerate(zip(lo, hi, strict=True)):
        size, n = level["chunk_size"][d], level["grid_shape"][d]
        first = max(0, int((a - lower[d]) // size))
        last = min(n - 1, int(-(-(b - lower[d]) // size)) - 1)
        ranges.append(range(first, last + 1))
    return list(itertools.product(*ranges))


def annotation_session(root: Path, layer: str, rng: random.Random) -> list[Request]:
    """info; every spatial0 cell (whole volume in view); the cells of the finer levels in a zoomed
    region around a non-empty finest cell; hovers: annotations by id (ids read from the zoomed
    cells) and a few related segments per relationship."""
    info = json.loads((root / layer / "info").read_text())
    spatial = info["spatial"]
    reqs = [Request("info", f"{layer}/info")]
    coarse = spatial[0]
    reqs += [
        Request("spatial0", f"{layer}/{coarse['key']}/{'_'.join(map(str, c))}")
        for c in itertools.product(*map(range, coarse["grid_shape"]))
    ]
    # zoom: a box of 3x3x3 finest chunks centred on a non-empty cell of the finest non-empty level
    finest = next((lv for lv in reversed(spatial) if any((root / layer / lv["key"]).iterdir())), coarse)
    centre = [int(x) for x in rng.choice(sorted(p.name for p in (root / layer / finest["key"]).iterdir())).split("_")]
    size = finest["chunk_size"]
    mid = [info["lower_bound"][d] + (centre[d] + 0.5) * size[d] for d in range(len(size))]
    lo, hi = (
        [m - 1.5 * s for m, s in zip(mid, size, strict=True)],
        [m + 1.5 * s for m, s in zip(mid, size, strict=True)],
    )
    zoomed = []
    for k, level in enumerate(spatial[1:], start=1):
        zoomed += [
            Request(f"spatial{k}", f"{layer}/{level['key']}/{'_'.join(map(str, c))}")
            for c in _spatial_cells(info, level, lo, hi)
        ]
    reqs += zoomed
    ids: set[int] = set()
    for r in zoomed or reqs[1:]:
        f = root / r.path
        if f.exists():
            ids.update(cell_ids(info, f.read_bytes()))
    reqs += [Request("by_id", f"{layer}/by_id/{i}") for i in rng.sample(sorted(ids), min(10, len(ids)))]
    for rel in info.get("relationships", []):
        segs = sorted(int(p.name) for p in (root / layer / rel["key"]).iterdir())
        reqs += [Request("rel", f"{layer}/{rel['key']}/{s}") for s in rng.sample(segs, min(5, len(segs)))]
    return reqs


def segment_ids(root: Path, layer: str) -> list[int]:
    props = json.loads((root / layer / "segment_properties" / "info").read_text())
    return sorted(int(i) for i in props["inline"]["ids"])


def skeleton_session(root: Path, layer: str, rng: random.Random) -> list[Request]:
    """info, segment properties, a handful of selected segments' skeletons."""
    reqs = [Request("info", f"{layer}/info"), Request("info", f"{layer}/segment_properties/info")]
    ids = segment_ids(root, layer)
    return reqs + [Request("skeleton", f"{layer}/{s}") for s in rng.sample(ids, min(10, len(ids)))]


def mesh_session(root: Path, layer: str, rng: random.Random) -> list[Request]:
    """info, segment properties, then per selected segment its manifest and Range requests for its
    non-empty fragments, coarsest LOD first (as the client refines)."""
    reqs = [Request("info", f"{layer}/info"), Request("info", f"{layer}/segment_properties/info")]
    ids = segment_ids(root, layer)
    for s in rng.sample(ids, min(8, len(ids))):
        reqs.append(Request("mesh index", f"{layer}/{s}.index"))
        fragments = Manifest.decode((root / layer / f"{s}.index").read_bytes()).fragments()
        for _, _, o, n in sorted(fragments, key=lambda f: -f[0]):  # coarsest LOD first, stable within one
            if n:
                reqs.append(Request("mesh fragment", f"{layer}/{s}", (o, o + n - 1)))
    return reqs


def session(store: Store) -> list[Request]:
    """The request sequence for a store, derived from its exported tree (seeded)."""
    rng = random.Random(SEED)
    root = store.export
    assert root is not None, "sessions come from an export"
    reqs: list[Request] = []
    if (root / "annotations" / "info").exists():
        reqs += annotation_session(root, "annotations", rng)
    if (root / "skeletons" / "info").exists():
        reqs += skeleton_session(root, "skeletons", rng)
    if (root / "meshes" / "info").exists():
        reqs += mesh_session(root, "meshes", rng)
    return reqs


@dataclass
class Pass:
    mode: str
    seconds: list[float]
    statuses: list[int]
    digests: list[str]
    nbytes: int
    total: float
    status: dict = field(default_factory=dict)  # daemon /proc status after the pass


class Client:
    """One keep-alive HTTP/1.1 connection, as a browser tab would reuse."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)

    def get(self, req: Request) -> tuple[int, bytes, float]:
        headers = {"Range": f"bytes={req.range[0]}-{req.range[1]}"} if req.range else {}
        for attempt in range(2):
            try:
                t0 = time.perf_counter()
                self.conn.request("GET", "/" + req.path, headers=headers)
                resp = self.conn.getresponse()
                body = resp.read()
                return resp.status, body, time.perf_counter() - t0
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=900)
                if attempt:
                    raise
        raise AssertionError

    def close(self) -> None:
        self.conn.close()


def replay(port: int, reqs: list[Request], mode: str) -> Pass:
    client = Client(port)
    seconds, statuses, digests, nbytes = [], [], [], 0
    t0 = time.perf_counter()
    for req in reqs:
        status, body, dt = client.get(req)
        seconds.append(dt)
        statuses.append(status)
        digests.append(hashlib.sha1(body).hexdigest())
        nbytes += len(body)
    total = time.perf_counter() - t0
    client.close()
    note(f"  {mode}: {len(reqs)} requests in {total:.2f} s")
    return Pass(mode, seconds, statuses, digests, nbytes, total)


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def profile_cmd(pid: int, out: Path) -> list[str] | None:
    spy = shutil.which("py-spy", path=str(BIN)) or shutil.which("py-spy")
    return (
        None
        if spy is None
        else [
            spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--output",
            str(out),
            "--nonblocking",
            "--gil",
        ]
    )


def profile_store(store: Store, reqs: list[Request], work: Path) -> dict[str, Path]:
    """py-spy (--gil: Python work) on a fresh, unmeasured mount: one cold pass, then warm passes for ~10 s."""
    out: dict[str, Path] = {}
    mp = work / "mnt" / store.name
    with mount(store.path, mp, CACHE_LIMITS[-1], work / f"mount-{store.name}.log") as daemon, nginx(mp, work) as port:
        for phase in ("cold", "warm"):
            path = work / f"profile-{store.name}-{phase}.txt"
            cmd = profile_cmd(daemon.pid, path)
            if cmd is None:
                note("py-spy not found: no profile (pip install py-spy into .venv)")
                return out
            if phase == "cold":
                drop_caches()
            else:
                replay(port, reqs, "profile warm-up")
            spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)
            t0 = time.perf_counter()
            replay(port, reqs, f"profile {phase}")
            while phase == "warm" and time.perf_counter() - t0 < 10:
                replay(port, reqs, f"profile {phase}")
            stop(spy, signal.SIGINT)
            out[phase] = path
    return out


def replay_store(store: Store, work: Path, args) -> dict:
    """All modes for one store."""
    reqs = session(store)
    passes: list[Pass] = []
    cold_ok = True
    assert store.export is not None
    with nginx(store.export, work) as port:
        cold_ok &= drop_caches()
        passes.append(replay(port, reqs, "(a) nginx + export, cold"))
        passes.append(replay(port, reqs, "(a) nginx + export, warm"))
    idle: dict[str, dict] = {}
    for limit in CACHE_LIMITS:
        mp = work / "mnt" / store.name
        with mount(store.path, mp, limit, work / f"mount-{store.name}.log") as daemon:
            idle[limit] = proc_status(daemon.pid)
            with nginx(mp, work) as port:
                cold_ok &= drop_caches()
                p = replay(port, reqs, f"(b) nginx + mount {limit}, cold")
                p.status = proc_status(daemon.pid)
                passes.append(p)
                p = replay(port, reqs, f"(b) nginx + mount {limit}, warm")
                p.status = proc_status(daemon.pid)
                passes.append(p)
    with serve(store.path, work / f"serve-{store.name}.log") as (port, proc):
        cold_ok &= drop_caches()
        p = replay(port, reqs, "(c) zvfs serve, cold")
        p.status = proc_status(proc.pid)
        passes.append(p)
        p = replay(port, reqs, "(c) zvfs serve, warm")
        p.status = proc_status(proc.pid)
        passes.append(p)
    profiles = profile_store(store, reqs, work) if args.profile else {}
    return {"requests": reqs, "passes": passes, "idle": idle, "cold_ok": cold_ok, "profiles": profiles}


def report_replay(store: Store, res: dict) -> None:
    reqs: list[Request] = res["requests"]
    passes: list[Pass] = res["passes"]
    base = next(p for p in passes if p.mode == "(a) nginx + export, warm")
    cats: dict[str, list[int]] = {}
    for i, r in enumerate(reqs):
        cats.setdefault(r.category, []).append(i)
    say(f"### {store.name}: {store.what}")
    say(
        f"session: {len(reqs)} requests, {base.nbytes / MiB:.1f} MiB: "
        + ", ".join(f"{len(ix)} {c}" for c, ix in cats.items())
        + "; baseline statuses: "
        + ", ".join(f"{s}x{base.statuses.count(s)}" for s in sorted(set(base.statuses)))
    )
    rows = []
    for p in passes:
        med, q95 = statistics.median(p.seconds), p95(p.seconds)
        same = sum(
            s == t and (a == b or s >= 300)  # error bodies are each server's own
            for a, b, s, t in zip(p.digests, base.digests, p.statuses, base.statuses, strict=True)
        )
        rows.append(
            [
                p.mode,
                ms(med),
                ms(q95),
                f"{p.total:.3f}",
                ratio(med, statistics.median(base.seconds)),
                ratio(q95, p95(base.seconds)),
                ratio(p.total, base.total),
                "yes" if same == len(reqs) else f"NO ({len(reqs) - same} differ)",
            ]
        )
    table(["mode", "median ms", "p95 ms", "session s", "x median", "x p95", "x session", "same as (a)"], rows)
    say("median ms per request kind:")
    rows = [[p.mode] + [ms(statistics.median([p.seconds[i] for i in ix])) for ix in cats.values()] for p in passes]
    table(["mode"] + [f"{c} ({len(ix)})" for c, ix in cats.items()], rows)
    if not res["cold_ok"]:
        say("NOTE: the page cache could not be dropped (not root?): 'cold' passes had a warm page cache.")
    say()


# -- zarr-vectors' own chunk reads ------------------------------------------------------------


def cell_ids(info: dict, data: bytes) -> list[int]:
    """Annotation ids of a spatial cell file of the layer ``info`` describes."""
    return [int(i) for i in decode_multiple(AnnotationSchema.from_info(info), data).ids]


def zv_cells(reqs: list[Request], passes: list[Pass], export: Path) -> list[dict]:
    """The spatial cells of the session that exist, with their ZVF (level, absolute cell); for
    items (polylines), also the object ids the cell lists (annotation id - 1)."""
    info = json.loads((export / "annotations" / "info").read_text())
    spatial = {lv["key"]: (k, lv) for k, lv in enumerate(info["spatial"])}
    items = info["annotation_type"].upper() != "POINT"
    base = next(p for p in passes if p.mode == "(a) nginx + export, warm")
    out = []
    for i, r in enumerate(reqs):
        parts = r.path.split("/")
        if len(parts) != 3 or parts[1] not in spatial or base.statuses[i] != 200:
            continue
        k, lv = spatial[parts[1]]
        origin = [round(lo / s) for lo, s in zip(info["lower_bound"], lv["chunk_size"], strict=True)]
        cell = [int(c) + o for c, o in zip(parts[2].split("_"), origin, strict=True)]
        out.append(
            {
                "index": i,
                "spatial": parts[1],
                "level": len(spatial) - 1 - k,
                "cell": cell,
                **({"objects": [a - 1 for a in cell_ids(info, (export / r.path).read_bytes())]} if items else {}),
            }
        )
    return out


def zv_read_cells(store: str, cells_json: str) -> None:
    """(subprocess) Time zarr-vectors' per-chunk reads of the ZVF chunks a spatial cell needs: the
    vertex buffer, the fragment index, every per-vertex attribute and the fragment owners, as zvfs
    reads a chunk. A points cell needs its own chunk; a polylines cell lists whole polylines, so it
    needs every level-0 chunk holding part of them (found from the manifests, untimed).
    Pass 1 right after the caller dropped the page cache, pass 2 warm. Prints JSON."""
    import zarr_vectors as zv
    from zarr_vectors import building as zb

    cells = json.loads(Path(cells_json).read_text())
    ds = zv.open(store, mode="r")
    levels = {}
    for c in cells:
        level = 0 if "objects" in c else c["level"]
        if level not in levels:
            lv = ds.level(level)
            levels[level] = (
                lv.store,
                sorted(lv.attribute_names("vertex")),
                "object_id" in lv.attribute_names("fragment"),
            )
        if "objects" in c:
            manifests = zb.read_object_manifests(levels[0][0], ids=c["objects"])
            c["chunks"] = sorted({tuple(cell) for m in manifests.values() for cell, _ in m})
        else:
            c["chunks"] = [tuple(c["cell"])]
        c["read_level"] = level
    out = []
    for _ in range(2):
        times = []
        for c in cells:
            g, attrs, owners = levels[c["read_level"]]
            t0 = time.perf_counter()
            for cell in c["chunks"]:
                zb.read_vertex_fragment_index(g, cell).ranges()
                zb.read_chunk_vertex_buffer(g, cell)
                for a in attrs:
                    zb.read_chunk_attributes(g, a, cell)
                if owners:
                    zb.read_chunk_fragment_attributes(g, "object_id", cell)
            times.append(time.perf_counter() - t0)
        out.append(times)
    print(json.dumps({"cold": out[0], "warm": out[1], "chunks": [len(c["chunks"]) for c in cells]}))


def chunk_comparison(store: Store, res: dict, work: Path) -> dict | None:
    assert store.export is not None
    cells = zv_cells(res["requests"], res["passes"], store.export)
    if not cells:
        return None
    path = work / f"cells-{store.name}.json"
    path.write_text(json.dumps(cells))
    drop_caches()
    out = subprocess.run(
        [sys.executable, __file__, "_zv_read_cells", str(store.path), str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    zv_times = json.loads(out.strip().splitlines()[-1])
    return {"cells": cells, **zv_times}


def report_chunks(store: Store, res: dict, cmp: dict) -> dict:
    cells = cmp["cells"]
    by_level: dict[str, list[int]] = {}
    for k, c in enumerate(cells):
        by_level.setdefault(f"{c['spatial']} = ZVF level {c['level']}", []).append(k)
    by_level["all spatial cells"] = list(range(len(cells)))
    colds = [p for p in res["passes"] if p.mode.startswith("(b)") and p.mode.endswith("cold")]
    items = "objects" in cells[0]
    say(
        f"### {store.name}: cold chunk latency, mount vs zarr-vectors' own per-chunk read"
        + (" of the level-0 chunks holding the polylines each cell lists" if items else "")
    )
    rows, verdict = [], {}
    for name, ks in by_level.items():
        zv_cold = statistics.median([cmp["cold"][k] for k in ks])
        zv_warm = statistics.median([cmp["warm"][k] for k in ks])
        row = [name, len(ks), f"{statistics.mean(cmp['chunks'][k] for k in ks):.1f}", ms(zv_cold), ms(zv_warm)]
        for p in colds:
            m = statistics.median([p.seconds[cells[k]["index"]] for k in ks])
            row += [ms(m), ratio(m, zv_cold)]
            if name == "all spatial cells":
                verdict[p.mode] = m / zv_cold
        rows.append(row)
    heads = ["cells", "n", "chunks/cell", "zv cold ms", "zv warm ms"]
    for p in colds:
        limit = p.mode.split("mount ")[1].split(",")[0]
        heads += [f"mount {limit} cold ms", "ratio"]
    table(heads, rows)
    info_i = next(i for i, r in enumerate(res["requests"]) if r.category == "info")
    say(
        "cold `"
        + res["requests"][info_i].path
        + "` (the first request; it sizes the spatial index): "
        + ", ".join(f"{p.mode}: {ms(p.seconds[info_i])} ms" for p in res["passes"] if p.mode.endswith("cold"))
    )
    say()
    return verdict


# -- stat storm --------------------------------------------------------------------------------


def walk_check(store: str, root: str) -> None:
    """(subprocess) Walk the virtual tree twice with ``stat``; print files, encodes, times (JSON)."""
    from zvfs.frontends.export import walk
    from zvfs.source import open_virtual_tree

    tree = open_virtual_tree(store)
    out: dict[str, list] = {"walks": []}
    for _ in range(2):
        t0 = time.perf_counter()
        files = dirs = 0
        for path, is_dir in walk(tree, root):
            tree.stat(path)
            dirs += is_dir
            files += not is_dir
        out["walks"].append(
            {"files": files, "dirs": dirs, "seconds": time.perf_counter() - t0, "encodes": tree.encodes}
        )
    print(json.dumps(out))


def stat_storm(store: Store, work: Path, root: str) -> None:
    say(f"### stat storm: {store.name} ({store.what})")
    mp = work / "mnt" / store.name
    target = mp / root if root else mp
    with mount(store.path, mp, "512M", work / f"mount-{store.name}.log"):
        drop_caches()
        rows = []
        for label, shell in [
            ("ls -lR (fresh mount)", f"ls -lR {shlex.quote(str(target))} | grep -c '^[-d]'"),
            ("find -size +0 (then)", f"find {shlex.quote(str(target))} -size +0 | wc -l"),
        ]:
            note("$ " + shell)
            t0 = time.perf_counter()
            n = int(subprocess.run(["bash", "-c", shell], capture_output=True, text=True).stdout.strip() or 0)
            dt = time.perf_counter() - t0
            rows.append([label, f"{n:,}", f"{dt:.1f}", f"{n / dt:,.0f}"])
    table(["command", "entries", "seconds", "stats/s"], rows)
    note("in-process double walk")
    out = subprocess.run(
        [sys.executable, __file__, "_walk_check", str(store.path), root], check=True, capture_output=True, text=True
    ).stdout
    res = json.loads(out.strip().splitlines()[-1])
    w1, w2 = res["walks"]
    ok = w2["encodes"] == w1["encodes"] and w1["encodes"] <= w1["files"]
    say(
        f"in-process (zvfs.source.open_virtual_tree, zvfs.frontends.export.walk + stat, twice over "
        f"/{root}): {w1['files']:,} files, {w1['dirs']:,} dirs; walk 1 {w1['seconds']:.1f} s "
        f"({(w1['files'] + w1['dirs']) / w1['seconds']:,.0f} stats/s), walk 2 {w2['seconds']:.1f} s; "
        f"tree.encodes {w1['encodes']} after walk 1, {w2['encodes']} after walk 2 -> "
        + ("OK: nothing encoded twice, encodes <= files" if ok else "FAIL: files were encoded again")
    )
    say()


# -- export ------------------------------------------------------------------------------------


def zvtools(cache: Path) -> Path | None:
    """zvtools (zarr-vectors-tools[precomputed]) in a venv of its own (it must not change ours)."""
    venv = cache / "zvtools-venv"
    exe = venv / "bin" / "zvtools"
    if exe.exists():
        return exe
    try:
        run([sys.executable, "-m", "venv", str(venv)], stdout=subprocess.DEVNULL)
        run(
            [str(venv / "bin" / "pip"), "install", "-q", "zarr-vectors-tools[precomputed]"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        note(f"zvtools not installed: {exc}")
        return None
    return exe if exe.exists() else None


def report_exports(all_stores: list[Store], cache: Path, use_zvtools: bool) -> None:
    say("### export throughput (single process)")
    rows = []
    for s in all_stores:
        r = s.export_record
        rows.append(
            [
                s.name,
                "zvfs export",
                f"{r['files']:,}",
                f"{r['bytes'] / MiB:,.1f}",
                f"{r['seconds']:.1f}",
                f"{r['files'] / r['seconds']:,.0f}",
                f"{r['bytes'] / MiB / r['seconds']:.2f}",
                "this run" if r["fresh"] else f"cached, {r['when']}",
            ]
        )
    exe = zvtools(cache) if use_zvtools else None
    if exe is not None:
        version = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout.strip()
        for s in all_stores:
            if s.name not in ("meshes", "skeletons"):
                continue
            out = cache / "zvtools-export" / s.name
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            cmd = [str(exe), "convert", str(s.path), str(out), "--format", "precomputed"]
            drop_caches()
            t0 = time.perf_counter()
            ok = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            note("$ " + shlex.join(cmd))
            if ok.returncode:
                rows.append(
                    [
                        s.name,
                        "zvtools convert",
                        "failed",
                        "",
                        f"{dt:.1f}",
                        "",
                        "",
                        ok.stderr.strip().splitlines()[-1][:60],
                    ]
                )
                continue
            files, size = tree_size(out)
            rows.append(
                [
                    s.name,
                    "zvtools convert",
                    f"{files:,}",
                    f"{size / MiB:,.1f}",
                    f"{dt:.1f}",
                    f"{files / dt:,.0f}",
                    f"{size / MiB / dt:.2f}",
                    "this run",
                ]
            )
    table(["store", "tool", "files", "MiB", "seconds", "files/s", "MiB/s", "measured"], rows)
    if exe is not None:
        say(
            f"zvtools: {version}; `zvtools convert STORE OUT --format precomputed` (skeleton, graph and mesh "
            "stores only; meshes as single-resolution legacy meshes, level 0 only), while zvfs export writes "
            "every layer and pinned level (multi-resolution Draco + legacy meshes, levels/N/)."
        )
    elif use_zvtools:
        say("zvtools: `pip install zarr-vectors-tools[precomputed]` did not work here; no comparison.")
    say()


def dask_export(store: Store, cache: Path, workers: int) -> dict:
    """``zvfs export --dask`` on a fresh ``LocalCluster`` of ``workers`` single-threaded processes."""
    from distributed import LocalCluster

    out = cache / "dask-export" / f"{store.name}-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        cmd = [
            *ZVFS,
            "export",
            "--no-progress",
            "--sharding",
            "off",
            "--dask",
            cluster.scheduler_address,
            str(store.path),
            str(out),
        ]
        timing = timed_export(cmd, out)
    shutil.rmtree(out)
    return timing


def report_scaling(all_stores: list[Store], cache: Path, names: set[str]) -> None:
    say(
        "### export scaling: `zvfs export --dask` on a LocalCluster of 1 and 2 worker processes "
        "(1 thread each; the client walks the tree, workers encode and write)"
    )
    rows = []
    for s in all_stores:
        if s.name not in names:
            continue
        runs = {n: dask_export(s, cache, n) for n in (1, 2)}
        ref = s.export_record
        for n, r in runs.items():
            same = (r["files"], r["bytes"]) == (ref["files"], ref["bytes"])
            rows.append(
                [
                    s.name,
                    n,
                    f"{r['files']:,}",
                    f"{r['seconds']:.1f}",
                    f"{r['files'] / r['seconds']:,.0f}",
                    f"{r['bytes'] / MiB / r['seconds']:.2f}",
                    f"{runs[1]['seconds'] / r['seconds']:.2f}",
                    "yes" if same else "NO",
                ]
            )
    table(["store", "workers", "files", "seconds", "files/s", "MiB/s", "speed-up", "same files and bytes"], rows)
    say()


# -- memory ------------------------------------------------------------------------------------


def report_rss(results: dict[str, dict]) -> list[str]:
    say("### peak RSS of the mount daemon (`zvfs mount -f`, /proc/PID/status) during the replay")
    rows, problems = [], []
    for name, res in results.items():
        served = max(p.nbytes for p in res["passes"])
        for limit in CACHE_LIMITS:
            passes = [p for p in res["passes"] if f"mount {limit}," in p.mode]
            idle = res["idle"][limit]["VmRSS"]
            hwm = max(p.status["VmHWM"] for p in passes)
            rss = passes[-1].status["VmRSS"]
            cap = parse_size(limit)
            growth = hwm - idle
            ok = hwm <= cap + idle + FIXED_CACHES
            if not ok:
                problems.append(f"{name} {limit}")
            rows.append(
                [
                    name,
                    limit,
                    f"{idle / MiB:.0f}",
                    f"{hwm / MiB:.0f}",
                    f"{rss / MiB:.0f}",
                    f"{growth / MiB:.0f}",
                    f"{served / MiB:.1f}",
                    "yes" if ok else "NO",
                ]
            )
    table(
        [
            "store",
            "--cache-size",
            "idle RSS MiB",
            "peak (VmHWM) MiB",
            "RSS after MiB",
            "peak - idle MiB",
            "bytes served MiB",
            "peak <= limit + idle + fixed",
        ],
        rows,
    )
    say(
        f"--cache-size bounds encoded files (3/4) and decoded ZVF chunks (1/4); fixed = zvfs's other bounded "
        f"caches, {FIXED_CACHES / MiB:.0f} MiB (fragment tables 32 MiB per level for 3 levels, point regions "
        "32 MiB, encoded meshes 128 MiB)."
    )
    say()
    return problems


FIXED_CACHES = (3 * 32 + 32 + 128) * MiB


def parse_size(text: str) -> int:
    return int(float(text[:-1]) * 1024 ** " KMGT".index(text[-1].upper()))


# -- profile -----------------------------------------------------------------------------------


def report_profile(path: Path, top: int = 12) -> None:
    """Summarise py-spy raw (collapsed) stacks: samples per zvfs/zarr-vectors/other frame."""
    if not path.exists():
        return
    leaf: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + n
        for f in set(frames):
            if "zvfs" in f or "zarr_vectors" in f:
                inclusive[f] = inclusive.get(f, 0) + n
    if not total:
        return
    say(
        f"py-spy --gil ({path.name}, {total} samples holding the GIL, 250 Hz): busiest zvfs / zarr-vectors frames "
        "(inclusive)"
    )
    for f, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        say(f"  {100 * n / total:5.1f}%  {f}")
    say("  leaf frames:")
    for f, n in sorted(leaf.items(), key=lambda kv: -kv[1])[:6]:
        say(f"  {100 * n / total:5.1f}%  {f}")


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small stores (seconds to build), for a fast check")
    ap.add_argument("--cache-dir", default="/tmp/zvfs-bench", help="stores, exports, mounts (default /tmp/zvfs-bench)")
    ap.add_argument(
        "--only",
        default="points,streamlines,meshes,skeletons",
        help="stores to run (default points,streamlines,meshes,skeletons; skeletons: export only)",
    )
    ap.add_argument("--reexport", action="store_true", help="export again even if a previous run's export exists")
    ap.add_argument(
        "--storm-root",
        default="",
        metavar="PATH",
        help="stat storm under this tree path only (default: the whole tree)",
    )
    ap.add_argument("--no-storm", action="store_true", help="skip the stat storm")
    ap.add_argument("--no-zvtools", action="store_true", help="skip the zvtools comparison")
    ap.add_argument(
        "--scaling",
        default="points,streamlines,meshes,skeletons",
        metavar="STORES",
        help="stores whose export is timed again with 1 and 2 Dask workers ('' for none)",
    )
    ap.add_argument("--profile", action="store_true", help="py-spy the daemon during the 2G mount passes")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        note("not root: page caches cannot be dropped, nginx may not read the mount")
    only = set(args.only.split(","))
    size = "quick" if args.quick else "large"
    cache = Path(args.cache_dir) / size
    work = cache / "work"
    work.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    say(f"# zvfs benchmark ({size})")
    table(["machine", ""], machine(), align="ll")
    sfx = "" if args.quick else "_large"
    mesh_args = " --meshes 10 --resolution 20 --cell 250" if args.quick else ""
    say("commands:")
    for line in [
        f"bench/run {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(),
        f"stores:   python {MAKE_SAMPLES} {cache} {'' if args.quick else '--large '}--only "
        f"point_cloud,streamline,skeleton --no-validate   (once, reused)",
        f"          python bench/build_mesh.py {cache}/mesh{sfx}.zarrvectors{mesh_args}   (once, reused)",
        f"export:   zvfs export STORE {cache}/export/NAME --no-progress   (timed; once, reused unless --reexport)",
        "nginx:    nginx -p PREFIX -c PREFIX/nginx.conf   (tests/test_nginx.py's config: worker_processes 1, "
        "the documented location block, root = export or mount point)",
        f"mount:    zvfs mount -f STORE {work}/mnt/NAME --cache-size {'|'.join(CACHE_LIMITS)}   (fresh per limit)",
        "serve:    zvfs serve STORE --port PORT   (default --cache-size 512M)",
        "cold:     sync; echo 3 > /proc/sys/vm/drop_caches   (after the server/mount is up, before the cold pass)",
        "replay:   one keep-alive HTTP/1.1 connection, requests in sequence; latency = request sent to last "
        "body byte read",
        "storm:    ls -lR MP | grep -c '^[-d]'; find MP -size +0 | wc -l   (fresh mount, 512M)",
    ]:
        say("  " + line)
    say()

    all_stores = stores(cache, args.quick, only)
    for s in all_stores:
        note(f"export {s.name}")
        ensure_export(s, cache, args.reexport)

    results, verdicts, profiles = {}, {}, {}
    say("## 1. replayed Neuroglancer session; ratios to (a) warm")
    for s in all_stores:
        if not s.replay:
            continue
        note(f"replay {s.name}")
        results[s.name] = replay_store(s, work, args)
        report_replay(s, results[s.name])
        profiles.update({f"{s.name}, {phase}": path for phase, path in results[s.name]["profiles"].items()})

    say("## 2. cold chunk latency vs zarr-vectors")
    for s in all_stores:
        if s.name in results and s.export is not None and (s.export / "annotations" / "info").exists():
            cmp = chunk_comparison(s, results[s.name], work)
            if cmp:
                verdicts[s.name] = report_chunks(s, results[s.name], cmp)

    if not args.no_storm and "points" in only:
        say("## 3. stat storm")
        stat_storm(next(s for s in all_stores if s.name == "points"), work, args.storm_root)

    say("## 4. export")
    report_exports(all_stores, cache, not args.no_zvtools)
    if args.scaling:
        report_scaling(all_stores, cache, set(args.scaling.split(",")))

    say("## 5. memory")
    rss_problems = report_rss(results)

    if profiles:
        say("## profile of the mount daemon (fresh 2G mount behind nginx; one cold pass; warm passes for 10 s)")
        for name, path in profiles.items():
            say(f"### {name}")
            report_profile(path)
        say()

    say("## targets")
    for name, res in results.items():
        passes = res["passes"]
        base = next(p for p in passes if p.mode == "(a) nginx + export, warm")
        bm, bt = statistics.median(base.seconds), base.total
        for p in passes:
            if p.mode.startswith("(b)") and p.mode.endswith("warm"):
                m, t = statistics.median(p.seconds) / bm, p.total / bt
                say(
                    f"  {name}: {p.mode}: median x{m:.2f}, session x{t:.2f} the baseline -> "
                    + ("met (<= 1.5x)" if max(m, t) <= 1.5 else "MISSED (target <= 1.5x)")
                )
    for name, v in verdicts.items():
        for mode, r in v.items():
            say(
                f"  {name}: {mode}: median spatial-cell latency x{r:.2f} zarr-vectors' cold read of the chunks "
                "it needs -> " + ("met (<= 2x)" if r <= 2 else "MISSED (target <= 2x)")
            )
    say(
        "  memory: "
        + (
            "peak RSS within limit + idle + fixed caches for every store and limit"
            if not rss_problems
            else "ABOVE limit + constant: " + ", ".join(rss_problems)
        )
    )
    say(f"\ntotal bench time {time.perf_counter() - t_start:.0f} s")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = cache / f"report-{stamp}.txt"
    report.write_text("\n".join(_LOG) + "\n")
    note(f"report written to {report}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_zv_read_cells":
        zv_read_cells(sys.argv[2], sys.argv[3])
    elif len(sys.argv) > 1 and sys.argv[1] == "_walk_check":
        walk_check(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
    else:
        sys.exit(main())
