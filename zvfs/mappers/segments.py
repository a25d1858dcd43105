"""Per-object attributes -> Neuroglancer segment properties (shown in a segmentation layer's
segment list, searchable and filterable).

- label: the object's ``label`` or ``name`` string attribute when there is one, else ``object <id>``;
- other string (or categorical) attributes -> tags ``<attribute>=<value>`` (spaces become ``_``);
- numeric attributes -> number properties (float64 -> float32; 64-bit integers -> int32/uint32
  when every value fits, else float32); multi-channel attributes -> one number per channel;
- a float attribute holding NaN (ZVF's "absent" fill) is left out: JSON cannot carry NaN and the
  client would read it as 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

import numpy as np

from ..encoders import numeric
from ..encoders.segment_properties import SegmentProperty, info
from ..properties import unique_id
from ..tree import Dir, Node
from .common import Context, json_file

LABEL_NAMES = ("label", "name")
PROPERTIES_DIR = "segment_properties"
SEGMENTS = "segments"  # key of a segment-keyed layer's one index (its per-segment files, or their shards)
_TAG_UNSAFE = re.compile(r"[\s#]+")


def _number(pid: str, values: np.ndarray, description: str) -> SegmentProperty | None:
    """A number property in the narrowest type that keeps every value (64-bit integers: int32, else
    uint32, else float32); None for float values with NaN (absent), which JSON cannot carry."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return None
    wide = values.dtype.itemsize > 4 and values.dtype.kind in "iu"
    candidates = ("int32", "uint32", "float32") if wide else (numeric.type_for(values.dtype),)
    data_type = next(t for t in candidates if t == "float32" or numeric.misfit(values, t) is None)
    typed = numeric.cast(values, data_type, description).tolist()
    return SegmentProperty(pid, "number", typed, data_type=data_type, description=description)


def segment_properties(ctx: Context, k: int) -> dict:
    """The inline segment-properties ``info`` for every object level ``k`` holds (a coarse level
    keeps only some), with their level-0 attributes (a coarse level's are fill values for the
    objects it drops). Number properties keep their attribute's name (as an identifier); the
    generated ``label`` and ``tags`` properties take ids no attribute uses."""
    level, segments, table = ctx.store.levels[0], ctx.segments, ctx.objects(k)
    oids = table.ids[table.objects.sizes() != 0]
    rows = np.searchsorted(ctx.objects(0).ids, oids)
    taken: set[str] = set()
    numbers: list[SegmentProperty | None] = []
    labels: list[str] | None = None
    tags: list[str] = []
    tag_values: list[list[int]] = [[] for _ in oids]
    for attr in segments.property_attributes():
        values = np.asarray(level.object_attribute(attr.name))[rows]
        if attr.categories:
            strings = np.asarray(attr.categories, dtype=object)[values.astype(np.int64)]
            if labels is None and attr.name.lower() in LABEL_NAMES:
                labels = [str(s) for s in strings]
                continue
            for k, s in enumerate(strings):
                tag = f"{_TAG_UNSAFE.sub('_', attr.name)}={_TAG_UNSAFE.sub('_', str(s))}"
                if tag not in tags:
                    tags.append(tag)
                tag_values[k].append(tags.index(tag))
        elif values.ndim > 1:
            for c in range(values.shape[1]):
                channel = attr.channel_names[c] if c < len(attr.channel_names) else str(c)
                pid = unique_id(f"{attr.name}_{channel}", taken)
                numbers.append(_number(pid, values[:, c], f"object attribute {attr.name}[{channel}]"))
        else:
            numbers.append(_number(unique_id(attr.name, taken), values, f"object attribute {attr.name}"))
    label = SegmentProperty(unique_id("label", taken), "label", labels or [f"object {o}" for o in oids.tolist()])
    props = [label, *filter(None, numbers)]
    if tags:
        props.append(SegmentProperty(unique_id("tags", taken), "tags", [sorted(t) for t in tag_values], tags=tags))
    return info(segments.of(oids).tolist(), props)


def segment_layer_dir(
    info_json: Callable[[], dict],
    ctx: Context,
    k: int,
    names: Callable[[], Iterable[str]],
    child: Callable[[str], Node | None],
) -> Dir:
    """A segment-keyed layer directory (skeletons, meshes) of level ``k``'s objects: ``info``,
    ``segment_properties/info`` (which ``info`` must reference as :data:`PROPERTIES_DIR`) and the
    per-segment files."""
    props = Dir({"info": json_file(lambda: segment_properties(ctx, k))})
    return Dir({"info": json_file(info_json), PROPERTIES_DIR: props}, names=names, child=child)
