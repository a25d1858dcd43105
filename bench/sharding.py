#!/usr/bin/env python
"""Sharded against unsharded output of one point store, both measured in this one run.

1. **export**: ``zvfs export --sharding off`` and ``--sharding on`` (one process each, page cache
   dropped first when root): files, bytes, seconds, and the ratio sharded / unsharded;
2. **first requests**: in a fresh process per mode (the tree opened on the index already built),
   the requests the client makes for its first ``by_id`` hover, its first finest-level spatial cell
   and its first relationship entry: unsharded ``stat`` + read of the file; sharded ``stat`` of the
   shard, its 16-byte shard index entry, the minishard index, then the chunk (three reads, as
   Neuroglancer's ``sharded.ts`` does). Then the same for ``--repeat`` more random keys (median).

    python bench/sharding.py [STORE] [--points 200000] [--work /tmp/zvfs-bench/sharding]

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
    from zvfs.encoders.sharded import ShardingSpec, fetch_chunk, locate, shard_name

    if spec is None:
        path = f"{directory}/{plain_name}"
        return len(tree.read(path, 0, tree.stat(path).size))
    sharding = ShardingSpec.from_json(spec)
    path = f"{directory}/{shard_name(sharding, int(locate(sharding, [key])[0][0]))}"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", nargs="?", help="a point-cloud store (default: build one of --points points)")
    ap.add_argument("--points", type=int, default=200_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/zvfs-bench/sharding"))
    ap.add_argument("--repeat", type=int, default=20, help="more keys read after the first (median)")
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
    exports = {m: export(store, args.work / f"export-{m}", m, index_dir) for m in MODES}
    print(f"\nexport      {'files':>10} {'MB':>10} {'seconds':>10}")
    for m, r in exports.items():
        print(f"{m:<11} {r['files']:>10} {r['bytes'] / 1e6:>10.1f} {r['seconds']:>10.2f}")
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


if __name__ == "__main__":
    main()
