"""The sharded codec checked with independent readers and writers.

tensorstore reads every key of shards we write (its ``neuroglancer_uint64_sharded`` kvstore, keys
8-byte big-endian) and, for raw encodings, writes the same files byte for byte; its
``neuroglancer_precomputed`` driver gives the compressed Morton code of volume chunks; cloud-volume
gives the murmurhash and reads a sharded skeleton and a sharded multi-resolution mesh. The planner
is checked against the encoded bytes, and a byte-range read against which chunks it encodes.
"""

from __future__ import annotations

import gzip
import itertools
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import numpy as np
import pytest
import tensorstore as ts
from cloudvolume import CloudVolume
from cloudvolume.datasource.precomputed import mmh3

from zvfs.encoders import meshes as M
from zvfs.encoders import sharded as S
from zvfs.encoders import skeletons as SK

MURMUR: Final = "murmurhash3_x86_128"
SPECS = {
    "one_minishard": S.ShardingSpec(0, "identity", 0, 0),  # every id collides
    "identity": S.ShardingSpec(0, "identity", 2, 1),
    "identity_gzip_index": S.ShardingSpec(1, "identity", 4, 4, "gzip", "raw"),
    "identity_wide": S.ShardingSpec(0, "identity", 3, 5),  # 2 hex digits, mostly empty shards
    "murmur": S.ShardingSpec(0, MURMUR, 3, 2),
    "murmur_gzip": S.ShardingSpec(0, MURMUR, 3, 2, "gzip", "gzip"),
    "murmur_preshift_gzip_data": S.ShardingSpec(2, MURMUR, 1, 3, "raw", "gzip"),
    "murmur_no_shard_bits": S.ShardingSpec(0, MURMUR, 6, 0, "gzip", "raw"),
}
RAW = [name for name, spec in SPECS.items() if spec.data_encoding == spec.minishard_index_encoding == "raw"]


def sample_chunks(seed: int = 0) -> dict[int, bytes]:
    """Ids small and huge, many in one identity minishard (multiples of 256), values of 0 to 5000 bytes."""
    rng = np.random.default_rng(seed)
    ids = list(range(1, 41)) + [256 * k for k in range(1, 12)] + [2**32 + 7, 2**63 - 1, 2**63 + 5, 2**64 - 1]
    sizes = rng.integers(0, 200, len(ids))
    sizes[[0, 13]] = 0
    sizes[5] = 5000
    return {i: rng.integers(0, 4, n, dtype=np.uint8).tobytes() for i, n in zip(ids, sizes, strict=True)}


def key(chunk_id: int) -> bytes:
    """tensorstore's key of a chunk id: 8 bytes, big-endian."""
    return struct.pack(">Q", chunk_id)


def kvstore(root: Path, spec: S.ShardingSpec) -> ts.KvStore:
    return ts.KvStore.open(
        {"driver": "neuroglancer_uint64_sharded", "base": f"file://{root}/", "metadata": spec.json()}
    ).result()


def write_files(root: Path, files: Mapping[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def read_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


# -- spec, hash, names ---------------------------------------------------------------------------


def test_spec_json_round_trip() -> None:
    for spec in SPECS.values():
        assert S.ShardingSpec.from_json(json.loads(json.dumps(spec.json()))) == spec
        assert spec.json()["@type"] == "neuroglancer_uint64_sharded_v1"
    minimal = {
        "@type": "neuroglancer_uint64_sharded_v1",
        "preshift_bits": 1,
        "hash": "identity",
        "minishard_bits": 2,
        "shard_bits": 3,
    }
    assert S.ShardingSpec.from_json(minimal) == S.ShardingSpec(1, "identity", 2, 3, "raw", "raw")
    for bad in (
        {**minimal, "@type": "x"},
        {**minimal, "hash": "md5"},
        {**minimal, "minishard_bits": 33},
        {**minimal, "minishard_bits": 32, "shard_bits": 33},
        {**minimal, "preshift_bits": 65},
        {**minimal, "shard_bits": True},
        {**minimal, "data_encoding": "zstd"},
        {k: v for k, v in minimal.items() if k != "shard_bits"},
    ):
        with pytest.raises(ValueError):
            S.ShardingSpec.from_json(bad)


@pytest.mark.parametrize("bits", [(64, 32, 32), (0, 0, 64), (65, 0, 0), (0, 33, 0), (0, 1, 64)], ids=str)
def test_spec_limits_are_tensorstores(bits: tuple[int, int, int]) -> None:
    """We accept (preshift, minishard, shard) bits exactly where tensorstore does."""
    metadata = {
        "@type": "neuroglancer_uint64_sharded_v1",
        "hash": "identity",
        "preshift_bits": bits[0],
        "minishard_bits": bits[1],
        "shard_bits": bits[2],
    }
    try:
        ts.KvStore.open({"driver": "neuroglancer_uint64_sharded", "base": "memory://", "metadata": metadata}).result()
        accepted = True
    except ValueError:
        accepted = False
    if accepted:
        S.ShardingSpec.from_json(metadata)
    else:
        with pytest.raises(ValueError):
            S.ShardingSpec.from_json(metadata)
    assert accepted == (bits in [(64, 32, 32), (0, 0, 64)])


def test_murmurhash_matches_cloudvolume() -> None:
    """cloud-volume's pure-Python MurmurHash3_x86_128 of the 8 little-endian bytes, low 64 bits."""
    rng = np.random.default_rng(1)
    ids = np.concatenate(
        [
            np.array([0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1], np.uint64),
            rng.integers(0, 2**64 - 1, 500, dtype=np.uint64, endpoint=True),
        ]
    )
    want = [mmh3.hash64(int(i).to_bytes(8, "little"), x64arch=False)[0] % 2**64 for i in ids]
    assert S.murmurhash3_x86_128(ids).tolist() == want
    assert int(S.murmurhash3_x86_128(np.uint64(ids[7]))) == want[7]


def test_locate_bits() -> None:
    spec = S.ShardingSpec(2, "identity", 3, 4)
    shard, minishard = S.locate(spec, [0b1011_101_11, 2**64 - 1])
    assert shard.tolist() == [0b1011, 0b1111] and minishard.tolist() == [0b101, 0b111]
    full = S.ShardingSpec(64, "identity", 32, 32)  # everything shifted out: shard 0, minishard 0
    assert [a.tolist() for a in S.locate(full, [2**64 - 1])] == [[0], [0]]
    murmur = S.ShardingSpec(0, MURMUR, 5, 7)
    h = S.murmurhash3_x86_128([12345])[0]
    shard, minishard = S.locate(murmur, [12345])
    assert int(minishard[0]) == int(h) & 31 and int(shard[0]) == (int(h) >> 5) & 127


def test_shard_names() -> None:
    assert S.shard_name(S.ShardingSpec(0, "identity", 3, 0), 0) == "0.shard"
    assert S.shard_name(S.ShardingSpec(0, "identity", 0, 1), 1) == "1.shard"
    assert S.shard_name(S.ShardingSpec(0, "identity", 0, 5), 10) == "0a.shard"
    assert S.shard_name(S.ShardingSpec(0, "identity", 0, 8), 255) == "ff.shard"
    assert S.shard_name(S.ShardingSpec(0, "identity", 0, 9), 10) == "00a.shard"
    with pytest.raises(ValueError):
        S.shard_name(S.ShardingSpec(0, "identity", 0, 4), 16)


# -- compressed Morton code ------------------------------------------------------------------------


def morton_by_definition(cell: tuple[int, ...], grid_shape: tuple[int, ...]) -> int:
    """volume.md: for i = 0..n-1, for each dim, if 2**i < grid_shape[dim], output bit j := bit i of g[dim]."""
    out, j = 0, 0
    for i in range(64):
        for dim, size in enumerate(grid_shape):
            if 2**i < size:
                out |= ((cell[dim] >> i) & 1) << j
                j += 1
    return out


GRIDS = [(4, 4, 2), (5, 3, 1), (1, 1, 1), (7, 1, 9), (16, 3, 5), (3, 6), (2, 3, 2, 5)]


def test_compressed_morton_code_examples() -> None:
    assert S.compressed_morton_code([[1, 0, 1], [3, 2, 1]], [4, 4, 2]).tolist() == [5, 29]


@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_compressed_morton_code_by_definition(grid: tuple[int, ...]) -> None:
    cells = list(itertools.product(*(range(n) for n in grid)))
    got = S.compressed_morton_code(np.array(cells), grid)
    assert got.dtype == np.uint64
    assert got.tolist() == [morton_by_definition(c, grid) for c in cells]
    assert len(set(got.tolist())) == len(cells)


def test_compressed_morton_code_64_bits() -> None:
    grid = (2**32, 2**32)
    cells = np.array([[2**32 - 1, 0], [0, 2**32 - 1], [2**32 - 1, 2**32 - 1], [12345, 678]])
    want = [morton_by_definition(tuple(int(x) for x in c), grid) for c in cells]
    assert S.compressed_morton_code(cells, grid).tolist() == want
    for bad_cells, bad_grid in (
        ([[4, 0, 0]], (4, 4, 2)),
        ([[-1, 0, 0]], (4, 4, 2)),
        ([[0, 0]], (4, 4, 2)),
        ([[0, 0, 0]], (2**32, 2**32, 2)),
    ):
        with pytest.raises(ValueError):
            S.compressed_morton_code(bad_cells, bad_grid)


@pytest.mark.parametrize("grid", [g for g in GRIDS if len(g) == 3], ids=str)
def test_compressed_morton_code_is_tensorstores_chunk_key(tmp_path: Path, grid: tuple[int, ...]) -> None:
    """tensorstore's sharded precomputed volume stores the 1-voxel chunk of cell c under our code of c."""
    sharding = S.ShardingSpec(0, "identity", 0, 0)
    store = ts.open(
        {
            "driver": "neuroglancer_precomputed",
            "kvstore": f"file://{tmp_path}/",
            "multiscale_metadata": {"type": "image", "data_type": "uint8", "num_channels": 1},
            "scale_metadata": {
                "resolution": [1, 1, 1],
                "encoding": "raw",
                "chunk_size": [1, 1, 1],
                "size": list(grid),
                "sharding": sharding.json(),
            },
            "create": True,
        }
    ).result()
    cells = np.array(list(itertools.product(*(range(n) for n in grid))))
    values = np.zeros((*grid, 1), np.uint8)
    values[tuple(cells.T)] = np.arange(1, len(cells) + 1)[:, None]  # non-zero: chunks equal to the fill are not stored
    store[...] = values
    scale_key = store.spec().to_json()["scale_metadata"]["key"]
    kv = kvstore(tmp_path / scale_key, sharding)
    stored = {struct.unpack(">Q", k)[0]: kv.read(k).result().value[0] for k in kv.list().result()}
    ours = S.compressed_morton_code(cells, grid).tolist()
    assert stored == {code: i + 1 for i, code in enumerate(ours)}


# -- tensorstore reads what we write, and writes what we write ----------------------------------------


def test_samples_collide_and_leave_gaps() -> None:
    """sample_chunks under SPECS: every spec puts several ids in a minishard; some leave minishards
    of a written shard empty, some leave whole shards unwritten."""
    gaps = set()
    for spec in SPECS.values():
        shard, minishard = S.locate(spec, list(sample_chunks()))
        occupied = set(zip(shard.tolist(), minishard.tolist(), strict=True))
        assert len(occupied) < len(shard)
        if len(occupied) < len(set(shard.tolist())) << spec.minishard_bits:
            gaps.add("minishard")
        if len(set(shard.tolist())) < 1 << spec.shard_bits:
            gaps.add("shard")
    assert gaps == {"minishard", "shard"}


@pytest.mark.parametrize("name", SPECS)
def test_tensorstore_reads_every_key(tmp_path: Path, name: str) -> None:
    spec = SPECS[name]
    chunks = sample_chunks()
    prefixes = {i: b"p" * (i % 5) for i in list(chunks)[::3]}  # unindexed bytes between chunks
    files = S.encode_shards(spec, chunks, prefixes)
    shard, _ = S.locate(spec, list(chunks))
    assert sorted(files) == sorted({S.shard_name(spec, int(s)) for s in shard})
    kv = kvstore(write_files(tmp_path, files), spec)
    for chunk_id, data in chunks.items():
        got = kv.read(key(chunk_id)).result()
        assert got.state == "value" and bytes(got.value) == data, chunk_id
    assert sorted(kv.list().result()) == sorted(key(i) for i in chunks)
    for absent in (0, 41, 257, 2**63, 2**64 - 2):  # in occupied and in empty minishards and shards
        assert kv.read(key(absent)).result().state == "missing"


@pytest.mark.parametrize("name", RAW)
def test_byte_identical_to_tensorstore(tmp_path: Path, name: str) -> None:
    spec = SPECS[name]
    chunks = sample_chunks(seed=2)
    prefix = tmp_path / "tensorstore"
    prefix.mkdir()
    txn = ts.Transaction()
    staged = kvstore(prefix, spec).with_transaction(txn)
    for chunk_id, data in chunks.items():
        staged.write(key(chunk_id), data)
    txn.commit_async().result()
    assert read_files(prefix) == S.encode_shards(spec, chunks)


@pytest.mark.parametrize("name", SPECS)
def test_own_decoder_agrees(name: str) -> None:
    spec = SPECS[name]
    chunks = sample_chunks()
    files = S.encode_shards(spec, chunks)
    for chunk_id, data in chunks.items():
        shard = S.shard_of(spec, chunk_id)
        assert S.read_chunk(spec, files[shard], chunk_id) == data
    for shard_bytes in files.values():
        assert S.read_chunk(spec, shard_bytes, 2**64 - 2) is None


def test_gzip_is_gzip() -> None:
    """Both encodings are plain gzip members (what the client's DecompressionStream reads)."""
    spec = SPECS["murmur_gzip"]
    chunk_id, data = 5000, b"abc" * 100
    (shard,) = S.encode_shards(spec, {chunk_id: data}).values()
    minishard = int(S.locate(spec, [chunk_id])[1][0])
    start, end = np.frombuffer(shard, "<u8", 2, 16 * minishard) + spec.index_bytes
    ids, offsets, sizes = np.frombuffer(gzip.decompress(shard[start:end]), "<u8").reshape(3, -1)
    assert ids.tolist() == [chunk_id]
    begin = spec.index_bytes + int(offsets[0])
    assert gzip.decompress(shard[begin : begin + int(sizes[0])]) == data


# -- planner ----------------------------------------------------------------------------------------


class Counting:
    """A chunk_bytes/prefix_bytes callable that records the ids asked for."""

    def __init__(self, data: Mapping[int, bytes]) -> None:
        self.data = data
        self.calls: list[int] = []

    def __call__(self, chunk_id: int) -> bytes:
        self.calls.append(chunk_id)
        return self.data[chunk_id]


def one_shard(spec: S.ShardingSpec) -> tuple[dict[int, bytes], dict[int, bytes]]:
    """The ids of sample_chunks in shard 0, and prefixes for about half of them."""
    chunks = sample_chunks(seed=3)
    shard, _ = S.locate(spec, list(chunks))
    mine = {i: d for (i, d), s in zip(chunks.items(), shard, strict=True) if s == 0}
    prefixes = {i: bytes([i % 251]) * (i % 9) for i in list(mine)[::2]}
    return mine, prefixes


@pytest.mark.parametrize("name", SPECS)
def test_plan_matches_encoded_bytes(name: str) -> None:
    spec = SPECS[name]
    chunks, prefixes = one_shard(spec)
    stored = {i: gzip.compress(d, mtime=0) if spec.data_encoding == "gzip" else d for i, d in chunks.items()}
    ids = list(stored)
    layout = S.ShardLayout.plan(spec, ids, [len(stored[i]) for i in ids], [len(prefixes.get(i, b"")) for i in ids])
    blob = layout.encode(stored.__getitem__, lambda i: prefixes.get(i, b""))
    assert len(blob) == layout.size
    (expected,) = S.encode_shards(spec, chunks, prefixes).values()
    if spec.data_encoding == "raw":  # gzip output depends on the compressor's settings
        assert blob == expected
    for i in ids:
        offset, size = layout.chunk(i)
        assert size == len(stored[i]) and blob[offset : offset + size] == stored[i]
        start, psize = layout.prefix(i)
        assert start + psize == offset and blob[start:offset] == prefixes.get(i, b"")
        assert S.read_chunk(spec, blob, i) == chunks[i]
        assert S.read_prefix(spec, blob, i, psize) == prefixes.get(i, b"")
    with pytest.raises(KeyError):
        layout.chunk(2**64 - 2)


def test_plan_needs_sizes_only() -> None:
    """A raw shard's size and offsets follow from counts: here, skeleton sizes from vertex/edge counts."""
    spec = S.ShardingSpec(0, MURMUR, 2, 0)
    counts = {7: (3, 2), 99: (10, 9), 2**40: (1, 0)}
    sizes = [SK.size(nv, ne, ()) for nv, ne in counts.values()]
    layout = S.ShardLayout.plan(spec, list(counts), sizes)
    files = {
        i: SK.encode(np.zeros((nv, 3)), np.stack([np.arange(ne), np.arange(1, ne + 1)], 1), {}, ())
        for i, (nv, ne) in counts.items()
    }
    (shard,) = S.encode_shards(spec, files).values()
    assert layout.size == len(shard)
    for i in counts:
        offset, size = layout.chunk(i)
        assert shard[offset : offset + size] == files[i]


def test_range_read_encodes_only_touched_chunks() -> None:
    spec = SPECS["murmur"]
    chunks, prefixes = one_shard(spec)
    layout = S.ShardLayout.plan(
        spec, list(chunks), [len(d) for d in chunks.values()], [len(prefixes.get(i, b"")) for i in chunks]
    )
    blob = layout.encode(chunks.__getitem__, lambda i: prefixes.get(i, b""))
    spans = {i: (layout.chunk(i), layout.prefix(i)) for i in chunks}
    edges = sorted({0, layout.size} | {x for (o, n), (p, q) in spans.values() for x in (o, o + n, p)})
    rng = np.random.default_rng(4)
    ranges = [(a, b) for a in edges for b in edges if a < b][::7] + [
        tuple(sorted(r)) for r in rng.integers(0, layout.size + 5, (200, 2))
    ]
    ranges += [(e - 1, e + 1) for e in edges if e > 0]
    for a, b in ranges:
        data, pre = Counting(chunks), Counting(prefixes)
        assert layout.read(a, b, data, pre) == blob[a:b]
        want_data = sorted(i for i, ((o, n), _) in spans.items() if n and o < b and o + n > a)
        want_pre = sorted(i for i, (_, (p, q)) in spans.items() if q and p < b and p + q > a)
        assert sorted(data.calls) == want_data and sorted(pre.calls) == want_pre
    # one chunk's bytes: that chunk alone; the shard index: nothing
    big = max(chunks, key=lambda i: len(chunks[i]))
    offset, size = layout.chunk(big)
    data = Counting(chunks)
    assert layout.read(offset + 1, offset + size - 1, data) == chunks[big][1:-1] and data.calls == [big]
    data = Counting(chunks)
    assert layout.read(0, spec.index_bytes, data) == blob[: spec.index_bytes] and data.calls == []
    assert layout.read(layout.size, layout.size + 10, data) == b"" and data.calls == []


def test_plan_checks() -> None:
    spec = SPECS["murmur"]
    chunks, _ = one_shard(spec)
    ids = list(chunks)
    layout = S.ShardLayout.plan(spec, ids, [len(chunks[i]) for i in ids])
    with pytest.raises(ValueError, match="planned"):
        layout.encode(lambda i: chunks[i] + b"x")
    other = next(i for i in range(1000) if int(S.locate(spec, [i])[0][0]) != 0)
    with pytest.raises(ValueError, match="shards"):
        S.ShardLayout.plan(spec, [*ids, other], [1] * (len(ids) + 1))
    with pytest.raises(ValueError, match="duplicate"):
        S.ShardLayout.plan(spec, ids + ids[:1], [1] * (len(ids) + 1))
    with pytest.raises(ValueError):
        S.ShardLayout.plan(spec, ids, [1] * (len(ids) - 1))
    with pytest.raises(ValueError, match="prefix"):
        S.ShardLayout.plan(spec, ids[:1], [1], [3]).encode(chunks.__getitem__)
    empty = S.ShardLayout.plan(spec, [], [])
    assert empty.size == spec.index_bytes and empty.encode(chunks.__getitem__) == bytes(spec.index_bytes)
    with pytest.raises(ValueError):
        S.encode_shards(spec, {1: b"a"}, {2: b"b"})


# -- choose_spec ------------------------------------------------------------------------------------


def test_choose_spec() -> None:
    assert S.choose_spec(0, 0) == S.ShardingSpec(0, MURMUR, 0, 0)
    assert S.choose_spec(1000, 10**6) == S.ShardingSpec(0, MURMUR, 0, 0)
    # 1M skeletons of 2 kB: 2^10 minishards of <= 1000 ids in all, 64 shards of about 31 MB
    spec = S.choose_spec(10**6, 2 * 10**9)
    assert (spec.shard_bits, spec.minishard_bits, spec.preshift_bits) == (6, 4, 0)
    assert spec.data_encoding == spec.minishard_index_encoding == "raw"
    # a few huge objects: no more shards than ids
    assert S.choose_spec(10, 10**12).shard_bits == 3
    assert S.choose_spec(10**6, 10**6, hash="identity") == S.ShardingSpec(0, "identity", 10, 0)
    for n, total in ((10**5, 10**8), (10**7, 10**9), (3 * 10**6, 10**11)):
        spec = S.choose_spec(n, total)
        assert n / 2 ** (spec.shard_bits + spec.minishard_bits) <= 1000 or spec.minishard_bits == 0
        assert total / 2**spec.shard_bits <= 50e6 or 2 ** (spec.shard_bits + 1) > n


@pytest.mark.parametrize(
    ("n", "record"), [(1, 40), (999, 40), (100_000, 67), (8_000_000, 43), (8_000_000, 200), (3_000_000, 2000)]
)
def test_spec_for_dense_ids(n: int, record: int) -> None:
    """Dense ids (1..n, as annotation ids): identity hash, shards in id order (so a shard is one run of
    ids), about the target entries per minishard, and shard files (chunks and minishard indexes) of at
    most the target bytes unless one shard per run of ids is reached."""
    ids = np.arange(1, n + 1, dtype=np.uint64)
    spec = S.spec_for(ids, record * n)
    assert spec.hash == "identity"
    shard, minishard = S.locate(spec, ids)
    assert (np.diff(shard.astype(np.int64)) >= 0).all()
    entries = np.unique(shard.astype(np.int64) << spec.minishard_bits | minishard.astype(np.int64), return_counts=True)[
        1
    ]
    assert entries.max() <= 2 * S.TARGET_MINISHARD_ENTRIES and (n < 1000 or entries.mean() >= 400)
    file_bytes = np.bincount(shard.astype(np.int64)) * (record + S.INDEX_ENTRY_BYTES)
    assert file_bytes.max() <= S.TARGET_SHARD_BYTES


def test_spec_for_sparse_ids_are_hashed() -> None:
    ids = np.unique(np.random.default_rng(3).integers(1, 2**50, 50_000, dtype=np.uint64))
    spec = S.spec_for(ids, 100 * len(ids))
    assert spec == S.choose_spec(len(ids), (100 + S.INDEX_ENTRY_BYTES) * len(ids))
    assert spec.hash == MURMUR


# -- cloud-volume reads sharded skeletons and meshes ------------------------------------------------

SEGMENTATION_INFO = {
    "@type": "neuroglancer_multiscale_volume",
    "type": "segmentation",
    "data_type": "uint64",
    "num_channels": 1,
    "scales": [
        {
            "key": "1_1_1",
            "resolution": [1, 1, 1],
            "size": [1, 1, 1],
            "voxel_offset": [0, 0, 0],
            "chunk_sizes": [[64, 64, 64]],
            "encoding": "raw",
        }
    ],
}


def write_segmentation(root: Path, kind: str, info: dict, files: Mapping[str, bytes]) -> CloudVolume:
    """A segmentation whose ``skeletons`` or ``mesh`` directory holds ``info`` and ``files``."""
    write_files(root / kind, files)
    (root / kind / "info").write_text(json.dumps(info))
    (root / "info").write_text(json.dumps({**SEGMENTATION_INFO, kind: kind}))
    return CloudVolume(f"precomputed://file://{root}", progress=False)


@pytest.mark.parametrize("name", ["murmur_gzip", "identity", "murmur_preshift_gzip_data"])
def test_cloudvolume_reads_sharded_skeletons(tmp_path: Path, name: str) -> None:
    spec = SPECS[name]
    rng = np.random.default_rng(5)
    skeletons = {}
    for segid in [1, 2, 3, 17, 300, 2**40 + 1, 2**63 + 9]:
        n = int(rng.integers(1, 60))
        child = np.arange(1, n)
        skeletons[segid] = (rng.uniform(-100, 100, (n, 3)), np.stack([rng.integers(0, child), child], 1))
    files = S.encode_shards(spec, {i: SK.encode(v, e, {}, ()) for i, (v, e) in skeletons.items()})
    cv = write_segmentation(tmp_path, "skeletons", {**SK.info(), "sharding": spec.json()}, files)
    for segid, (v, e) in skeletons.items():
        skel = cv.skeleton.get(segid)
        np.testing.assert_array_equal(skel.vertices, v.astype(np.float32))
        np.testing.assert_array_equal(skel.edges, e)


def sphere(n: int, radius: float, center: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere with n latitude and 2n longitude steps."""
    theta, phi = np.linspace(0, np.pi, n + 1)[1:-1], np.linspace(0, 2 * np.pi, 2 * n, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    v = np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]]) * radius + center
    m = 2 * n
    idx = [[1 + i * m + j % m for j in range(m + 1)] for i in range(n - 1)]
    f = [[0, idx[0][j], idx[0][j + 1]] for j in range(m)]
    f += [
        q
        for i in range(n - 2)
        for j in range(m)
        for q in ([idx[i][j], idx[i + 1][j], idx[i + 1][j + 1]], [idx[i][j], idx[i + 1][j + 1], idx[i][j + 1]])
    ]
    f += [[idx[-1][j], len(v) - 1, idx[-1][j + 1]] for j in range(m)]
    return v, np.array(f)


@pytest.mark.parametrize("name", ["murmur_gzip", "identity_gzip_index"])
def test_cloudvolume_reads_sharded_multilod_mesh(tmp_path: Path, name: str) -> None:
    """Fragments as the manifest's prefix: cloud-volume finds them at manifest offset - sum(sizes),
    and reads the same mesh as from the unsharded ``<id>.index`` + ``<id>`` files."""
    spec = SPECS[name]
    meshes = {
        5: M.encode_multilod([sphere(12, 10.0, (0, 0, 0)), sphere(6, 10.0, (0, 0, 0))], chunk_shape=(8, 8, 8)),
        2**50 + 3: M.encode_multilod([sphere(8, 5.0, (20, 5, 1))], chunk_shape=(4, 4, 4)),
    }
    sharded = write_segmentation(
        tmp_path / "sharded",
        "mesh",
        {**M.info(), "sharding": spec.json()},
        S.encode_shards(spec, {i: m.manifest for i, m in meshes.items()}, {i: m.data for i, m in meshes.items()}),
    )
    plain = write_segmentation(
        tmp_path / "plain",
        "mesh",
        M.info(),
        {name: data for i, m in meshes.items() for name, data in ((f"{i}.index", m.manifest), (str(i), m.data))},
    )
    for segid, enc in meshes.items():
        n_lods = M.Manifest.decode(enc.manifest).num_lods
        for lod in range(n_lods):
            got, want = sharded.mesh.get(segid, lod=lod)[segid], plain.mesh.get(segid, lod=lod)[segid]
            assert len(got.faces) > 0
            np.testing.assert_array_equal(got.vertices, want.vertices)
            np.testing.assert_array_equal(got.faces, want.faces)
        shard = (tmp_path / "sharded" / "mesh" / S.shard_of(spec, segid)).read_bytes()
        assert S.read_prefix(spec, shard, segid, len(enc.data)) == enc.data
