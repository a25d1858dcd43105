"""ZVF ``line``, ``polyline`` and ``streamline`` -> line / polyline annotations, one per object.

Annotation id = object id + 1. A line's per-vertex attributes become two properties, ``<name>_a``
(first endpoint) and ``<name>_b`` (second); a polyline keeps its per-vertex attributes for the
skeleton view and carries its per-object attributes as properties. With objects, relationship
``object`` links each annotation to its object's segment id, and with ZVF groups relationship
``group`` to 1 + the index of each group holding the object (filter by bundle, tract, ...).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..encoders import annotations as enc
from ..properties import columns
from .common import Context
from .items import ItemSource


class ObjectItems(ItemSource):
    """One annotation per ZVF object: ``line`` (2 vertices) or ``polyline``."""

    def __init__(self, ctx: Context, annotation_type: str, only_level: int | None = None) -> None:
        super().__init__(ctx, only_level)
        self.objects = ctx.objects(0)
        self.is_line = annotation_type == "line"
        taken: set[str] = set()
        self.vertex_columns = []
        if self.is_line:
            ends = [replace(a, name=f"{a.name}_{e}") for a in self.level.vertex_attributes for e in "ab"]
            self.vertex_columns = columns(ends, "endpoint", taken)
        self.object_cols = self.object_columns(taken)
        self.make_schema(annotation_type, [c.prop for c in self.vertex_columns + self.object_cols], with_groups=True)

    def item_vertices(self, rows: slice | np.ndarray) -> np.ndarray:
        return self.objects.objects.sizes_at(rows)

    def items_of(self, object_rows: np.ndarray) -> np.ndarray:
        return np.asarray(object_rows, np.int64)

    def batch(self, items: np.ndarray) -> enc.Annotations:
        oids = self.objects.ids_at(items)
        geoms = self.objects.geometries(oids.tolist())
        props = self.object_properties(self.object_cols, oids)
        space = self.ctx.space.frame
        if self.is_line:
            for o, g in zip(oids, geoms, strict=True):
                if len(g.positions) != 2:
                    raise ValueError(f"line object {o} has {len(g.positions)} vertices, not 2")
            ends = {
                f"{name}_{e}": np.stack([g.attributes[name][k] for g in geoms]) if geoms else np.zeros(0)
                for name in (a.name for a in self.level.vertex_attributes)
                for k, e in enumerate("ab")
            }
            props.update({c.prop.id: c.values(ends) for c in self.vertex_columns})
            geometry = (
                np.stack([space.points(g.positions).reshape(-1) for g in geoms])
                if geoms
                else np.zeros((0, 2 * self.schema.rank))
            )
            return enc.Annotations(geometry, props, self.item_ids(items))
        counts = np.asarray([len(g.positions) for g in geoms], np.int64)
        geometry = (
            space.points(np.concatenate([g.positions for g in geoms])) if geoms else np.zeros((0, self.schema.rank))
        )
        return enc.Annotations(geometry, props, self.item_ids(items), counts)
