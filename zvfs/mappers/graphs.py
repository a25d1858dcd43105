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
from ..objects import object_table
from ..properties import columns
from ..store import AttributeInfo, ZVFStore
from .common import Cell
from .items import ItemSource


class EdgeItems(ItemSource):
    """One line annotation per explicit edge (link record) of a graph level."""

    def __init__(self, store: ZVFStore, only_level: int | None = None) -> None:
        super().__init__(store, only_level)
        self.objects = object_table(self.level)
        taken: set[str] = set()
        self.edge_columns = columns(self._edge_attributes, "edge", taken)
        object_attrs = self.segments.property_attributes()
        self.object_columns = columns(object_attrs, "object", taken)
        self.make_schema(
            "line", [c.prop for c in self.edge_columns + self.object_columns], with_objects=self.level.has_objects
        )

    @cached_property
    def _edge_values(self) -> dict[str, np.ndarray]:
        return {name: self.level.link_attribute(name) for name in self.level.link_attribute_names}

    @cached_property
    def _edge_attributes(self) -> list[AttributeInfo]:
        return [AttributeInfo(name, v.dtype, v.shape[1] if v.ndim > 1 else 1) for name, v in self._edge_values.items()]

    @cached_property
    def _object_values(self) -> dict[str, np.ndarray]:
        return {a.name: self.level.object_attribute(a.name) for a in self.level.object_attributes}

    @cached_property
    def item_ids(self) -> np.ndarray:
        return np.arange(1, len(self.objects.records[1]) + 1, dtype=np.uint64)

    @property
    def item_objects(self) -> np.ndarray:
        owner = self.objects.records[2]
        return np.where(owner >= 0, self.objects.ids[np.maximum(owner, 0)], -1)

    def item_cells(self) -> tuple[list[list[Cell]], np.ndarray]:
        cells = self.objects.records[0]
        return [list(dict.fromkeys(map(tuple, c))) for c in cells.tolist()], np.full(len(cells), 2, np.int64)

    def batch(self, items: np.ndarray) -> enc.Annotations:
        cells, rows, owner = self.objects.records
        ends = [
            [self.level.cell(tuple(c)).positions[r] for c, r in zip(cells[i].tolist(), rows[i], strict=True)]
            for i in items
        ]
        geometry = self.store.space.points(np.asarray(ends, np.float32).reshape(-1, self.schema.rank))
        geometry = geometry.reshape(len(items), -1)
        props = {c.prop.id: c.values({k: v[items] for k, v in self._edge_values.items()}) for c in self.edge_columns}
        obj_rows = np.maximum(owner[items], 0)
        props.update(
            {c.prop.id: c.values({k: v[obj_rows] for k, v in self._object_values.items()}) for c in self.object_columns}
        )
        return enc.Annotations(geometry, props, self.item_ids[items])
