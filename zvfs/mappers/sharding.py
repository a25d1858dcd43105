"""Sharded layer indexes (``neuroglancer_uint64_sharded_v1``): which layers are sharded, with which
parameters, and an index's shard files as tree files.

A layer (an annotation collection, a skeleton or a multi-resolution mesh directory) shards all of
its indexes or none: ``on`` every layer, ``auto`` a layer that would otherwise have more than
:data:`AUTO_FILES` files, ``off`` none. Parameters come from
:func:`~zvfs.encoders.sharded.spec_for` over each index's chunk ids and bytes (about 1,000 ids per
minishard, shards up to about 50 MB). Legacy meshes have no sharded form in the client: never
sharded.

Exact sizes without encoding: a shard's layout, hence its size at ``stat``, follows from its
chunk ids and sizes alone, and an index gives the sizes of all its chunks from counts (meshes
measure theirs by encoding). The id -> shard assignment is computed once per index, vectorised
over all its ids, and kept in the memory budget like each shard's layout; a read of a byte range
encodes only the chunks it touches, :data:`BATCH` at a time.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace

import numpy as np

from ..cache import Budget, Memo
from ..encoders import sharded
from ..errors import StoreError
from ..tree import Dir, File, Node

AUTO_FILES = 4096  # auto: a layer of more files than this is sharded (the 8M-point tree has ~4,096-cell levels)
MODES = ("auto", "on", "off")
BATCH = 4096  # chunks encoded together when a read needs many (bounds what one call holds)

U64 = sharded.U64
I64 = sharded.I64


@dataclass(frozen=True)
class Sharding:
    """Which layers are sharded (``mode``) and how shards encode chunks and indexes (``encoding``:
    ``raw``, whose sizes come from counts, or ``gzip``, whose sizes need every chunk compressed)."""

    mode: str = "off"
    encoding: sharded.Encoding = "raw"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"sharding must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.encoding not in sharded.ENCODINGS:
            raise ValueError(f"shard encoding must be one of {', '.join(sharded.ENCODINGS)}, not {self.encoding!r}")

    def wanted(self, files: int) -> bool:
        """Whether a layer of ``files`` files (unsharded) is sharded."""
        return self.mode == "on" or (self.mode == "auto" and files > AUTO_FILES)

    def spec(self, ids: U64, nbytes: int) -> sharded.ShardingSpec:
        spec = sharded.spec_for(ids, nbytes)
        return replace(spec, minishard_index_encoding=self.encoding, data_encoding=self.encoding)


class Chunks(ABC):
    """The chunks of one index: their ids, sizes and bytes."""

    @abstractmethod
    def ids(self) -> U64:
        """Every chunk id, ascending."""

    @abstractmethod
    def nbytes(self) -> int:
        """About how many bytes the chunks hold together (what the number of shards follows)."""

    @abstractmethod
    def sizes(self, ids: U64) -> tuple[I64, I64]:
        """Plain sizes of these chunks' data and of their prefixes (bytes written just before the
        data, in no index: mesh fragments)."""

    @abstractmethod
    def encode(self, ids: U64) -> Mapping[int, bytes]:
        """Plain bytes of these chunks (at least)."""

    def prefixes(self, ids: U64) -> Mapping[int, bytes]:
        """Prefix bytes of these chunks (none unless :meth:`sizes` gives them)."""
        return {}


class CountedChunks(Chunks):
    """Chunks whose sizes all come from counts, as one vectorised table: ``table()`` gives every
    chunk id and its size (negative: the store data it needs cannot be read), ``encode`` bytes."""

    def __init__(
        self, table: Callable[[], tuple[U64, I64]], encode: Callable[[U64], Mapping[int, bytes]], budget: Budget
    ) -> None:
        self._make, self._encode = table, encode
        self._tables: Memo[tuple[U64, I64]] = budget.memo(lambda t: int(t[0].nbytes + t[1].nbytes))

    def _table(self) -> tuple[U64, I64]:
        def make() -> tuple[U64, I64]:
            ids, sizes = self._make()
            order = np.argsort(ids, kind="stable")
            return np.asarray(ids, np.uint64)[order], np.asarray(sizes, np.int64)[order]

        return self._tables.get(None, make)

    def ids(self) -> U64:
        return self._table()[0]

    def nbytes(self) -> int:
        sizes = self._table()[1]
        return int(sizes[sizes > 0].sum())

    def sizes(self, ids: U64) -> tuple[I64, I64]:
        every, sizes = self._table()
        found = sizes[np.searchsorted(every, ids)]
        if (found < 0).any():
            chunk = int(ids[np.flatnonzero(found < 0)[0]])
            raise StoreError(f"chunk {chunk} of this index needs store data that cannot be read (damaged?)")
        return found, np.zeros(len(ids), np.int64)

    def encode(self, ids: U64) -> Mapping[int, bytes]:
        return self._encode(ids)


def _layout_bytes(layout: sharded.ShardLayout) -> int:
    arrays = (layout.ids, layout.offsets, layout.sizes, layout.prefix_sizes, layout.fixed_offsets)
    return sum(a.nbytes for a in arrays) + sum(len(f) for f in layout.fixed)


class ShardedIndex:
    """One index as shard files: which exist, their sizes, byte ranges of them."""

    def __init__(self, chunks: Chunks, spec: sharded.ShardingSpec, budget: Budget) -> None:
        self.chunks, self.spec = chunks, spec
        self._groups: Memo[tuple[I64 | None, U64, I64]] = budget.memo(
            lambda g: sum(int(a.nbytes) for a in g if a is not None)
        )
        self._layouts: Memo[sharded.ShardLayout] = budget.memo(_layout_bytes)

    def _grouped(self) -> tuple[I64 | None, U64, I64]:
        """How the ids (ascending) group by shard: the order putting them shard after shard (None:
        they already are, as identity-hashed ids whose bits the spec covers), the non-empty shards,
        and where each one's ids start in that order."""

        def make() -> tuple[I64 | None, U64, I64]:
            shard = sharded.locate(self.spec, self.chunks.ids())[0]
            order = None
            if len(shard) > 1 and (shard[1:] < shard[:-1]).any():  # hashed: put them shard after shard
                order = np.argsort(shard, kind="stable")
                shard = shard[order]
            starts = np.flatnonzero(np.concatenate([[True], shard[1:] != shard[:-1]])) if len(shard) else shard
            return order, shard[starts], np.append(starts, len(shard)).astype(np.int64)

        return self._groups.get(None, make)

    def _shard_ids(self, i: int) -> U64:
        """The ids of the ``i``-th non-empty shard, ascending."""
        order, _, starts = self._grouped()
        at = slice(int(starts[i]), int(starts[i + 1]))
        return self.chunks.ids()[at if order is None else order[at]]

    def names(self) -> Iterator[str]:
        return (sharded.shard_name(self.spec, int(s)) for s in self._grouped()[1])

    def file(self, name: str) -> File | None:
        stem, dot, ext = name.partition(".")
        if not (dot and ext == "shard" and stem) or any(c not in "0123456789abcdef" for c in stem):
            return None
        shard = int(stem, 16)
        if shard >= 1 << self.spec.shard_bits or sharded.shard_name(self.spec, shard) != name:
            return None
        _, shards, _ = self._grouped()
        i = int(np.searchsorted(shards, np.uint64(shard)))
        if i == len(shards) or shards[i] != shard:
            return None
        return File(size=lambda: self._layout(i).size, ranged=lambda start, stop: self._read(i, start, stop))

    def _layout(self, i: int) -> sharded.ShardLayout:
        def make() -> sharded.ShardLayout:
            ids = self._shard_ids(i)
            sizes, prefix_sizes = self.chunks.sizes(ids)
            if self.spec.data_encoding != "raw":  # stored sizes are known only once encoded
                sizes = np.concatenate([np.zeros(0, np.int64), *map(self._stored_sizes, _batches(ids))])
            return sharded.ShardLayout.plan(self.spec, ids, sizes, prefix_sizes)

        return self._layouts.get(i, make)

    def _stored(self, batch: U64) -> dict[int, bytes]:
        return {c: sharded.stored(self.spec, data) for c, data in self.chunks.encode(batch).items()}

    def _stored_sizes(self, batch: U64) -> I64:
        stored = self._stored(batch)
        return np.asarray([len(stored[c]) for c in batch.tolist()], np.int64)

    def _read(self, i: int, start: int, stop: int) -> bytes:
        layout = self._layout(i)
        data_ids, prefix_ids = layout.touched(start, stop)
        data: dict[int, bytes] = {}
        for batch in _batches(data_ids):
            data.update(self._stored(batch))
        prefixes: dict[int, bytes] = {}
        for batch in _batches(prefix_ids):
            prefixes.update(self.chunks.prefixes(batch))
        return layout.read(start, stop, data.__getitem__, prefixes.__getitem__)


def _batches(ids: U64) -> Iterator[U64]:
    return (ids[k : k + BATCH] for k in range(0, len(ids), BATCH))


class LayerIndexes:
    """The indexes of one layer, sharded together or not at all: each is its plain files until the
    layer is found to be sharded (decided once, on first use)."""

    def __init__(self, sharding: Sharding, budget: Budget) -> None:
        self.sharding, self.budget = sharding, budget
        self._entries: dict[str, tuple[Callable[[], Chunks], int]] = {}
        self._lock = threading.Lock()
        self._sharded: dict[str, ShardedIndex] | None = None

    def index(self, key: str, plain: Dir, chunks: Callable[[], Chunks], files_per_chunk: int = 1) -> Dir:
        """Index ``key``'s directory: ``plain``, or the shards of ``chunks()`` (each chunk being
        ``files_per_chunk`` plain files)."""
        self._entries[key] = (chunks, files_per_chunk)

        def names() -> Iterator[str]:
            index = self.shards().get(key)
            return plain.names() if index is None else index.names()

        def child(name: str) -> Node | None:
            index = self.shards().get(key)
            return plain.child(name) if index is None else index.file(name)

        return Dir(names=names, child=child)

    def shards(self) -> dict[str, ShardedIndex]:
        """The sharded indexes by key (none when the layer is not sharded)."""
        if self._sharded is None:
            with self._lock:
                if self._sharded is None:
                    self._sharded = self._decide()
        return self._sharded

    def _decide(self) -> dict[str, ShardedIndex]:
        if self.sharding.mode == "off":
            return {}
        made = {key: (chunks(), per) for key, (chunks, per) in self._entries.items()}
        if not self.sharding.wanted(sum(per * len(c.ids()) for c, per in made.values())):
            return {}
        specs = {key: self.sharding.spec(c.ids(), c.nbytes()) for key, (c, _) in made.items()}
        return {key: ShardedIndex(c, specs[key], self.budget) for key, (c, _) in made.items()}

    def specs(self) -> dict[str, sharded.ShardingSpec]:
        return {key: index.spec for key, index in self.shards().items()}

    def with_sharding(self, info: dict, key: str) -> dict:
        """A layer ``info`` with index ``key``'s ``sharding`` member when it is sharded."""
        spec = self.specs().get(key)
        return info if spec is None else {**info, "sharding": spec.json()}
