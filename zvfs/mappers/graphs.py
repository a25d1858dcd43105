"""ZVF ``graph`` edges -> line annotations, one per edge.

Annotation id = 1 + the edge's position in the level's link records (in the order zarr-vectors
enumerates them: offset segments, then cells, then rows; fixed by the store). Edge attributes and
the owning graph object's attributes become properties; relationship ``object`` links each edge
to its graph's segment id. Node attributes go to the skeleton view.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from ..encoders import annotations as enc
from ..properties import columns
from ..store import AttributeInfo
from .common import Context
from .items import ItemSource


class EdgeItems(ItemSource):
    """One line annotation per explicit edge (link record) of a graph level."""

    def __init__(self, ctx: Context, only_level: int | None = None) -> None:
        super().__init__(ctx, only_level)
        taken: set[str] = set()
        self.edge_columns = columns(self._edge_attributes, "edge", taken)
        self.object_cols = self.object_columns(taken)
        self.make_schema("line", [c.prop for c in self.edge_columns + self.object_cols])

    def _edge_values(self, items: np.ndarray) -> dict[str, np.ndarray]:
        """Edge attributes of some items (the attributes held through the budget, not here)."""
        return {name: self.level.link_attribute(name)[items] for name in self.level.link_attribute_names}

    @cached_property
    def _edge_attributes(self) -> list[AttributeInfo]:
        values = self._edge_values(np.zeros(0, np.int64))
        return [AttributeInfo(name, v.dtype, v.shape[1] if v.ndim > 1 else 1) for name, v in values.items()]

    def item_vertices(self, rows: slice | np.ndarray) -> np.ndarray:
        return np.full(len(range(self.n_items)[rows]) if isinstance(rows, slice) else len(rows), 2, np.int64)

    def items_of(self, object_rows: np.ndarray) -> np.ndarray:
        objects = self.ctx.objects(0).objects
        return np.concatenate([objects.links(int(r))[1] for r in object_rows]) if len(object_rows) else np.zeros(0)

    def batch(self, items: np.ndarray) -> enc.Annotations:
        index = self.ctx.index
        cells, rows = index.take("L0/links/record_cell", items), index.take("L0/links/record_row", items)
        where = index.level(0).cells
        ends = [[self.level.cell(tuple(where[c].tolist())).positions[r] for c, r in zip(cs, rs, strict=True)]
                for cs, rs in zip(cells.tolist(), rows.tolist(), strict=True)]  # fmt: skip
        geometry = self.ctx.space.frame.points(np.asarray(ends, np.float32).reshape(-1, self.schema.rank))
        geometry = geometry.reshape(len(items), -1)
        edges = self._edge_values(items)
        props = {c.prop.id: c.values(edges) for c in self.edge_columns}
        if self.object_cols:
            oids = self.ctx.objects(0).ids_at(np.maximum(self.item_objects(items), 0))
            props.update(self.object_properties(self.object_cols, oids))
        return enc.Annotations(geometry, props, self.item_ids(items))
