"""Neuroglancer's sharded format (``neuroglancer_uint64_sharded_v1``): a pure codec and layout planner.

Why a planner: a precomputed tree served from a filesystem must give each shard's exact size at
``stat`` and serve byte ranges of it. Where everything sits in a shard follows from its chunk ids
and encoded sizes alone, so :meth:`ShardLayout.plan` lays a shard out from those, and
:meth:`ShardLayout.read` encodes only the chunks a byte range touches.

Layout (tensorstore's writer's, so raw shards are byte-identical to its output): the shard index
(16 bytes per minishard), then each non-empty minishard in ascending order: its chunks by ascending
id, then its minishard index. An empty minishard's index entry is (0, 0). A chunk may carry a raw
*prefix* written just before its data and listed in no index: multi-resolution mesh fragments,
which the client finds at ``manifest offset - sum(fragment sizes)``.

Sizes: with ``data_encoding: raw`` a chunk's size is its plain size, which encoders compute from
counts without encoding anything; with ``gzip`` it is the compressed size, known only after
compressing. ``minishard_index_encoding: gzip`` costs only compressing the small indices at
planning time.
"""

from __future__ import annotations

import gzip
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt

TYPE = "neuroglancer_uint64_sharded_v1"
Hash = Literal["identity", "murmurhash3_x86_128"]
Encoding = Literal["raw", "gzip"]
HASHES: tuple[str, ...] = ("identity", "murmurhash3_x86_128")
ENCODINGS: tuple[str, ...] = ("raw", "gzip")
MAX_MINISHARD_BITS = 32  # tensorstore's limit; the shard index alone is 16 * 2^minishard_bits bytes
SHARD_INDEX_ENTRY = 16  # uint64le (start, end) of a minishard index
MINISHARD_INDEX_ENTRY = 24  # uint64le id delta, offset delta, size: one chunk
GZIP_LEVEL = 6  # zlib's default
# choose_spec targets, after the sharded annotation writer of google/neuroglancer PR #522
TARGET_MINISHARD_ENTRIES = 1000
TARGET_SHARD_BYTES = 50_000_000
DENSE_IDS = 4  # spec_for: ids filling at least a quarter of [0, max id] are not hashed
INDEX_ENTRY_BYTES = 24  # a chunk's entry in its minishard index (id, offset, size; raw)

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
ChunkBytes = Callable[[int], bytes]


def _check_bits(name: str, value: object, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ValueError(f"{name} must be an integer in [0, {limit}], not {value!r}")


@dataclass(frozen=True)
class ShardingSpec:
    """The ``sharding`` member of an ``info``; bit limits as tensorstore checks them."""

    preshift_bits: int
    hash: Hash
    minishard_bits: int
    shard_bits: int
    minishard_index_encoding: Encoding = "raw"
    data_encoding: Encoding = "raw"

    def __post_init__(self) -> None:
        _check_bits("preshift_bits", self.preshift_bits, 64)
        _check_bits("minishard_bits", self.minishard_bits, MAX_MINISHARD_BITS)
        _check_bits("shard_bits", self.shard_bits, 64 - self.minishard_bits)
        if self.hash not in HASHES:
            raise ValueError(f"hash must be one of {HASHES}, not {self.hash!r}")
        for name in ("minishard_index_encoding", "data_encoding"):
            if getattr(self, name) not in ENCODINGS:
                raise ValueError(f"{name} must be one of {ENCODINGS}, not {getattr(self, name)!r}")

    @property
    def index_bytes(self) -> int:
        """Size of the shard index at the start of every shard file."""
        return SHARD_INDEX_ENTRY << self.minishard_bits

    def json(self) -> dict:
        return {
            "@type": TYPE,
            "preshift_bits": self.preshift_bits,
            "hash": self.hash,
            "minishard_bits": self.minishard_bits,
            "shard_bits": self.shard_bits,
            "minishard_index_encoding": self.minishard_index_encoding,
            "data_encoding": self.data_encoding,
        }

    @classmethod
    def from_json(cls, obj: Mapping) -> ShardingSpec:
        """Parse a ``sharding`` member; absent encodings mean raw, as for the client."""
        if obj.get("@type") != TYPE:
            raise ValueError(f"@type must be {TYPE!r}, not {obj.get('@type')!r}")
        try:
            return cls(
                obj["preshift_bits"],
                obj["hash"],
                obj["minishard_bits"],
                obj["shard_bits"],
                obj.get("minishard_index_encoding", "raw"),
                obj.get("data_encoding", "raw"),
            )
        except KeyError as e:
            raise ValueError(f"sharding spec lacks {e.args[0]!r}") from None


# -- hashing and names -------------------------------------------------------------------------

_C1, _C2, _C3 = np.uint32(0x239B961B), np.uint32(0xAB0E9789), np.uint32(0x38B34AE5)


def _rotl32(x: np.ndarray, r: int) -> np.ndarray:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def murmurhash3_x86_128(keys: npt.ArrayLike) -> U64:
    """MurmurHash3_x86_128 (seed 0) of each uint64 key's 8 little-endian bytes, low 64 bits.

    The low 64 bits are ``h1 | h2 << 32``, the number the client and tensorstore shard by.
    """
    k = np.asarray(keys, np.uint64)
    with np.errstate(over="ignore"):
        # 8 bytes: no 16-byte block, a tail of two 32-bit words (k1 low, k2 high)
        h1 = _rotl32((k & np.uint64(0xFFFFFFFF)).astype(np.uint32) * _C1, 15) * _C2
        h2 = _rotl32((k >> np.uint64(32)).astype(np.uint32) * _C2, 16) * _C3
        length = np.uint32(8)
        h1, h2 = h1 ^ length, h2 ^ length
        h3 = h4 = np.full_like(h1, length)
        h1 = h1 + h2 + h3 + h4
        h2, h3, h4 = h2 + h1, h3 + h1, h4 + h1
        h1, h2, h3, h4 = _fmix32(h1), _fmix32(h2), _fmix32(h3), _fmix32(h4)
        h1 = h1 + h2 + h3 + h4
        h2 = h2 + h1
    return h1.astype(np.uint64) | (h2.astype(np.uint64) << np.uint64(32))


def _shift_right(x: U64, bits: int) -> U64:
    """``x >> bits`` for 0 <= bits <= 64 (numpy shifts by 64 modulo 64)."""
    return x >> np.uint64(bits) if bits < 64 else np.zeros_like(x)


def _mask(bits: int) -> np.uint64:
    return np.uint64((1 << bits) - 1)


def locate(spec: ShardingSpec, ids: npt.ArrayLike) -> tuple[U64, U64]:
    """(shard, minishard) of each chunk id: hash(id >> preshift_bits), minishard bits lowest."""
    shifted = _shift_right(np.asarray(ids, np.uint64), spec.preshift_bits)
    h = murmurhash3_x86_128(shifted) if spec.hash == "murmurhash3_x86_128" else shifted
    return _shift_right(h, spec.minishard_bits) & _mask(spec.shard_bits), h & _mask(spec.minishard_bits)


def shard_name(spec: ShardingSpec, shard: int) -> str:
    """File name of a shard: lowercase hex zero-padded to ceil(shard_bits/4) digits, + ``.shard``."""
    if not 0 <= shard < 1 << spec.shard_bits:
        raise ValueError(f"shard {shard} out of range for {spec.shard_bits} shard bits")
    return f"{shard:0{(spec.shard_bits + 3) // 4}x}.shard"


def shard_of(spec: ShardingSpec, chunk_id: int) -> str:
    """File name of the shard holding chunk ``chunk_id`` (where the client looks for it)."""
    return shard_name(spec, int(locate(spec, np.uint64(chunk_id))[0]))


def compressed_morton_code(cells: npt.ArrayLike, grid_shape: Sequence[int]) -> U64:
    """Chunk id of grid cells (N, rank), as the client's ``encodeZIndexCompressed``.

    For bit = 0, 1, ... and, within a bit, for each dimension in order, bit ``bit`` of the cell's
    coordinate is appended (least significant first) when ``grid_shape[d] - 1`` has that bit.
    """
    shape = np.asarray(grid_shape, np.int64).reshape(-1)
    c = np.asarray(cells, np.int64)
    if c.ndim != 2 or c.shape[1] != len(shape):
        raise ValueError(f"cells must be (N, {len(shape)}), not {c.shape}")
    if not ((shape >= 1) & (shape <= 1 << 32)).all():
        raise ValueError(f"grid_shape must be in [1, 2^32], not {shape.tolist()}")
    if not ((c >= 0) & (c < shape)).all():
        raise ValueError("cells must lie in [0, grid_shape)")
    nbits = [int(s - 1).bit_length() for s in shape]
    if sum(nbits) > 64:
        raise ValueError(f"grid_shape {shape.tolist()} needs {sum(nbits)} bits, more than 64")
    coords = c.astype(np.uint64)
    out = np.zeros(len(c), np.uint64)
    for pos, (d, bit) in enumerate(_morton_bits(nbits)):
        out |= ((coords[:, d] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(pos)
    return out


def _morton_bits(nbits: Sequence[int]) -> list[tuple[int, int]]:
    """(dimension, bit of its coordinate) of each bit of a compressed Morton code, lowest first."""
    return [(d, bit) for bit in range(max(nbits, default=0)) for d, n in enumerate(nbits) if bit < n]


def cells_of_morton_codes(codes: npt.ArrayLike, grid_shape: Sequence[int]) -> I64:
    """The grid cells (N, rank) of compressed Morton codes: :func:`compressed_morton_code` inverted."""
    nbits = [int(s - 1).bit_length() for s in grid_shape]
    k = np.asarray(codes, np.uint64).reshape(-1)
    out = np.zeros((len(k), len(nbits)), np.uint64)
    for pos, (d, bit) in enumerate(_morton_bits(nbits)):
        out[:, d] |= ((k >> np.uint64(pos)) & np.uint64(1)) << np.uint64(bit)
    return out.astype(np.int64)


# -- layout ------------------------------------------------------------------------------------


def _encode(data: bytes, encoding: str) -> bytes:
    return gzip.compress(data, GZIP_LEVEL, mtime=0) if encoding == "gzip" else data


def _decode(data: bytes, encoding: str) -> bytes:
    return gzip.decompress(data) if encoding == "gzip" else data


def stored(spec: ShardingSpec, data: bytes) -> bytes:
    """A chunk's plain bytes as a shard stores them (``data_encoding``)."""
    return _encode(data, spec.data_encoding)


def _lengths(values: npt.ArrayLike, n: int, what: str) -> I64:
    out = np.asarray(values, np.int64).reshape(-1)
    if len(out) != n or (out < 0).any():
        raise ValueError(f"{what} must be {n} non-negative sizes")
    return out


def _minishard_index(ids: U64, starts: I64, sizes: I64) -> bytes:
    """Raw index of one minishard: ids, starts (relative to the shard index end) and sizes, delta-coded."""
    prev_end = np.concatenate([[0], (starts + sizes)[:-1]])
    rows = [np.diff(ids, prepend=np.uint64(0)), (starts - prev_end).astype(np.uint64), sizes.astype(np.uint64)]
    return np.stack(rows).astype("<u8").tobytes()


def _checked(data: bytes, size: int, what: str, chunk_id: int) -> bytes:
    if len(data) != size:
        raise ValueError(f"{what} of chunk {chunk_id}: {len(data)} bytes, planned {size}")
    return data


@dataclass(frozen=True, eq=False)
class ShardLayout:
    """Where every byte of one shard file comes from; see :meth:`plan`.

    ``ids``, ``offsets`` (file offset of the data), ``sizes`` and ``prefix_sizes`` are per chunk,
    in file order. ``fixed_offsets``/``fixed`` are the bytes that need no chunk: the shard index at
    0, then each minishard index.
    """

    spec: ShardingSpec
    ids: U64
    offsets: I64
    sizes: I64
    prefix_sizes: I64
    fixed_offsets: I64
    fixed: tuple[bytes, ...]
    size: int

    @classmethod
    def plan(
        cls, spec: ShardingSpec, ids: npt.ArrayLike, sizes: npt.ArrayLike, prefix_sizes: npt.ArrayLike | None = None
    ) -> ShardLayout:
        """Lay out one shard holding exactly ``ids``, from sizes alone (no chunk bytes).

        ``sizes`` are the stored sizes (after ``data_encoding``); ``prefix_sizes`` reserves raw
        bytes right before a chunk's data. All ids must be distinct and fall in the same shard.
        """
        ids = np.asarray(ids, np.uint64).reshape(-1)
        n = len(ids)
        stored = _lengths(sizes, n, "sizes")
        prefix = np.zeros(n, np.int64) if prefix_sizes is None else _lengths(prefix_sizes, n, "prefix_sizes")
        shard, minishard = locate(spec, ids)
        if n and (shard != shard[0]).any():
            raise ValueError(f"ids span shards {np.unique(shard).tolist()}; a layout is one shard")
        if len(np.unique(ids)) != n:
            raise ValueError("duplicate chunk ids")
        order = np.lexsort((ids, minishard))
        ids, stored, prefix, minishard = ids[order], stored[order], prefix[order], minishard[order]

        base = spec.index_bytes
        table = np.zeros((1 << spec.minishard_bits, 2), "<u8")
        offsets = np.empty(n, np.int64)
        fixed_offsets, fixed = [0], [b""]
        pos = base
        cuts = np.flatnonzero(np.diff(minishard)) + 1
        for a, b in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [n]]), strict=True):
            if a == b:
                continue  # no ids at all
            span = prefix[a:b] + stored[a:b]
            offsets[a:b] = pos + np.cumsum(span) - stored[a:b]
            pos += int(span.sum())
            index = _encode(_minishard_index(ids[a:b], offsets[a:b] - base, stored[a:b]), spec.minishard_index_encoding)
            table[minishard[a]] = (pos - base, pos - base + len(index))
            fixed_offsets.append(pos)
            fixed.append(index)
            pos += len(index)
        fixed[0] = table.tobytes()
        return cls(spec, ids, offsets, stored, prefix, np.asarray(fixed_offsets, np.int64), tuple(fixed), pos)

    @cached_property
    def _extents(self) -> tuple[I64, I64, I64]:
        """Ends of the fixed pieces; starts (prefix included) and ends of the chunks."""
        fixed_ends = self.fixed_offsets + np.array([len(f) for f in self.fixed], np.int64)
        return fixed_ends, self.offsets - self.prefix_sizes, self.offsets + self.sizes

    @cached_property
    def _by_id(self) -> tuple[U64, I64]:
        """Ids sorted, and their positions in file order."""
        order = np.argsort(self.ids)
        return self.ids[order], order

    def _position(self, chunk_id: int) -> int:
        ids, order = self._by_id
        i = int(np.searchsorted(ids, np.uint64(chunk_id))) if 0 <= chunk_id < 1 << 64 else len(ids)
        if i == len(ids) or ids[i] != np.uint64(chunk_id):
            raise KeyError(chunk_id)
        return int(order[i])

    def chunk(self, chunk_id: int) -> tuple[int, int]:
        """(offset, size) of a chunk's stored data in the shard file."""
        i = self._position(chunk_id)
        return int(self.offsets[i]), int(self.sizes[i])

    def prefix(self, chunk_id: int) -> tuple[int, int]:
        """(offset, size) of the raw prefix right before a chunk's data."""
        i = self._position(chunk_id)
        return int(self.offsets[i] - self.prefix_sizes[i]), int(self.prefix_sizes[i])

    def read(self, start: int, stop: int, chunk_bytes: ChunkBytes, prefix_bytes: ChunkBytes | None = None) -> bytes:
        """Bytes ``[start, stop)`` of the shard file (clipped to its size).

        ``chunk_bytes(id)`` gives a chunk's stored bytes and ``prefix_bytes(id)`` its prefix; each
        is called only for chunks whose data, or prefix, overlaps the range (:meth:`touched`), and
        its length must be the planned one (ValueError otherwise).
        """
        start, stop = self._clip(start, stop)
        if start >= stop:
            return b""
        fixed_ends, _, _ = self._extents
        pieces = [
            (int(self.fixed_offsets[j]), self.fixed[j])
            for j in range(
                int(np.searchsorted(fixed_ends, start, "right")), int(np.searchsorted(self.fixed_offsets, stop, "left"))
            )
        ]
        data, prefixed = self._touched(start, stop)
        for i in prefixed.tolist():
            chunk_id, size = int(self.ids[i]), int(self.prefix_sizes[i])
            if prefix_bytes is None:
                raise ValueError(f"chunk {chunk_id} has a {size}-byte prefix but no prefix_bytes was given")
            pieces.append((int(self.offsets[i]) - size, _checked(prefix_bytes(chunk_id), size, "prefix", chunk_id)))
        for i in data.tolist():
            chunk_id = int(self.ids[i])
            pieces.append((int(self.offsets[i]), _checked(chunk_bytes(chunk_id), int(self.sizes[i]), "data", chunk_id)))
        pieces.sort(key=lambda p: p[0])
        skip = start - pieces[0][0]
        return b"".join(p[1] for p in pieces)[skip : skip + stop - start]

    def _clip(self, start: int, stop: int) -> tuple[int, int]:
        if start < 0 or stop < 0:
            raise ValueError(f"negative range [{start}, {stop})")
        return start, min(stop, self.size)

    def _touched(self, start: int, stop: int) -> tuple[I64, I64]:
        """Positions (file order) of the chunks whose data, and of those whose prefix, overlap the
        (clipped, non-empty) range."""
        _, starts, ends = self._extents
        at = np.arange(np.searchsorted(ends, start, "right"), np.searchsorted(starts, stop, "left"))
        offsets, psizes = self.offsets[at], self.prefix_sizes[at]
        prefixed = (psizes > 0) & (offsets > start) & (offsets - psizes < stop)
        return at[(self.sizes[at] > 0) & (offsets < stop)], at[prefixed]

    def touched(self, start: int, stop: int) -> tuple[U64, U64]:
        """Ids of the chunks whose data, and of those whose prefix, :meth:`read` of ``[start, stop)``
        asks for: so that a caller can produce them in one batch first."""
        start, stop = self._clip(start, stop)
        data, prefixed = self._touched(start, stop) if start < stop else (np.zeros(0, np.int64),) * 2
        return self.ids[data], self.ids[prefixed]

    def encode(self, chunk_bytes: ChunkBytes, prefix_bytes: ChunkBytes | None = None) -> bytes:
        """The whole shard file."""
        return self.read(0, self.size, chunk_bytes, prefix_bytes)


def encode_shards(
    spec: ShardingSpec, chunks: Mapping[int, bytes], prefixes: Mapping[int, bytes] | None = None
) -> dict[str, bytes]:
    """Every non-empty shard file of ``{id: plain bytes}`` (encoded here per ``data_encoding``).

    ``prefixes`` maps some ids to raw bytes written right before their data (mesh fragments
    before the manifest). Shards without ids are omitted: readers treat a missing shard as empty.
    """
    stored = {int(k): _encode(bytes(v), spec.data_encoding) for k, v in chunks.items()}
    extra = {int(k): bytes(v) for k, v in (prefixes or {}).items()}
    if not extra.keys() <= stored.keys():
        raise ValueError(f"prefixes for ids without data: {sorted(extra.keys() - stored.keys())[:10]}")
    ids = np.fromiter(stored, np.uint64, len(stored))
    shard, _ = locate(spec, ids)
    out = {}
    for s in np.unique(shard):
        members = [int(i) for i in ids[shard == s]]
        layout = ShardLayout.plan(
            spec, members, [len(stored[i]) for i in members], [len(extra.get(i, b"")) for i in members]
        )
        out[shard_name(spec, int(s))] = layout.encode(stored.__getitem__, lambda i: extra.get(i, b""))
    return out


# -- decoding ----------------------------------------------------------------------------------


ShardReader = Callable[[int, int], bytes]  # (offset, size) -> those bytes of one shard file


def _minishard(spec: ShardingSpec, read: ShardReader, minishard: int) -> tuple[U64, I64, I64]:
    """(ids, data offsets from the start of the file, stored sizes) of one minishard, read through
    its shard index entry and its minishard index."""
    start, end = struct.unpack("<QQ", read(minishard * SHARD_INDEX_ENTRY, SHARD_INDEX_ENTRY))
    if start >= end:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    base = spec.index_bytes
    raw = _decode(read(base + start, end - start), spec.minishard_index_encoding)
    if len(raw) % MINISHARD_INDEX_ENTRY:
        raise ValueError(f"minishard index of {len(raw)} bytes, not a multiple of {MINISHARD_INDEX_ENTRY}")
    ids, offsets, sizes = np.frombuffer(raw, "<u8").reshape(3, -1)
    ends = base + np.cumsum(offsets + sizes, dtype=np.uint64).astype(np.int64)
    return np.cumsum(ids, dtype=np.uint64), ends - sizes.astype(np.int64), sizes.astype(np.int64)


def _find(spec: ShardingSpec, read: ShardReader, chunk_id: int) -> tuple[int, int] | None:
    """(offset, size) of a chunk's stored data, through the shard index and the minishard index."""
    ids, offsets, sizes = _minishard(spec, read, int(locate(spec, np.uint64(chunk_id))[1]))
    hit = np.flatnonzero(ids == np.uint64(chunk_id))
    return (int(offsets[hit[0]]), int(sizes[hit[0]])) if hit.size else None


def _reader(shard: bytes) -> ShardReader:
    return lambda offset, size: shard[offset : offset + size]


def chunk_ids(spec: ShardingSpec, read: ShardReader) -> U64:
    """Every chunk id of one shard file (minishard by minishard), read by byte ranges: the shard
    index, then each non-empty minishard's index."""
    entries = np.frombuffer(read(0, spec.index_bytes), "<u8").reshape(-1, 2)
    found = [_minishard(spec, read, int(m))[0] for m in np.flatnonzero(entries[:, 1] > entries[:, 0])]
    return np.concatenate([np.zeros(0, np.uint64), *found])


def fetch_chunk(spec: ShardingSpec, read: ShardReader, chunk_id: int) -> bytes | None:
    """A chunk's plain bytes, or None if absent, read from its shard file by byte ranges as the
    client reads it: shard index entry, minishard index, chunk data."""
    found = _find(spec, read, chunk_id)
    return None if found is None else _decode(read(*found), spec.data_encoding)


def read_chunk(spec: ShardingSpec, shard: bytes, chunk_id: int) -> bytes | None:
    """A chunk's plain bytes from its shard file's contents, or None if absent."""
    return fetch_chunk(spec, _reader(shard), chunk_id)


def read_prefix(spec: ShardingSpec, shard: bytes, chunk_id: int, size: int) -> bytes | None:
    """The ``size`` raw bytes right before a chunk's data (mesh fragments), or None if absent."""
    found = _find(spec, _reader(shard), chunk_id)
    if found is None:
        return None
    offset = found[0]
    if not 0 <= size <= offset - spec.index_bytes:
        raise ValueError(f"a {size}-byte prefix does not fit before chunk {chunk_id} at {offset}")
    return shard[offset - size : offset]


# -- parameters --------------------------------------------------------------------------------


def choose_spec(
    n_ids: int,
    total_bytes: int,
    *,
    hash: Hash = "murmurhash3_x86_128",
    target_minishard_entries: int = TARGET_MINISHARD_ENTRIES,
    target_shard_bytes: int = TARGET_SHARD_BYTES,
) -> ShardingSpec:
    """Bits giving about ``target_minishard_entries`` ids per minishard and shards of at most
    about ``target_shard_bytes``, raw encodings (``dataclasses.replace`` to change them).

    The rule of google/neuroglancer PR #522 (``choose_output_spec``, 1000 entries, 50 MB):
    ``total = min b with n_ids >> b <= target entries`` minishards in all,
    ``shard_bits = min s with total_bytes >> s <= target bytes``,
    ``minishard_bits = total - min(total, shard_bits)``. Two departures: ``preshift_bits`` is 0
    (PR #522 sets 10, which sends runs of 1024 consecutive ids to one minishard; cloud-volume's
    ``compute_shard_params_for_hashed`` also uses 0 for hashed keys), and there are no more shards
    than ids. cloud-volume and igneous (sharded skeletons and meshes) instead fix 2^9 minishards
    per shard (an 8 KiB shard index) and about 1365 ids per minishard (a 32 KiB index), with no
    byte target. Deterministic.
    """
    for name, value, low in (
        ("n_ids", n_ids, 0),
        ("total_bytes", total_bytes, 0),
        ("target_minishard_entries", target_minishard_entries, 1),
        ("target_shard_bytes", target_shard_bytes, 1),
    ):
        if value < low:
            raise ValueError(f"{name} must be at least {low}, not {value}")
    total_bits = 0
    while n_ids >> total_bits > target_minishard_entries:
        total_bits += 1
    shard_bits = 0
    while total_bytes >> shard_bits > target_shard_bytes:
        shard_bits += 1
    shard_bits = min(shard_bits, max(int(n_ids).bit_length() - 1, 0))
    minishard_bits = min(total_bits - min(total_bits, shard_bits), MAX_MINISHARD_BITS)
    return ShardingSpec(0, hash, minishard_bits, shard_bits)


def spec_for(
    ids: npt.ArrayLike,
    total_bytes: int,
    *,
    target_minishard_entries: int = TARGET_MINISHARD_ENTRIES,
    target_shard_bytes: int = TARGET_SHARD_BYTES,
) -> ShardingSpec:
    """Parameters for exactly these chunk ids: :func:`choose_spec`'s targets, with the hash chosen
    by how the ids lie.

    Dense ids (they fill at least ``1 / DENSE_IDS`` of ``[0, max id]``: annotation ids, segment ids
    of object ids, Morton codes of an occupied grid) are not hashed (``identity``) but preshifted,
    so that a minishard holds a run of ``2^preshift_bits`` consecutive ids (about the target
    entries) and a shard one contiguous range of them (``preshift + minishard + shard bits`` cover
    the largest id): a shard then holds neighbouring data (what an export encodes together reads
    neighbouring store chunks; a spatial shard is a region). Sparse ids (arbitrary segment ids)
    would leave such ranges unbalanced: they are hashed (murmurhash3_x86_128, as choose_spec).
    ``total_bytes`` is the chunks' own bytes: the shards' size target counts their minishard indexes
    too (:data:`INDEX_ENTRY_BYTES` per id, as much as a small annotation).
    """
    keys = np.asarray(ids, np.uint64).reshape(-1)
    n = len(keys)
    total_bytes += INDEX_ENTRY_BYTES * n
    if not n or int(keys.max()) >= DENSE_IDS * n:
        return choose_spec(
            n, total_bytes, target_minishard_entries=target_minishard_entries, target_shard_bytes=target_shard_bytes
        )
    span = int(keys.max()) + 1
    width = (span - 1).bit_length()  # a shard holds ids [s, s + 1) << (width - shard_bits), at the average density
    shard_bits = 0
    while total_bytes << (width - shard_bits) > target_shard_bytes * span and shard_bits < n.bit_length() - 1:
        shard_bits += 1
    # runs of about the target entries, but at least as many runs as shards
    preshift = min(round(math.log2(target_minishard_entries * span / n)), width - shard_bits)
    runs = ((span - 1) >> max(0, preshift)).bit_length()  # bits of the largest run number
    shard_bits = min(shard_bits, runs)
    if runs - shard_bits > MAX_MINISHARD_BITS:
        raise ValueError(f"{n} ids up to {span - 1} need more than {MAX_MINISHARD_BITS} minishard bits")
    return ShardingSpec(max(0, preshift), "identity", runs - shard_bits, shard_bits)
