#!/usr/bin/env python
"""Sharded against unsharded output of one point store, both measured in this one run.

1. **export**: ``zvfs export --sharding off`` and ``--sharding on`` (one process each, page cache
   dropped first when root): files, bytes, seconds, and the ratio sharded / unsharded;
2. **first requests**: in a fresh process per mode (the tree opened on the index already built),
   the requests the client makes for its first ``by_id`` hover, its first finest-level spatial cell
   and its first relationship entry: unsharded ``stat`` + read of the file; sharded ``stat`` of the
   shard, its 16-byte shard index entry, the minishard index, then the chunk (three reads, as
   Neuroglancer's ``sharded.ts`` does). Then the same for ``--repeat`` more random keys (median).
3. **replayed session**: ``bench/bench.py``'s annotation session (``info``, every coarsest cell, the
   finer cells of a zoomed region, hovers by id and by relationship), made from the unsharded
   export, replayed against nginx on each export, page cache dropped first when root. On the
   sharded export each key becomes the client's ranged reads (shard index entry, minishard index,
   chunk), each distinct range fetched once, as the client caches minishard indexes; every key
   must give the unsharded file's bytes (or be absent in both).

    python bench/sharding.py [STORE] [--points 200000] [--work /tmp/zvfs-bench/sharding] [--modes on]

``--modes on`` writes only the sharded export (a store too large to export unsharded; no probes or
replay, which compare both).

Without ``STORE`` it builds a point cloud of ``--points`` points with 50 objects (tests/support's
``build_points``). The index is built first (``zvfs index``, untimed) into ``WORK/index``.
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
from contextlib import suppress
from functools import partial
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
ZVFS = [sys.executable, "-m", "zvfs"]
MODES = ("off", "on")


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    with suppress(OSError):  # not root: the page cache stays
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def tree_size(path: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _, names in os.walk(path):
        files += len(names)
        size += sum(os.lstat(os.path.join(dirpath, n)).st_size for n in names)
    return files, size


def ratio(a: float, b: float) -> str:
    return f"{a / b:.3g}x" if b else "-"


def export(store: Path, out: Path, mode: str, index_dir: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*ZVFS, "export", "--no-progress", "--index-dir", str(index_dir), "--sharding", mode, str(store), str(out)]
    drop_caches()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    files, size = tree_size(out)
    return {"files": files, "bytes": size, "seconds": seconds}


# -- first requests (run in a fresh process per mode: --probe) -----------------------------------


def client_read(tree, directory: str, key: int, spec: dict | None, plain_name: str) -> int:
    """The bytes of one chunk read as the client reads it; returns its length."""
    from zvfs.encoders.sharded import ShardingSpec, fetch_chunk, shard_of

    if spec is None:
        path = f"{directory}/{plain_name}"
        return len(tree.read(path, 0, tree.stat(path).size))
    sharding = ShardingSpec.from_json(spec)
    path = f"{directory}/{shard_of(sharding, key)}"
    tree.stat(path)
    data = fetch_chunk(sharding, partial(tree.read, path), key)
    assert data is not None, (path, key)
    return len(data)


def probe(store: str, mode: str, index_dir: str, repeat: int) -> dict:
    from zvfs.encoders.sharded import compressed_morton_code
    from zvfs.index import IndexOptions
    from zvfs.mappers.sharding import Sharding
    from zvfs.source import open_tree

    t0 = time.perf_counter()
    tree = open_tree(store, index=IndexOptions(root=Path(index_dir), progress=False), sharding=Sharding(mode))
    info = json.loads(tree.read("annotations/info"))
    opened = time.perf_counter() - t0
    rng = random.Random(7)
    plain = open_tree(store, index=IndexOptions(root=Path(index_dir), progress=False))  # which keys exist
    finest = info["spatial"][-1]
    cells = [tuple(int(c) for c in n.split("_")) for n in plain.listdir(f"annotations/{finest['key']}")]
    ids = [int(n) for n in rng.sample(list(plain.listdir("annotations/by_id")), repeat + 1)]
    rels = [(r, int(s)) for r in info["relationships"] for s in plain.listdir(f"annotations/{r['key']}")]
    asks: dict[str, list] = {
        "by_id": [("annotations/by_id", i, info["by_id"].get("sharding"), str(i)) for i in ids],
        "spatial": [
            (
                f"annotations/{finest['key']}",
                int(compressed_morton_code([c], finest["grid_shape"])[0]),
                finest.get("sharding"),
                "_".join(map(str, c)),
            )
            for c in rng.sample(cells, min(len(cells), repeat + 1))
        ],
        "relationship": [
            (f"annotations/{r['key']}", s, r.get("sharding"), str(s))
            for r, s in rng.sample(rels, min(len(rels), repeat + 1))
        ],
    }
    out: dict = {"open": opened}
    for what, keys in asks.items():
        times = []
        for directory, key, spec, name in keys:
            t = time.perf_counter()
            client_read(tree, directory, key, spec, name)
            times.append(time.perf_counter() - t)
        if times:
            out[what] = {"first": times[0], "median": statistics.median(times[1:] or times)}
    return out


# -- a replayed session against nginx on each export -------------------------------------------


class RangeReads:
    """The client's ranged reads of shard files over one keep-alive connection; a range read once
    is not read again (the client caches minishard indexes, and chunks)."""

    def __init__(self, port: int) -> None:
        import bench

        self.bench = bench
        self.client = bench.Client(port)
        self.seen: dict[tuple[str, int, int], bytes] = {}
        self.requests = self.nbytes = 0

    def reader(self, path: str):
        def read(offset: int, size: int) -> bytes:
            if size == 0:
                return b""
            if (path, offset, size) not in self.seen:
                status, body, _ = self.client.get(self.bench.Request("shard", path, (offset, offset + size - 1)))
                self.requests += 1
                self.nbytes += len(body)
                assert status in (206, 404), (path, offset, size, status)
                self.seen[path, offset, size] = body if status == 206 else bytes(size)  # no shard: no chunk
            return self.seen[path, offset, size]

        return read


def sharded_key(info: dict, path: str) -> tuple[dict, int]:
    """(sharding spec, chunk id) of a key's file in the unsharded tree (``layer/directory/name``)."""
    from zvfs.encoders.sharded import compressed_morton_code

    _, directory, name = path.split("/")
    if directory == "by_id":
        return info["by_id"]["sharding"], int(name)
    for level in info["spatial"]:
        if level["key"] == directory:
            cell = [int(c) for c in name.split("_")]
            return level["sharding"], int(compressed_morton_code([cell], level["grid_shape"])[0])
    rel = next(r for r in info["relationships"] if r["key"] == directory)
    return rel["sharding"], int(name)


def replay(exports: dict[str, Path], work: Path) -> dict:
    """The session against nginx on the unsharded and the sharded export: per mode its seconds per
    session request, HTTP requests and bytes; checks both give the same bytes per key."""
    import bench
    from zvfs.encoders.sharded import ShardingSpec, fetch_chunk, shard_of

    reqs = bench.annotation_session(exports["off"], "annotations", random.Random(bench.SEED))
    out: dict = {"categories": [r.category for r in reqs]}
    plain: list[bytes | None] = []
    drop_caches()
    with bench.nginx(exports["off"], work) as port:
        client = bench.Client(port)
        seconds = []
        t0 = time.perf_counter()
        for r in reqs:
            status, body, dt = client.get(r)
            assert status in (200, 404), (r.path, status)
            plain.append(body if status == 200 else None)
            seconds.append(dt)
        out["off"] = {"total": time.perf_counter() - t0, "seconds": seconds, "requests": len(reqs)}
        out["off"]["bytes"] = sum(len(b) for b in plain if b is not None)
        client.close()
    info = json.loads((exports["on"] / "annotations" / "info").read_text())
    drop_caches()
    with bench.nginx(exports["on"], work) as port:
        reads = RangeReads(port)
        seconds = []
        t0 = time.perf_counter()
        for r, expected in zip(reqs, plain, strict=True):
            t = time.perf_counter()
            key = None if r.category == "info" else sharded_key(info, r.path)
            if key is None:
                status, body, _ = reads.client.get(r)
                reads.requests += 1
                reads.nbytes += len(body)
                got: bytes | None = body if status == 200 else None
            else:
                spec = ShardingSpec.from_json(key[0])
                shard = f"{r.path.rsplit('/', 1)[0]}/{shard_of(spec, key[1])}"
                got = fetch_chunk(spec, reads.reader(shard), key[1])
            seconds.append(time.perf_counter() - t)
            same = key is None or got == expected  # the info files differ by their sharding specs
            assert same, f"{r.path}: the sharded export gives other bytes than the unsharded one"
        out["on"] = {"total": time.perf_counter() - t0, "seconds": seconds, "requests": reads.requests}
        out["on"]["bytes"] = reads.nbytes
        reads.client.close()
    return out


def report_replay(res: dict) -> None:
    off, on = res["off"], res["on"]

    def row(label: str, a: float, b: float, fmt: str) -> None:
        print(f"{label:<24} {a:>9{fmt}} {b:>9{fmt}} {ratio(b, a):>9}")

    print(f"\nreplayed session against nginx ({len(res['categories'])} session requests; ms)")
    print(f"{'':<24} {'off':>9} {'on':>9} {'on / off':>9}")
    row("HTTP requests", off["requests"], on["requests"], "d")
    row("MB transferred", off["bytes"] / 1e6, on["bytes"] / 1e6, ".2f")
    row("whole session", off["total"] * 1e3, on["total"] * 1e3, ".0f")
    for cat in dict.fromkeys(res["categories"]):
        idx = [i for i, c in enumerate(res["categories"]) if c == cat]
        a, b = (statistics.median([m["seconds"][i] for i in idx]) for m in (off, on))
        row(f"{cat} ({len(idx)}) median", a * 1e3, b * 1e3, ".2f")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", nargs="?", help="a point-cloud store (default: build one of --points points)")
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/zvfs-bench/sharding"))
    ap.add_argument("--repeat", type=int, default=20, help="more keys read after the first (median)")
    ap.add_argument("--modes", choices=("both", "on"), default="both", help="on: only the sharded export")
    ap.add_argument("--probe", choices=MODES, help=argparse.SUPPRESS)
    args = ap.parse_args()
    index_dir = args.work / "index"
    if args.probe:
        print(json.dumps(probe(args.store, args.probe, str(index_dir), args.repeat)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    store = Path(args.store) if args.store else args.work / f"points_{args.points}.zarrvectors"
    if not store.exists():
        from support import PointSpec, build_points

        build_points(store, PointSpec(n=args.points, objects=50, seed=1))
    subprocess.run([*ZVFS, "index", "--no-progress", "--index-dir", str(index_dir), str(store)], check=True)
    print(f"store {store}")
    modes = MODES if args.modes == "both" else ("on",)
    exports = {m: export(store, args.work / f"export-{m}", m, index_dir) for m in modes}
    print(f"\nexport      {'files':>10} {'MB':>10} {'seconds':>10}")
    for m, r in exports.items():
        print(f"{m:<11} {r['files']:>10} {r['bytes'] / 1e6:>10.1f} {r['seconds']:>10.2f}")
    if args.modes == "on":
        return
    on, off = exports["on"], exports["off"]
    print(f"{'on / off':<11} {ratio(on['files'], off['files']):>10} {ratio(on['bytes'], off['bytes']):>10} "
          f"{ratio(on['seconds'], off['seconds']):>10}")  # fmt: skip
    probes = {}
    for m in MODES:
        drop_caches()
        cmd = [sys.executable, __file__, str(store), "--work", str(args.work), "--repeat", str(args.repeat)]
        probes[m] = json.loads(subprocess.run([*cmd, "--probe", m], check=True, capture_output=True).stdout)
    print("\nfirst requests (ms; sharded: stat + shard index entry + minishard index + chunk)")
    print(f"{'':<24} {'off':>9} {'on':>9} {'on / off':>9}")
    print(f"{'open + info':<24} {probes['off']['open'] * 1e3:>9.1f} {probes['on']['open'] * 1e3:>9.1f} "
          f"{ratio(probes['on']['open'], probes['off']['open']):>9}")  # fmt: skip
    for what in ("by_id", "spatial", "relationship"):
        for stat in ("first", "median"):
            if what in probes["off"]:
                a, b = probes["off"][what][stat], probes["on"][what][stat]
                print(f"{what + ' ' + stat:<24} {a * 1e3:>9.1f} {b * 1e3:>9.1f} {ratio(b, a):>9}")
    report_replay(replay({m: args.work / f"export-{m}" for m in MODES}, args.work))


if __name__ == "__main__":
    main()
