#!/usr/bin/env python
"""Real sizes: what a store's index costs to build, and what the first requests of a mount cost once
it exists, as the store grows (1M, 8M, 32M points; 100k and 1M streamlines, all at one density).

For each store, measured in this one run, on this machine:

1. **raw read**: zarr-vectors' own read of every level-0 chunk (``building.read_vertex_fragment_index``,
   ``read_chunk_vertex_buffer``, ``read_chunk_attributes`` for each attribute), one process: the
   least any index of the store must read;
2. **index build**: ``zvfs index`` into an empty index directory (every core), and its peak RSS;
3. **second mount**: ``zvfs mount`` with the index in place, until it returns, then ``info`` and the
   first cell of the coarsest spatial level read through the mount (median of 3 fresh mounts, page
   cache dropped before each), and the daemon's RSS after them;
4. **memory**: a session through a mount with ``--cache-size 256M`` (every coarse cell, 200 cells of
   the finest level, 50 ``by_id`` files): the daemon's peak RSS (``VmHWM``) against the limit;
5. **first frame** (``--browser``, the 8M-point store): the real client (``zvfs view`` of a mount,
   headless Chromium) from page load to the first drawn annotation, on a fresh mount (cold) and on
   a second page load (warm).

    python bench/scale.py [--cache-dir /tmp/zvfs-bench/scale] [--only points,streamlines] [--browser]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
ZVFS = [PYTHON, "-m", "zvfs"]
SIZES = {"points": [1_000_000, 8_000_000, 32_000_000], "streamlines": [100_000, 1_000_000]}
CACHE_LIMIT = "256M"
HIDE_DECORATIONS = """() => { const v = window.viewer; v.showAxisLines.value = false; v.showScaleBar.value = false;
  v.showDefaultAnnotations.value = false; }"""


def say(line: str = "") -> None:
    print(line, flush=True)
    REPORT.append(line)


REPORT: list[str] = []


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    with suppress(OSError):  # not root: the page cache stays
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def status(pid: int, key: str) -> int:
    """A ``/proc/PID/status`` field in MiB (VmRSS, VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) // 1024
    raise KeyError(key)


def build_store(cache: Path, kind: str, n: int) -> Path:
    out = subprocess.run(
        [PYTHON, str(BENCH / "build_large.py"), str(cache), kind, str(n)], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def raw_read(store: Path) -> float:
    """Seconds for zarr-vectors to read every level-0 chunk (fragment index, vertices, attributes)."""
    code = f"""
import time, zarr_vectors as zv
from zarr_vectors import building as b
lv = zv.open({str(store)!r}).level(0)
g = lv.store
names = sorted(lv.attribute_names("vertex"))
cells = [tuple(int(c) for c in ref.coords) for ref in lv.cells()]
t0 = time.perf_counter()
for cell in cells:
    b.read_vertex_fragment_index(g, cell)
    b.read_chunk_vertex_buffer(g, cell)
    for name in names:
        b.read_chunk_attributes(g, name, cell)
print(time.perf_counter() - t0)
"""
    drop_caches()
    out = subprocess.run([PYTHON, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def index_build(store: Path, index: Path) -> tuple[float, int]:
    """(seconds, peak RSS MiB of the command and its workers) of ``zvfs index`` into an empty dir."""
    shutil.rmtree(index, ignore_errors=True)
    drop_caches()
    t0 = time.perf_counter()
    out = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *ZVFS, "index", "--no-progress", "--index-dir", str(index), str(store)],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - t0, int(out.stderr.strip().splitlines()[-1]) // 1024


@contextmanager
def mounted(store: Path, mountpoint: Path, index: Path, *args: str) -> Iterator[int]:
    """A background mount; yields the daemon pid."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        [*ZVFS, "mount", "--index-dir", str(index), *args, str(store), str(mountpoint)],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(out.stderr.split("daemon pid ")[1].split(",")[0])
    try:
        yield pid
    finally:
        subprocess.run([*ZVFS, "umount", str(mountpoint)], check=False, capture_output=True)


def second_mount(store: Path, index: Path, work: Path) -> dict:
    """Median over 3 fresh mounts: seconds to mount, then ``info`` + the first coarsest cell; RSS."""
    runs = []
    for k in range(3):
        drop_caches()
        mp = work / f"mnt-{store.name}-{k}"
        t0 = time.perf_counter()
        with mounted(store, mp, index) as pid:
            t1 = time.perf_counter()
            layer = mp / "annotations"
            info = json.loads((layer / "info").read_bytes())
            coarse = layer / info["spatial"][0]["key"]
            first = sorted(os.listdir(coarse))[0]
            (coarse / first).read_bytes()
            t2 = time.perf_counter()
            runs.append((t1 - t0, t2 - t1, t2 - t0, status(pid, "VmRSS")))
    mount, first_requests, total, rss = (statistics.median(x) for x in zip(*runs, strict=True))
    return {"mount": mount, "first requests": first_requests, "total": total, "rss": rss}


def session_memory(store: Path, index: Path, work: Path) -> dict:
    """Peak RSS of a daemon limited to CACHE_LIMIT over a session touching many files."""
    rng = random.Random(0)
    mp = work / f"mem-{store.name}"
    with mounted(store, mp, index, "--cache-size", CACHE_LIMIT) as pid:
        idle = status(pid, "VmRSS")
        layer = mp / "annotations"
        info = json.loads((layer / "info").read_bytes())
        t0 = time.perf_counter()
        files = []
        for level in info["spatial"][:-1]:
            files += [layer / level["key"] / c for c in os.listdir(layer / level["key"])]
        finest = info["spatial"][-1]["key"]
        cells = sorted(os.listdir(layer / finest))
        files += [layer / finest / c for c in rng.sample(cells, min(200, len(cells)))]
        files += [layer / "by_id" / str(rng.randint(1, 10_000)) for _ in range(50)]
        for f in files:
            f.read_bytes()
        return {"files": len(files), "seconds": time.perf_counter() - t0, "idle": idle, "peak": status(pid, "VmHWM")}


def first_frame(store: Path, index: Path, work: Path) -> dict:
    """Seconds from page load to the first drawn annotation in the real client, cold and warm."""
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
             "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage"]  # fmt: skip
    pixels = """() => { const v = window.viewer; if (!v) return 0; v.display.draw();
      const gl = v.display.canvas, c = document.createElement('canvas'); c.width = gl.width; c.height = gl.height;
      const x = c.getContext('2d'); x.drawImage(gl, 0, 0); const d = x.getImageData(0, 0, c.width, c.height).data;
      let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 16 || d[i+1] > 16 || d[i+2] > 16) ++n; return n; }"""
    drop_caches()
    out = {}
    mp = work / "frame"
    with (
        mounted(store, mp, index),
        subprocess.Popen(
            [*ZVFS, "view", str(mp), "--port", "0", "--no-browser"], stdout=subprocess.PIPE, text=True
        ) as view,
    ):
        assert view.stdout is not None
        url = view.stdout.readline().split()[-1]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=flags)
            for phase in ("cold", "warm"):
                page = browser.new_page(viewport={"width": 800, "height": 600})
                t0 = time.perf_counter()
                page.goto(url)
                page.wait_for_function("window.viewer && window.viewer.layerManager.managedLayers.length > 0")
                page.evaluate(HIDE_DECORATIONS)
                page.wait_for_function(f"({pixels})() > 50", timeout=600_000, polling=100)
                out[phase] = time.perf_counter() - t0
                page.close()
            browser.close()
        view.terminate()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/zvfs-bench/scale"))
    ap.add_argument("--only", default="points,streamlines")
    ap.add_argument("--browser", action="store_true", help="the real client's first frame on the 8M-point store")
    args = ap.parse_args()
    cache: Path = args.cache_dir
    work = cache / "work"
    work.mkdir(parents=True, exist_ok=True)
    say(f"# zvfs at real sizes ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    say(f"commit {commit.stdout.strip()}")
    say()
    say(
        "| store | raw read (s) | index build (s) | build / raw | index MiB | build peak RSS MiB | mount (s) "
        "| info + coarsest cell (s) | from mount to first cell (s) | daemon RSS MiB "
        "| session peak RSS MiB (limit 256M) |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in args.only.split(","):
        for n in SIZES[kind]:
            store = build_store(cache, kind, n)
            index = cache / "index" / store.name
            raw = raw_read(store)
            build, build_rss = index_build(store, index)
            size = sum(f.stat().st_size for f in index.rglob("*") if f.is_file()) // 2**20
            mount = second_mount(store, index, work)
            memory = session_memory(store, index, work)
            say(f"| {kind} {n:,} | {raw:.1f} | {build:.1f} | {build / raw:.2f} | {size} | {build_rss} "
                f"| {mount['mount']:.2f} | {mount['first requests']:.3f} | {mount['total']:.2f} | {mount['rss']} "
                f"| {memory['peak']} (idle {memory['idle']}, {memory['files']} files) |")  # fmt: skip
    if args.browser:
        store = build_store(cache, "points", 8_000_000)
        frame = first_frame(store, cache / "index" / store.name, work)
        say()
        cold, warm = frame["cold"], frame["warm"]
        say(f"real client, 8M points, first drawn annotation: cold mount {cold:.1f} s, warm {warm:.1f} s")
    (cache / "report-scale.txt").write_text("\n".join(REPORT) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
