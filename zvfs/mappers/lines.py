"""ZVF ``line``, ``polyline`` and ``streamline`` -> line / polyline annotations, one per object.

Annotation id = object id + 1. A line's per-vertex attributes become two properties, ``<name>_a``
(first endpoint) and ``<name>_b`` (second); a polyline keeps its per-vertex attributes for the
skeleton view and carries its per-object attributes as properties. With objects, relationship
``object`` links each annotation to its object's segment id, and with ZVF groups relationship
``group`` to 1 + the index of each group holding the object (filter by bundle, tract, ...).
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property

import numpy as np

from ..encoders import annotations as enc
from ..objects import object_table
from ..properties import columns
from ..store import ZVFStore
from .common import Cell
from .items import ItemSource


class ObjectItems(ItemSource):
    """One annotation per ZVF object: ``line`` (2 vertices) or ``polyline``."""

    def __init__(self, store: ZVFStore, annotation_type: str, only_level: int | None = None) -> None:
        super().__init__(store, only_level)
        self.objects = object_table(self.level)
        self.is_line = annotation_type == "line"
        taken: set[str] = set()
        self.vertex_columns = []
        if self.is_line:
            ends = [replace(a, name=f"{a.name}_{e}") for a in self.level.vertex_attributes for e in "ab"]
            self.vertex_columns = columns(ends, "endpoint", taken)
        object_attrs = self.segments.property_attributes()
        self.object_columns = columns(object_attrs, "object", taken)
        props = [c.prop for c in self.vertex_columns + self.object_columns]
        self.make_schema(annotation_type, props, with_objects=True, with_groups=True)

    @cached_property
    def item_ids(self) -> np.ndarray:
        return self.objects.ids.astype(np.uint64) + np.uint64(1)

    @property
    def item_objects(self) -> np.ndarray:
        return self.objects.ids

    def item_cells(self) -> tuple[list[list[Cell]], np.ndarray]:
        ids = self.objects.ids.tolist()
        return [self.objects.cells_of(o) for o in ids], np.asarray([self.objects.size(o) for o in ids], np.int64)

    @cached_property
    def _object_values(self) -> dict[str, np.ndarray]:
        return {a.name: self.level.object_attribute(a.name) for a in self.level.object_attributes}

    def batch(self, items: np.ndarray) -> enc.Annotations:
        oids = self.objects.ids[items]
        geoms = self.objects.geometries(oids.tolist())
        props = {
            c.prop.id: c.values({k: v[items] for k, v in self._object_values.items()}) for c in self.object_columns
        }
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
                np.stack([self.store.space.points(g.positions).reshape(-1) for g in geoms])
                if geoms
                else np.zeros((0, 2 * self.schema.rank))
            )
            return enc.Annotations(geometry, props, self.item_ids[items])
        counts = np.asarray([len(g.positions) for g in geoms], np.int64)
        geometry = (
            self.store.space.points(np.concatenate([g.positions for g in geoms]))
            if geoms
            else np.zeros((0, self.schema.rank))
        )
        return enc.Annotations(geometry, props, self.item_ids[items], counts)
