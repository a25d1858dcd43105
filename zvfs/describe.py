"""``zvfs info``: what a user asks of a store before mounting it, from its metadata alone (no
chunk read, no index built): geometry type, levels with their counts, attributes, the coordinate
chain (which metadata decided, the final affine and units, what was ignored), physical bounds, and
the layers and paths zvfs will present."""

from __future__ import annotations

from typing import Any

import numpy as np

from .coordinates import homogeneous
from .index.pyramid import Pyramid
from .mappers import MAPPERS, check_supported
from .space import Space
from .store import ZVFStore


def describe(store: ZVFStore, space: Space) -> dict[str, Any]:
    """The store as plain data (``zvfs info --json``)."""
    check_supported(store)
    lower, upper = store.bounds
    corners = np.asarray(np.meshgrid(*zip(lower, upper, strict=True), indexing="ij")).reshape(len(lower), -1).T
    physical = space.points(corners).astype(np.float64)
    depth = Pyramid.of(store).depth
    layers = list(MAPPERS[store.kind])
    return {
        "store": store.path,
        "geometry": store.kind,
        "levels": [
            {
                "level": lv.index,
                "vertices": lv.vertex_count,
                "objects": lv.object_count,
                "chunks": len(lv.cells),
                "chunk_shape": lv.chunk_shape.tolist(),
                "bin_shape": lv.bin_shape.tolist(),
            }
            for lv in store.levels
        ],
        "attributes": {
            "vertex": {a.name: _attribute(a) for a in store.levels[0].vertex_attributes},
            "object": {a.name: _attribute(a) for a in store.levels[0].object_attributes},
        },
        "coordinates": {
            "stored_units": [a.unit for a in space.stored_axes],
            "decided_by": list(space.decided) or ["the axes' units (no other coordinate metadata)"],
            "ignored": list(space.ignored),
            "affine": homogeneous(space.affine).tolist(),
            "units": [a.unit for a in space.axes],
            "orientation": space.orientation,
            "annotations": "written in the physical space"
            if space.frame.viewer is None
            else "written in stored coordinates; zvfs link and view apply the rest (a rotation) in the viewer",
        },
        "bounds": {
            "lower": physical.min(0).tolist(),
            "upper": physical.max(0).tolist(),
            "units": [a.unit for a in space.axes],
        },
        "layers": layers + (["levels/N/" + name for name in layers] if depth > 1 else []),
        "pyramid": {"levels used for level of detail": depth},
    }


def _attribute(a: Any) -> str:
    text = f"{a.dtype}" + (f" x{a.channels}" if a.channels > 1 else "")
    return text + (f" ({len(a.categories)} categories)" if a.categories else "")


def as_text(d: dict[str, Any]) -> str:
    """:func:`describe` for a person."""
    lines = [f"{d['store']}", f"  geometry: {d['geometry']}", "  levels:"]
    for lv in d["levels"]:
        lines.append(
            f"    {lv['level']}: {lv['vertices']:,} vertices, {lv['objects']:,} objects, {lv['chunks']:,} chunks "
            f"of {_vector(lv['chunk_shape'])} (bins {_vector(lv['bin_shape'])})"
        )
    for scope, attrs in d["attributes"].items():
        if attrs:
            lines.append(f"  {scope} attributes: " + ", ".join(f"{n} ({t})" for n, t in attrs.items()))
    c = d["coordinates"]
    lines.append("  coordinates:")
    lines += [f"    decided by: {what}" for what in c["decided_by"]]
    lines += [f"    ignored: {what}" for what in c["ignored"]]
    lines.append(f"    stored units: {', '.join(u or '(none)' for u in c['stored_units'])}")
    lines.append(
        f"    physical units: {', '.join(u or '(none)' for u in c['units'])}"
        + (f", {c['orientation']}+" if c["orientation"] else "")
    )
    lines.append("    affine (stored -> physical):")
    lines += ["      " + "  ".join(f"{v:12.6g}" for v in row) for row in c["affine"]]
    lines.append(f"    annotation layers: {c['annotations']}")
    b = d["bounds"]
    lines.append(
        f"  physical bounds: {_vector(b['lower'])} to {_vector(b['upper'])} {','.join(dict.fromkeys(b['units']))}"
    )
    lines.append("  layers: " + ", ".join(d["layers"]))
    return "\n".join(lines)


def _vector(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"
