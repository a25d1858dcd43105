"""What a store's index holds, computed from the store once, chunk by chunk, as parallel tasks.

Everything the first requests of a mount used to compute over the whole store:

- per level: its non-empty cells (sorted) and each cell's row count (-1: the cell's fragment index
  cannot be read, a damaged or missing chunk);
- per level with objects: each object's pieces (cell, first row, rows) in object order, and for
  stores with explicit links (graphs, skeletons, meshes) each object's links in object-local
  vertex indices and every link record's endpoints and owner;
- point clouds: which base point is drawn at which coarser level (see :func:`point_levels`), the
  points drawn at coarse levels kept whole (position, owner, attributes), so that a coarse cell
  reads no store chunk at all, and per level-0 cell the rows drawn coarser;
- items (lines, polylines, graph edges): the level each is drawn at and, per view (all levels, or
  one pinned level), each chunk's items.

Damaged cells are recorded, not fatal: what needs them fails later, the rest is indexed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ..errors import StoreError
from ..store import ZVFStore
from .files import Writer
from .tasks import Runner, worker_store

log = logging.getLogger("zvfs")

CELLS_PER_TASK = 32
OBJECTS_PER_TASK = 16_384  # zarr-vectors keeps this many manifests in one zarr chunk
MAX_ITEMS_PER_CELL = 2_000  # a coarse cell draws at most about this many items; the rest go finer
LINK_KINDS = ("graph", "skeleton", "mesh")


def id_hash(ids: np.ndarray) -> np.ndarray:
    """splitmix64 of each id: a fixed pseudo-random order, independent of read order."""
    x = np.asarray(ids, np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def linear_keys(cells: np.ndarray) -> np.ndarray:
    """One sortable int64 key per row of (N, D) integer cells, in lexicographic order."""
    if not len(cells):
        return np.zeros(0, np.int64)
    cells = np.asarray(cells, np.int64).reshape(len(cells), -1)
    low, span = cells.min(0), cells.max(0) - cells.min(0) + 1
    return np.ravel_multi_index(tuple((cells - low).T), tuple(span.tolist())).astype(np.int64)


def _batches(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


# -- levels ----------------------------------------------------------------------------------------


def _count_task(path: str, level: int, cells: np.ndarray) -> np.ndarray:
    lv = worker_store(path).levels[level]
    out = np.empty(len(cells), np.int64)
    for i, cell in enumerate(cells.tolist()):
        try:
            out[i] = int(lv.read_fragments(tuple(cell))[:, 1].sum())
        except StoreError as exc:
            log.warning("%s", exc)
            out[i] = -1
        if out[i] == 0:  # listed as holding data: zarr-vectors reads a missing fragment index as empty
            log.warning("%s: level %d: cell %s: no fragment index (missing chunk?)", path, level, tuple(cell))
            out[i] = -1
    return out


def build_level(store: ZVFStore, level: int, out: Writer, run: Runner) -> np.ndarray:
    """``L{k}/cells`` and ``L{k}/counts``; returns the cells."""
    cells = np.asarray(store.levels[level].cells, np.int64).reshape(-1, len(store.axes))
    out.put(f"L{level}/cells", cells)
    tasks = [(store.path, level, cells[a:b]) for a, b in _batches(len(cells), CELLS_PER_TASK)]
    for counts in run.map(_count_task, tasks, f"level {level} cells"):
        out.append(f"L{level}/counts", counts)
    if not tasks:
        out.put(f"L{level}/counts", np.zeros(0, np.int64))
    else:
        out.close(f"L{level}/counts")
    return cells


# -- objects ---------------------------------------------------------------------------------------


def _pieces_task(path: str, level: int, rows: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Pieces of object rows [a, b): per object its piece count (-1: unknown, its manifest cannot be
    read), per piece (cell index, first row, rows; rows -1 when the cell's fragment index cannot
    be read)."""
    lv = worker_store(path).levels[level]
    try:
        manifests = lv.manifests(*rows)
    except Exception as exc:  # a missing or damaged manifest chunk: these objects' pieces are unknown
        log.warning("%s: level %d: objects %d-%d: cannot read their manifests: %s", path, level, *rows, exc)
        n = rows[1] - rows[0]
        return np.full(n, -1, np.int64), *(np.zeros(0, np.int32) for _ in range(3))
    per_object = np.asarray([len(m) for m in manifests], np.int64)
    pieces = [piece for m in manifests for piece in m]
    cells = np.asarray(lv.cells, np.int64).reshape(-1, len(lv.store.axes))
    cell_of = cell_positions(cells, np.asarray([c for c, _ in pieces], np.int64).reshape(len(pieces), cells.shape[1]))
    frag = np.asarray([f for _, f in pieces], np.int64)
    start, count = np.zeros(len(pieces), np.int32), np.full(len(pieces), -1, np.int32)
    order = np.argsort(cell_of, kind="stable")
    for at in np.split(order, np.flatnonzero(np.diff(cell_of[order])) + 1) if len(order) else []:
        try:
            ranges = lv.fragments(tuple(cells[cell_of[at[0]]].tolist()))
        except StoreError as exc:
            log.warning("%s", exc)
            continue
        start[at], count[at] = ranges[frag[at], 0], ranges[frag[at], 1]
    return per_object, cell_of.astype(np.int32), start, count


def cell_positions(cells: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The position of each of ``wanted`` (N, D) among ``cells`` (sorted, (C, D)), which must hold them."""
    if not len(wanted):
        return np.zeros(0, np.int64)
    keys = linear_keys(np.concatenate([cells, wanted]))
    known, asked = keys[: len(cells)], keys[len(cells) :]
    at = np.minimum(np.searchsorted(known, asked), max(len(cells) - 1, 0))
    if not len(cells) or not np.array_equal(known[at], asked):
        raise StoreError("a manifest or link record names a cell the level does not hold")
    return at


def build_objects(store: ZVFStore, level: int, out: Writer, run: Runner) -> None:
    """``L{k}/objects/*``: ids, piece CSR (offsets, cell, start, rows) and sizes (-1: unknown)."""
    lv = store.levels[level]
    n = lv.object_count
    p = f"L{level}/objects"
    out.put(f"{p}/ids", lv.object_ids)
    offsets = [np.zeros(1, np.int64)]
    sizes = []
    tasks = [(store.path, level, rows) for rows in _batches(n, OBJECTS_PER_TASK)]
    for per_object, cell_of, start, count in run.map(_pieces_task, tasks, f"level {level} objects"):
        listed = np.maximum(per_object, 0)
        offsets.append(offsets[-1][-1:] + np.cumsum(listed))
        owner = np.repeat(np.arange(len(listed)), listed)
        size = np.bincount(owner, weights=np.maximum(count, 0), minlength=len(listed)).astype(np.int64)
        unknown = (np.bincount(owner, weights=count < 0, minlength=len(listed)) > 0) | (per_object < 0)
        sizes.append(np.where(unknown, -1, size))
        out.append(f"{p}/piece_cell", cell_of)
        out.append(f"{p}/piece_start", start)
        out.append(f"{p}/piece_rows", count)
    for name, dtype in (("piece_cell", np.int32), ("piece_start", np.int32), ("piece_rows", np.int32)):
        if not tasks:
            out.put(f"{p}/{name}", np.zeros(0, dtype))
        else:
            out.close(f"{p}/{name}")
    out.put(f"{p}/piece_offsets", np.concatenate(offsets))
    out.put(f"{p}/sizes", np.concatenate(sizes) if sizes else np.zeros(0, np.int64))


def build_links(store: ZVFStore, level: int, cells: np.ndarray, counts: np.ndarray, out: Writer, files) -> None:
    """``L{k}/links/*`` for explicit connectivity: every record's endpoints (cell index, row) and
    owning object row (-1: spans objects), and per object its records and their object-local
    endpoints, grouped by object."""
    p = f"L{level}/links"
    lv = store.levels[level]
    rec_cells, rec_rows = lv.links()
    dim = len(store.axes)
    n_objects = len(files.load(f"L{level}/objects/piece_offsets")) - 1
    if not rec_rows.size:
        out.put(f"{p}/record_cell", np.zeros((0, 2), np.int32))
        out.put(f"{p}/record_row", np.zeros((0, 2), np.int32))
        out.put(f"{p}/record_owner", np.zeros(0, np.int64))
        out.put(f"{p}/offsets", np.zeros(n_objects + 1, np.int64))
        out.put(f"{p}/record", np.zeros(0, np.int64))
        out.put(f"{p}/local", np.zeros((0, 2), np.int32))
        return
    width = rec_rows.shape[1]
    try:
        cell_index = cell_positions(cells, rec_cells.reshape(-1, dim)).reshape(rec_rows.shape)
    except StoreError as exc:
        raise StoreError(f"{store.path}: level {level}: {exc}") from None
    # level-wide row of each endpoint, and per level-wide row its object row and index inside it
    base = np.concatenate([[0], np.cumsum(np.maximum(counts, 0))])
    total = int(base[-1])
    owner, local = np.full(total, -1, np.int64), np.full(total, -1, np.int64)
    offsets = files.load(f"L{level}/objects/piece_offsets")
    piece_cell = files.load(f"L{level}/objects/piece_cell").astype(np.int64)
    piece_start = files.load(f"L{level}/objects/piece_start").astype(np.int64)
    piece_rows = np.maximum(files.load(f"L{level}/objects/piece_rows"), 0).astype(np.int64)
    piece_object = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    first = np.concatenate([[0], np.cumsum(piece_rows)[:-1]]) if len(piece_rows) else np.zeros(0, np.int64)
    object_first = first - np.concatenate([[0], np.cumsum(piece_rows)])[offsets[:-1]][piece_object]
    rows_of = np.repeat(base[piece_cell] + piece_start - first, piece_rows) + np.arange(int(piece_rows.sum()))
    local_of = np.repeat(object_first - first, piece_rows) + np.arange(int(piece_rows.sum()))
    shared = np.bincount(rows_of, minlength=total) > 1
    owner[rows_of] = np.repeat(piece_object, piece_rows)
    local[rows_of] = local_of
    owner[shared] = -2
    rows = base[cell_index] + rec_rows if rec_rows.size else np.zeros((0, width), np.int64)
    own = owner[rows] if rows.size else np.zeros((0, width), np.int64)
    whole = (own[:, 0] >= 0) & (own == own[:, :1]).all(1) if len(own) else np.zeros(0, bool)
    record_owner = np.where(whole, own[:, 0] if len(own) else 0, -1)
    out.put(f"{p}/record_cell", cell_index.astype(np.int32).reshape(-1, width))
    out.put(f"{p}/record_row", rec_rows.astype(np.int32).reshape(-1, width))
    out.put(f"{p}/record_owner", record_owner.astype(np.int64))
    records = np.flatnonzero(record_owner >= 0)
    order = records[np.argsort(record_owner[records], kind="stable")]
    out.put(f"{p}/offsets", np.concatenate([[0], np.cumsum(np.bincount(record_owner[order], minlength=n_objects))]))
    out.put(f"{p}/record", order.astype(np.int64))
    out.put(f"{p}/local", (local[rows[order]] if len(order) else np.zeros((0, width), np.int64)).astype(np.int32))


# -- points ----------------------------------------------------------------------------------------


def point_levels(
    positions: np.ndarray, ids: np.ndarray, owners: np.ndarray | None, bins: Sequence[np.ndarray], kept: Sequence
) -> np.ndarray:
    """The level each point is drawn at. A point is *selected* at level k when it has the smallest id
    hash among the candidates in its level-k bin (``bins[k]``), candidates being the points of
    objects the level keeps (``kept[k]``, sorted ids; None: all); since bins nest, a point selected
    at k is selected at every finer level, and it is drawn at the coarsest level selecting it.
    ``positions`` must hold every point of each coarsest-level chunk it touches."""
    drawn = np.zeros(len(ids), np.int64)
    order_key = id_hash(ids)
    for k in range(1, len(bins)):
        candidates = np.ones(len(ids), bool)
        if kept[k] is not None and owners is not None:
            candidates = np.isin(owners, kept[k])
        rows = np.flatnonzero(candidates)
        if not len(rows):
            continue
        binned = np.floor(positions[rows] / bins[k]).astype(np.int64)
        order = np.lexsort((order_key[rows], *binned.T[::-1]))
        first = np.ones(len(order), bool)
        first[1:] = (np.diff(binned[order], axis=0) != 0).any(1)
        drawn[rows[order[first]]] = k
    return drawn


def _points_task(
    path: str,
    cells: np.ndarray,
    cell_index: np.ndarray,
    first_ids: np.ndarray,
    runs: list | None,
    bins: list,
    kept: list,
) -> dict[str, object]:
    """One coarsest-level region: the drawn level of each of its points; the coarse ones whole."""
    lv = worker_store(path).levels[0]
    datas, good = [], []
    for i, cell in enumerate(cells.tolist()):
        try:
            datas.append(lv.read_cell(tuple(cell)))
            good.append(i)
        except StoreError as exc:
            log.warning("%s", exc)
    if not datas:
        return {"damaged": cell_index}
    n = [len(d.positions) for d in datas]
    ids = np.concatenate([first_ids[i] + 1 + np.arange(k) for i, k in zip(good, n, strict=True)]).astype(np.uint64)
    own = None if runs is None else np.concatenate([owners_of(runs[i], k) for i, k in zip(good, n, strict=True)])
    positions = np.concatenate([d.positions for d in datas])
    drawn = point_levels(positions, ids, own, bins, kept)
    coarse = np.flatnonzero(drawn > 0)
    row_cell = np.repeat(cell_index[good], n)
    row = np.concatenate([np.arange(k) for k in n])
    return {
        "damaged": np.setdiff1d(cell_index, cell_index[good]),
        "cell": row_cell[coarse].astype(np.int32),
        "row": row[coarse].astype(np.int32),
        "level": drawn[coarse].astype(np.uint8),
        "ids": ids[coarse],
        "positions": positions[coarse],
        "owner": (own[coarse] if own is not None else np.full(len(coarse), -1)).astype(np.int64),
        "attributes": {
            name: np.concatenate([d.attributes[name] for d in datas])[coarse] for name in datas[0].attributes
        },
    }


def _owners_task(path: str, cells: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per cell: (object id, first row, rows) of each fragment, from the fragment owner index."""
    lv = worker_store(path).levels[0]
    out = []
    for cell in cells.tolist():
        try:
            frags, owners = lv.fragments(tuple(cell)), lv.fragment_owners(tuple(cell))
        except StoreError as exc:
            log.warning("%s", exc)
            frags, owners = np.zeros((0, 2), np.int64), np.zeros(0, np.int64)
        keep = owners >= 0
        out.append((owners[keep], frags[keep, 0], frags[keep, 1]))
    return out


def _owner_runs_from_index(store: ZVFStore, cells: np.ndarray, run: Runner) -> tuple[np.ndarray, ...]:
    """:func:`_owner_runs` from zarr-vectors' fragment owner index (needs no manifest)."""
    tasks = [(store.path, cells[a:b]) for a, b in _batches(len(cells), CELLS_PER_TASK)]
    per_cell = [runs for batch in run.map(_owners_task, tasks, "fragment owners") for runs in batch]
    offsets = np.concatenate([[0], np.cumsum([len(r[0]) for r in per_cell])]).astype(np.int64)
    parts = [np.concatenate([r[i] for r in per_cell]) if per_cell else np.zeros(0, np.int64) for i in range(3)]
    return offsets, parts[0].astype(np.int64), parts[1].astype(np.int32), parts[2].astype(np.int32)


def _owner_runs(files, n_cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Level-0 object pieces grouped by cell: (offsets per cell, object id, first row, rows)."""
    offsets = files.load("L0/objects/piece_offsets")
    ids = files.load("L0/objects/ids")
    cell = files.load("L0/objects/piece_cell").astype(np.int64)
    order = np.lexsort((files.load("L0/objects/piece_start"), cell))
    obj = np.repeat(ids, np.diff(offsets))[order]
    per_cell = np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=n_cells))])
    return per_cell, obj, files.load("L0/objects/piece_start")[order], files.load("L0/objects/piece_rows")[order]


def build_points(store: ZVFStore, pyramid, files, out: Writer, run: Runner) -> None:
    """``points/*``: per level-0 cell its owner runs and the rows drawn coarser; the points drawn at
    coarse levels whole, grouped by (level, chunk) and shuffled by id within a chunk."""
    cells = files.load("L0/cells")
    counts = files.load("L0/counts")
    first_ids = np.concatenate([[0], np.cumsum(np.maximum(counts, 0))])[:-1]
    runs = None
    if store.levels[0].owner_index:
        runs = _owner_runs_from_index(store, cells, run)
    elif store.levels[0].has_objects:
        runs = _owner_runs(files, len(cells))
    if runs is not None:
        for name, values in zip(("owner_offsets", "owner_object", "owner_start", "owner_rows"), runs, strict=True):
            out.put(f"points/{name}", values)
    names = [a.name for a in store.levels[0].vertex_attributes]
    depth = pyramid.depth
    coarse: list[dict] = []
    damaged = [np.flatnonzero(counts < 0)]
    if depth > 1:
        bins = [lv.bin_shape for lv in pyramid.levels]
        kept = [None] + [pyramid_kept(store, files, k) for k in range(1, depth)]
        region = linear_keys(cells // pyramid.ratios[-1])
        order = np.argsort(region, kind="stable")
        bounds = np.flatnonzero(np.diff(region[order])) + 1
        tasks = []
        for members in np.split(order, bounds) if len(order) else []:
            members = members[counts[members] >= 0]
            if not len(members):
                continue
            owners = None if runs is None else [_cell_runs(runs, i) for i in members]
            tasks.append((store.path, cells[members], members, first_ids[members], owners, bins, kept))
        for result in run.map(_points_task, tasks, "point levels"):
            damaged.append(np.asarray(result["damaged"], np.int64))
            if "cell" in result:
                coarse.append(result)
    out.put("points/damaged", np.unique(np.concatenate(damaged)).astype(np.int32))
    _write_coarse(coarse, cells, names, pyramid, len(store.axes), out)


def _cell_runs(runs: tuple, cell: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (object id, first row, rows) runs of one cell."""
    per_cell, obj, start, rows = runs
    a, b = per_cell[cell], per_cell[cell + 1]
    return obj[a:b], start[a:b], rows[a:b]


def owners_of(runs: tuple[np.ndarray, np.ndarray, np.ndarray], n: int) -> np.ndarray:
    """Object id of each of a cell's ``n`` rows from its runs (-1: no object)."""
    owners = np.full(n, -1, np.int64)
    for o, s, r in zip(*(x.tolist() for x in runs), strict=True):
        owners[s : s + max(r, 0)] = o
    return owners


def pyramid_kept(store: ZVFStore, files, level: int) -> np.ndarray | None:
    """Sorted ids of the objects level ``level`` keeps (None: the level has no object index)."""
    if not store.levels[level].has_objects:
        return None
    ids, sizes = files.load(f"L{level}/objects/ids"), files.load(f"L{level}/objects/sizes")
    return np.sort(ids[sizes != 0])


def _write_coarse(coarse: list[dict], cells: np.ndarray, names: list[str], pyramid, dim: int, out: Writer) -> None:
    def cat(key: str, dtype, shape=()) -> np.ndarray:
        parts = [np.asarray(r[key]) for r in coarse]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *shape), dtype)

    cell, row, level, ids = cat("cell", np.int32), cat("row", np.int32), cat("level", np.uint8), cat("ids", np.uint64)
    chunk = np.zeros((len(cell), dim), np.int64)
    for k in range(1, pyramid.depth):
        at = level == k
        chunk[at] = cells[cell[at]] // pyramid.ratios[k]
    order = np.lexsort((id_hash(ids), linear_keys(chunk), level))
    cell, row, level, chunk = cell[order], row[order], level[order], chunk[order]
    out.put("points/coarse_cell", cell)
    out.put("points/coarse_row", row)
    out.put("points/coarse_level", level)
    out.put("points/coarse_positions", cat("positions", np.float32, (dim,))[order])
    out.put("points/coarse_owner", cat("owner", np.int64)[order])
    for i, name in enumerate(names):
        parts = [np.asarray(r["attributes"][name]) for r in coarse]
        out.put(f"points/coarse_attribute{i}", np.concatenate(parts)[order] if parts else np.zeros(0, np.float32))
    starts = np.flatnonzero(np.concatenate([[True], (np.diff(level) != 0) | (np.diff(chunk, axis=0) != 0).any(1)]))
    starts = starts[starts < len(level)]
    out.put("points/chunk_level", level[starts])
    out.put("points/chunk_cell", chunk[starts].reshape(-1, dim))
    out.put("points/chunk_offsets", np.append(starts, len(level)).astype(np.int64))
    by_cell = np.lexsort((row, cell))
    out.put("points/excl_offsets", np.concatenate([[0], np.cumsum(np.bincount(cell, minlength=len(cells)))]))
    out.put("points/excl_row", row[by_cell])
    out.put("points/excl_level", level[by_cell])


# -- items -----------------------------------------------------------------------------------------


def csr_select(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Element indices of the given rows of a CSR array (``offsets``), row after row."""
    n = np.diff(offsets)[rows]
    shift = offsets[rows] - np.concatenate([[0], np.cumsum(n)[:-1]]) if len(n) else np.zeros(0, np.int64)
    return np.repeat(shift, n) + np.arange(int(n.sum()))


def chunk_lists(
    offsets: np.ndarray, cell_index: np.ndarray, items: np.ndarray, ids: np.ndarray, cells: np.ndarray, ratio
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chunks (M, D), offsets (M+1), item rows): the chunks (``cells // ratio``) that ``items``
    touch (an item's cells: its row of the CSR ``offsets``/``cell_index``), each chunk's items
    shuffled by id hash so that a drawn prefix is a uniform sample."""
    owner = np.repeat(items, np.diff(offsets)[items])
    chunk = cells[cell_index[csr_select(offsets, items)]] // np.asarray(ratio)
    keys = linear_keys(chunk)
    unique_keys, first = np.unique(keys, return_index=True)
    pairs = np.unique(keys * max(1, len(ids)) + owner)
    key, item = np.divmod(pairs, max(1, len(ids)))
    order = np.lexsort((id_hash(ids[item]), key))
    key, item = key[order], item[order]
    starts = np.flatnonzero(np.concatenate([[True], np.diff(key) != 0])) if len(key) else np.zeros(0, np.int64)
    chunks = chunk[first[np.searchsorted(unique_keys, key[starts])]]
    return chunks.reshape(-1, cells.shape[1]), np.append(starts, len(key)).astype(np.int64), item.astype(np.int32)


def item_levels(
    offsets: np.ndarray, cell_index: np.ndarray, ids: np.ndarray, kept: list[np.ndarray | None], cells, pyramid
) -> np.ndarray:
    """The level each item is drawn at: from the coarsest level down, the items whose object that
    level keeps (``kept[k]``: a mask over items, None for items without objects) and that no coarser
    level drew; a level draws each with probability ``min(1, MAX_ITEMS_PER_CELL / most in one of its
    chunks)`` (a fixed coin per id), so no coarse cell holds many more than that; level 0 draws the
    rest."""
    drawn = np.zeros(len(ids), np.int64)
    todo = np.ones(len(ids), bool)
    coin = id_hash(ids).astype(np.float64) / 2.0**64
    for k in range(pyramid.depth - 1, 0, -1):
        if kept[k] is None:
            continue
        eligible = np.flatnonzero(todo & kept[k])
        if not len(eligible):
            continue
        _, chunk_offsets, _ = chunk_lists(offsets, cell_index, eligible, ids, cells, pyramid.ratios[k])
        most = int(np.diff(chunk_offsets).max(initial=0))
        chosen = eligible[coin[eligible] < min(1.0, MAX_ITEMS_PER_CELL / max(most, 1))]
        drawn[chosen] = k
        todo[chosen] = False
    return drawn


def build_items(store: ZVFStore, pyramid, files, out: Writer) -> None:
    """``items/*``: the table of items (lines and polylines: level-0 objects; graphs: link records),
    their ids, objects and drawn levels, their cells, and per view each level's chunk lists with
    their vertex totals."""
    cells = files.load("L0/cells")
    if store.kind == "graph":
        record_cell = files.load("L0/links/record_cell").astype(np.int64)
        owner = files.load("L0/links/record_owner")
        ids = np.arange(1, len(owner) + 1, dtype=np.uint64)
        uniq = [np.unique(r) for r in record_cell] if len(record_cell) else []
        offsets = np.concatenate([[0], np.cumsum([len(u) for u in uniq])]).astype(np.int64)
        cell_index = np.concatenate(uniq).astype(np.int64) if uniq else np.zeros(0, np.int64)
        item_object = owner
    else:
        object_ids = files.load("L0/objects/ids")
        ids = object_ids.astype(np.uint64) + np.uint64(1)
        offsets = files.load("L0/objects/piece_offsets")
        cell_index = files.load("L0/objects/piece_cell").astype(np.int64)
        item_object = np.arange(len(ids))
    object_ids = files.load("L0/objects/ids")
    kept: list[np.ndarray | None] = [None]
    for k in range(1, pyramid.depth):
        keep = pyramid_kept(store, files, k)
        kept.append(
            None if keep is None else (item_object >= 0) & np.isin(object_ids[np.maximum(item_object, 0)], keep)
        )
    drawn = item_levels(offsets, cell_index, ids, kept, cells, pyramid)
    out.put("items/ids", ids)
    out.put("items/object", item_object.astype(np.int64))
    out.put("items/level", drawn.astype(np.uint8))
    out.put("items/cell_offsets", offsets)
    out.put("items/cell_index", cell_index.astype(np.int32))
    views = {"all": [(k, np.flatnonzero(drawn == k)) for k in range(pyramid.depth)]}
    if pyramid.depth > 1:
        views.update({f"pin{n}": [(n, np.flatnonzero(drawn >= n))] for n in range(pyramid.depth)})
    sizes = np.full(len(ids), 2, np.int64) if store.kind == "graph" else files.load("L0/objects/sizes")
    for view, levels in views.items():
        for k, items in levels:
            chunks, chunk_offsets, members = chunk_lists(offsets, cell_index, items, ids, cells, pyramid.ratios[k])
            out.put(f"items/{view}/L{k}/chunks", chunks)
            out.put(f"items/{view}/L{k}/offsets", chunk_offsets)
            out.put(f"items/{view}/L{k}/items", members)
            out.put(f"items/{view}/L{k}/vertices", chunk_vertices(sizes[members], chunk_offsets))


def chunk_vertices(per_item: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Vertices of each chunk's items (CSR ``offsets``; -1: one of them unknown, a damaged chunk):
    kept in the index so that a level's chunk table needs no pass over its item lists."""
    if not len(per_item):
        return np.zeros(len(offsets) - 1, np.int64)
    starts = offsets[:-1]  # chunks are listed because they hold items: no empty run
    unknown = np.add.reduceat((per_item < 0).astype(np.int64), starts) > 0
    return np.where(unknown, -1, np.add.reduceat(per_item.astype(np.int64), starts))


def build_groups(store: ZVFStore, files, out: Writer) -> None:
    """``groups/*``: each ZVF group's member object rows, and each object row's groups (CSR both)."""
    object_ids = files.load("L0/objects/ids")
    groups = store.levels[0].groups()
    rows = [np.searchsorted(object_ids, g) for g in groups]
    rows = [
        r[(r < len(object_ids)) & (object_ids[np.minimum(r, len(object_ids) - 1)] == g)]
        for r, g in zip(rows, groups, strict=True)
    ]
    members = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    group_of = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    out.put("groups/offsets", np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64))
    out.put("groups/members", members)
    order = np.lexsort((group_of, members))
    out.put("groups/of_offsets", np.concatenate([[0], np.cumsum(np.bincount(members, minlength=len(object_ids)))]))
    out.put("groups/of", group_of[order].astype(np.int64))
