"""Neuroglancer segment properties (``neuroglancer_segment_properties``, inline form): pure encoder.

One ``info`` JSON: base-10 string ids and per property one value per id. Kinds as the 2.41.2 client
parses them (``frontend.ts`` ``parseInlinePropertyMap``): ``label`` / ``description`` (at most one
each, shown next to the id), ``string``, ``tags`` (at most one; values are increasing indices into
``tags``) and ``number`` (``data_type`` uint8..int32 or float32; the client converts values with a
typed array, so out-of-range integers would wrap: refused here). JSON has no NaN or infinity (the
client's ``JSON.parse`` rejects Python's ``NaN`` token and reads ``null`` as 0), so non-finite
numbers raise ValueError; leave the segment out of ``ids`` instead, which the client shows as missing.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import numeric

PROPERTY_TYPES = ("label", "description", "string", "tags", "number")
SINGLE_TYPES = ("label", "description", "tags")  # at most one property of each
MAX_TAGS = 2**16  # the client packs a segment's tag indices into UTF-16 code units


def _integer(v: Any, what: str) -> int:
    try:
        return operator.index(v)
    except TypeError:
        raise ValueError(f"{what} must be integers, not {v!r}") from None


@dataclass(frozen=True, eq=False)
class SegmentProperty:
    """One inline property: ``values`` holds one entry per id (strings, numbers or tag-index lists)."""

    id: str
    type: str
    values: Sequence[Any] | np.ndarray
    data_type: str | None = None  # number only
    description: str = ""  # not for tags
    tags: Sequence[str] = ()  # tags only
    tag_descriptions: Sequence[str] = ()  # tags only: empty or one per tag

    def check(self, n: int) -> None:
        """Raise ValueError where this property is not one the client would parse as meant."""
        where = f"segment property {self.id!r}"
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"segment property id must be a non-empty string, not {self.id!r}")
        if self.type not in PROPERTY_TYPES:
            raise ValueError(f"{where}: type {self.type!r} not in {PROPERTY_TYPES}")
        if len(self.values) != n:
            raise ValueError(f"{where}: {len(self.values)} values for {n} ids")
        if (self.data_type is not None) != (self.type == "number"):
            raise ValueError(f"{where}: data_type is required for number properties and only for them")
        if self.type == "number" and self.data_type not in numeric.TYPES:
            raise ValueError(f"{where}: data_type {self.data_type!r} not in {sorted(numeric.TYPES)}")
        if self.type != "tags" and (self.tags or self.tag_descriptions):
            raise ValueError(f"{where}: tags and tag_descriptions are for tags properties only")
        if self.type == "tags":
            if self.description:
                raise ValueError(f"{where}: tags properties take no description (use tag_descriptions)")
            if len(self.tags) > MAX_TAGS:
                raise ValueError(f"{where}: {len(self.tags)} tags exceed {MAX_TAGS}")
            for t in self.tags:
                if not isinstance(t, str) or not t or t.startswith("#") or any(c.isspace() for c in t):
                    raise ValueError(f"{where}: tag {t!r} must be non-empty, without '#' prefix or spaces")
            if len({t.lower() for t in self.tags}) != len(self.tags):
                raise ValueError(f"{where}: tags must be distinct (matched case-insensitively)")
            if self.tag_descriptions and len(self.tag_descriptions) != len(self.tags):
                raise ValueError(f"{where}: {len(self.tag_descriptions)} tag_descriptions for {len(self.tags)} tags")

    def json(self) -> dict:
        """The property entry of ``info`` (call :meth:`check` first); values become plain JSON types."""
        out: dict = {"id": self.id, "type": self.type}
        if self.description:
            out["description"] = str(self.description)
        if self.type == "tags":
            out["tags"] = [str(t) for t in self.tags]
            if self.tag_descriptions:
                out["tag_descriptions"] = [str(d) for d in self.tag_descriptions]
        if self.type == "number":
            out["data_type"] = self.data_type
        out["values"] = (
            _numbers(self) if self.type == "number" else _tag_lists(self) if self.type == "tags" else _strings(self)
        )
        return out


def _strings(p: SegmentProperty) -> list[str]:
    for v in p.values:
        if not isinstance(v, str):
            raise ValueError(f"segment property {p.id!r}: {p.type} values must be strings, not {v!r}")
    return [str(v) for v in p.values]


def _tag_lists(p: SegmentProperty) -> list[list[int]]:
    """Each value as increasing, distinct tag indices (sorted here: a segment's tags are a set)."""
    out = []
    for v in p.values:
        idx = sorted({_integer(i, f"segment property {p.id!r}: tag indices") for i in v})
        if idx and (idx[0] < 0 or idx[-1] >= len(p.tags)):
            raise ValueError(f"segment property {p.id!r}: tag index out of range [0, {len(p.tags)}) in {list(v)}")
        out.append(idx)
    return out


def _numbers(p: SegmentProperty) -> list[int] | list[float]:
    """Values as Python numbers that the client's typed-array conversion keeps unchanged."""
    where = f"segment property {p.id!r}"
    try:
        values = np.asarray(p.values, np.float64 if p.data_type == "float32" else None)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: number values must be numbers ({e})") from None
    if values.size and values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise ValueError(f"{where}: NaN/infinite values cannot be written as JSON numbers")
    typed = numeric.cast(values, str(p.data_type), where)
    if p.data_type == "float32":
        return [float(str(v)) for v in typed]  # shortest decimal that reads back as the same float32
    return [int(v) for v in typed]


def info(ids: Sequence[int], properties: Sequence[SegmentProperty]) -> dict:
    """The ``info`` JSON of a segment-properties directory (inline form); ids in the given order."""
    keys = []
    for i in ids:
        k = _integer(i, "segment ids")
        if not 0 <= k < 2**64:
            raise ValueError(f"segment id {k} is not a uint64")
        keys.append(k)
    if len(set(keys)) != len(keys):
        raise ValueError("segment ids must be unique")
    names = [p.id for p in properties]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate segment property ids in {names}")
    for kind in SINGLE_TYPES:
        if sum(p.type == kind for p in properties) > 1:
            raise ValueError(f"at most one {kind!r} property is allowed")
    for p in properties:
        p.check(len(keys))
    return {
        "@type": "neuroglancer_segment_properties",
        "inline": {"ids": [str(k) for k in keys], "properties": [p.json() for p in properties]},
    }
