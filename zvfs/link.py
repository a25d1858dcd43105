"""Neuroglancer viewer states for precomputed trees: every layer of a store, fitted to its data.

Pure: reads a :class:`~zvfs.tree.Tree` (a store's virtual tree, a directory of stores, a mount or
an export) and never HTTP. One layer per directory whose ``info`` has a known ``@type``, at the
tree root or, for a directory of stores, at each store's root (:func:`layer_groups`):

- ``neuroglancer_annotations_v1``: an annotation layer coloured by its first numeric property;
- ``neuroglancer_skeletons``: a segmentation layer, coloured by an SWC-type-like vertex attribute,
  else by the first vertex attribute;
- ``neuroglancer_multilod_draco``, ``neuroglancer_legacy_mesh``: a segmentation layer. A legacy
  mesh directory is left out when the tree also has multi-resolution meshes (the same objects).

Segmentation layers show their first :data:`MAX_SEGMENTS` segments. When a tree has both an
annotation and a skeleton layer (polylines, streamlines, graphs: the same objects twice), the
annotation layer starts hidden. Value ranges and the bounds of skeletons and meshes come from a
sample of the files (:data:`SAMPLE_FILES` per layer).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar
from urllib.parse import quote

import numpy as np

from .encoders import EXTENSION, meshes, numeric, sharded, skeletons
from .encoders.annotations import AnnotationSchema, decode_multiple
from .errors import StoreError
from .images import Image, image_layer
from .tree import NotFound, ReadFailed, Tree
from .tree import unique_names as tree_names

log = logging.getLogger("zvfs")
T = TypeVar("T")

MAX_SEGMENTS = 1000
MAX_DEPTH = 8  # directories searched below a tree's root for stores' layers
SAMPLE_FILES = 16
DEFAULT_VIEWER = "https://neuroglancer-demo.appspot.com/"
ANNOTATIONS, SKELETONS = "neuroglancer_annotations_v1", "neuroglancer_skeletons"
MULTILOD, LEGACY = "neuroglancer_multilod_draco", "neuroglancer_legacy_mesh"
NM: list = [1e-9, "m"]
SWC_LIKE = re.compile(r"swc|^(type|structure|compartment)$", re.IGNORECASE)
PROJECTION_ORIENTATION = [-0.23, 0.36, 0.09, 0.9]  # an oblique 3-D view (quaternion x, y, z, w)
PROJECTION_MARGIN = 2.0  # 3-D field of view / largest extent (a rotated box needs up to sqrt(3))
CROSS_SECTION_PIXELS = 600  # screen pixels the largest extent spans in a 2-D panel
URL_SAFE = "~@$&()*!+=:;,.?/'"  # left as they are in the state URL, as Neuroglancer does

SWC_COLOURS = """vec3 swcColour(float t) {
  int k = int(t + 0.5);
  if (k == 1) return vec3(1.0, 1.0, 1.0);  // soma
  if (k == 2) return vec3(0.3, 0.6, 1.0);  // axon
  if (k == 3) return vec3(1.0, 0.35, 0.3);  // (basal) dendrite
  if (k == 4) return vec3(1.0, 0.3, 1.0);  // apical dendrite
  return vec3(1.0, 0.85, 0.2);  // undefined or custom
}
"""


@dataclass(frozen=True)
class Source:
    """A tree to show: layer names start with ``name``; ``url`` serves it (ends in '/')."""

    name: str
    tree: Tree
    url: str


@dataclass
class Box:
    """Bounds per dimension name in SI units: name -> (low, high, unit)."""

    dims: dict[str, tuple[float, float, str]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, lo: Sequence[float] | np.ndarray, hi: Sequence[float] | np.ndarray, dimensions: Mapping[str, list]
    ) -> Box:
        return cls(
            {name: (lo[i] * scale, hi[i] * scale, unit) for i, (name, (scale, unit)) in enumerate(dimensions.items())}
        )

    @classmethod
    def nanometres(cls, points: np.ndarray) -> Box:
        """The box of (N, 3) x/y/z positions in nanometres."""
        if not len(points):
            return cls()
        lo, hi = points.min(0), points.max(0)
        return cls.of(lo.tolist(), hi.tolist(), dict.fromkeys("xyz", NM))

    def union(self, other: Box) -> Box:
        out = dict(self.dims)
        for name, (lo, hi, unit) in other.dims.items():
            mine = out.get(name)
            if mine is None:
                out[name] = (lo, hi, unit)
            elif mine[2] == unit:
                out[name] = (min(mine[0], lo), max(mine[1], hi), unit)
        return Box(out)


@dataclass
class Layer:
    """One layer's state and what it says about the coordinate space."""

    state: dict
    box: Box
    dimensions: dict | None = None  # annotation layers declare theirs


# -- reading the tree --------------------------------------------------------------------------


def read_json(tree: Tree, path: str) -> dict:
    """A JSON object of the tree; StoreError (one line) if it is missing, unreadable or not one."""
    try:
        data = tree.read(path)
    except NotFound:
        raise StoreError(f"{tree.label}: /{path}: not found") from None
    except ReadFailed as exc:
        raise StoreError(str(exc)) from None
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise StoreError(f"{tree.label}: /{path}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise StoreError(f"{tree.label}: /{path}: not a JSON object")
    return value


Reads = Sequence[tuple[str, Callable[[], bytes]]]  # what a file or chunk is called, and how to read it


def sample(tree: Tree, reads: Reads, decode: Callable[[bytes], T]) -> list[T]:
    """``decode`` of up to :data:`SAMPLE_FILES` of ``reads`` (:func:`files`, :func:`chunks`). A file
    that cannot be read, or that its format's decoder refuses (ValueError), is skipped with a
    warning naming it: the viewer will report it too, and the rest of the layer still counts."""
    out = []
    for name, read in reads[:SAMPLE_FILES]:
        try:
            out.append(decode(read()))
        except (NotFound, ReadFailed, ValueError) as exc:
            log.warning("%s: /%s: left out of the view's fit: %s", tree.label, name, exc)
    return out


def files(tree: Tree, paths: Iterable[str]) -> Reads:
    return [(path, partial(tree.read, path)) for path in paths]


def chunks(tree: Tree, directory: str, sharding: dict, ids: Iterable[int]) -> Reads:
    """Chunks ``ids`` of the sharded index ``directory``, each read from its shard file by byte
    ranges, as the client reads it."""
    spec = sharded.ShardingSpec.from_json(sharding)
    out = []
    for chunk_id in ids:
        path = f"{directory}/{sharded.shard_of(spec, chunk_id)}"
        out.append((f"{path} (chunk {chunk_id})", partial(_chunk, tree, path, spec, chunk_id)))
    return out


def _chunk(tree: Tree, path: str, spec: sharded.ShardingSpec, chunk_id: int) -> bytes:
    data = sharded.fetch_chunk(spec, partial(tree.read, path), chunk_id)
    if data is None:
        raise NotFound(f"no chunk {chunk_id} in its shard")
    return data


def segment_files(tree: Tree, path: str, info: dict, ids: Sequence[str], suffix: str = "") -> Reads:
    """The file of each segment of a skeleton or multi-resolution mesh layer (``<id><suffix>``), or
    its chunk when the layer is sharded (a mesh's chunk is its manifest)."""
    if "sharding" in info:
        return chunks(tree, path, info["sharding"], map(int, ids))
    return files(tree, [f"{path}/{i}{suffix}" for i in ids])


def layer_groups(tree: Tree, path: str = "", depth: int = 0) -> dict[str, dict[str, dict | StoreError]]:
    """Each directory holding layers (a store's tree; the root, or each store of a directory of
    stores) -> its layer directories (paths from the root) -> ``info`` (of a known type) or the
    error reading it. A directory that holds no layer is searched below, down to
    :data:`MAX_DEPTH`; one that does is not (its other directories are e.g. pinned levels). A
    directory that cannot be read (a store that cannot be opened) is a group of its own, its one
    layer the error: it never hides the layers beside it."""
    layers: dict[str, dict | StoreError] = {}
    below: dict[str, StoreError | None] = {}  # directories to search below, or why one cannot be read
    for name in sorted(tree.listdir(path)):
        child = posixpath.join(path, name)
        try:
            if not tree.stat(child).is_dir:
                continue
        except NotFound:  # gone since listed, or a link out of the tree
            continue
        except ReadFailed as exc:
            below[child] = StoreError(str(exc))
            continue
        try:
            found = layer_info(tree, child)
        except NotFound:  # no info: a directory to search below
            below[child] = None
            continue
        if found is not None:
            layers[child] = found
    if layers:
        if any(isinstance(i, dict) and i["@type"] == MULTILOD for i in layers.values()):
            layers = {k: v for k, v in layers.items() if not (isinstance(v, dict) and v["@type"] == LEGACY)}
        return {path: layers, **{child: {child: e} for child, e in below.items() if e is not None}}
    out: dict[str, dict[str, dict | StoreError]] = {}
    for child, error in below.items():
        if error is None and depth < MAX_DEPTH:
            try:
                out.update(layer_groups(tree, child, depth + 1))
            except ReadFailed as exc:  # listed, but its listing fails
                error = StoreError(str(exc))
        if error is not None:
            out[child] = {child: error}
    return out


def layer_info(tree: Tree, path: str) -> dict | StoreError | None:
    """The layer in directory ``path``: its ``info`` (of a known type) or the error reading it;
    None if it is not one (an ``info`` of another type, or a directory); NotFound without ``info``."""
    try:
        if tree.stat(f"{path}/info").is_dir:
            return None
        info = read_json(tree, f"{path}/info")
    except ReadFailed as exc:
        return StoreError(str(exc))
    except StoreError as exc:
        return exc
    return info if info.get("@type") in (ANNOTATIONS, SKELETONS, MULTILOD, LEGACY) else None


def segment_ids(tree: Tree, path: str, info: dict) -> list[str]:
    """Up to :data:`MAX_SEGMENTS` segment ids: from the segment properties, else from the listing."""
    props = info.get("segment_properties")
    if props:
        ids = read_json(tree, f"{path}/{props}/info").get("inline", {}).get("ids", [])
        return [str(i) for i in ids[:MAX_SEGMENTS]]
    names = (re.fullmatch(r"(\d+)(\.index|:0)?", n) for n in sorted(tree.listdir(path)))
    return sorted({m.group(1) for m in names if m}, key=int)[:MAX_SEGMENTS]


def to_nanometres(points: np.ndarray, info: dict) -> np.ndarray:
    """(N, 3) stored positions through the info's row-major 3x4 ``transform``."""
    m = np.asarray(info.get("transform", [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]), np.float64).reshape(3, 4)
    return points @ m[:, :3].T + m[:, 3]


# -- annotations -------------------------------------------------------------------------------


def property_values(tree: Tree, path: str, info: dict) -> dict[str, np.ndarray] | None:
    """Property columns of a sample of the coarsest spatial level's cells, or None if it has none."""
    schema = AnnotationSchema.from_info(info)
    schema.check()
    coarsest = info["spatial"][0]
    level = f"{path}/{coarsest['key']}"
    try:
        names = sorted(tree.listdir(level))
        if "sharding" in coarsest:  # the same cells as unsharded: in the order of their file names
            spec = sharded.ShardingSpec.from_json(coarsest["sharding"])
            codes = [sharded.chunk_ids(spec, partial(tree.read, f"{level}/{name}")) for name in names]
            code = np.concatenate([np.zeros(0, np.uint64), *codes])
            cell_names = ("_".join(map(str, c)) for c in sharded.cells_of_morton_codes(code, coarsest["grid_shape"]))
            ordered = [key for _, key in sorted(zip(cell_names, code.tolist(), strict=True))]
            cells = chunks(tree, level, coarsest["sharding"], ordered[:SAMPLE_FILES])
        else:
            cells = files(tree, [f"{level}/{name}" for name in names])
    except NotFound:
        log.warning("%s: /%s: missing; the layer is not coloured by its properties", tree.label, level)
        return None
    batches = sample(tree, cells, lambda data: decode_multiple(schema, data).properties)
    if not batches:
        return None
    return {p.id: np.concatenate([b[p.id] for b in batches]) for p in schema.properties}


def value_range(values: np.ndarray | None, dtype: str = "float32") -> list[float] | None:
    """[min, max] of the finite values (integers for integer types); None if there are none."""
    if values is None:
        return None
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if not len(v):
        return None
    lo, hi = float(v.min()), float(v.max())
    if dtype != "float32":
        return [int(lo), int(hi) if hi > lo else int(lo) + 1]
    return [lo, hi if hi > lo else lo + 1.0]


def invlerp(control: str, prop: dict, values: Mapping[str, np.ndarray] | None) -> str:
    rng = value_range(None if values is None else values[prop["id"]], prop["type"])
    args = f'property="{prop["id"]}"' + (f", range={json.dumps(rng)}" if rng else "")
    return f"#uicontrol invlerp {control}({args})\n"


def annotation_shader(info: dict, values: Mapping[str, np.ndarray] | None) -> str | None:
    """Colour by the first numeric property (a line's two endpoint values as a gradient), else by
    an rgb/rgba property; points get a size slider, lines a width slider."""
    props = {p["id"]: p for p in info.get("properties", [])}
    numbers = [p for p in props.values() if p["type"] in numeric.TYPES and "enum_values" not in p]
    rgb = [p for p in props.values() if p["type"] in ("rgb", "rgba")]
    kind = info["annotation_type"]
    if kind == "point":
        controls, body = "#uicontrol float size slider(min=1, max=20, default=5)\n", "  setPointMarkerSize(size);\n"
    else:
        controls, body = "#uicontrol float width slider(min=1, max=10, default=2)\n", "  setLineWidth(width);\n"
    if numbers:
        first = numbers[0]
        pair = props.get(first["id"][:-2] + "_b") if kind == "line" and first["id"].endswith("_a") else None
        controls += invlerp("colour", first, values)
        if pair:
            controls += invlerp("colour_b", pair, values)
            body += (
                "  setLineColor(colormapJet(colour()), colormapJet(colour_b()));\n"
                "  setEndpointMarkerColor(colormapJet(colour()), colormapJet(colour_b()));\n"
            )
        else:
            body += "  setColor(colormapJet(colour()));\n"
    elif rgb:
        body += f"  setColor(prop_{rgb[0]['id']}());\n"
    else:
        return None
    return f"{controls}void main() {{\n{body}}}\n"


def neuroglancer_matrix(affine: np.ndarray, inputs: Mapping[str, list], outputs: Mapping[str, list]) -> np.ndarray:
    """An affine between coordinates counted in ``inputs``' and ``outputs``' scales as a source
    transform's ``matrix``, whose linear part the client multiplies by input scale / output scale."""
    ratio = np.outer([scale for scale, _ in outputs.values()], [1.0 / scale for scale, _ in inputs.values()])
    out = np.array(affine, np.float64)
    out[:, :-1] *= ratio
    return out


def annotation_layer(tree: Tree, path: str, info: dict) -> Layer:
    """An annotation layer; where zvfs wrote the files in stored coordinates (a rotation), the info
    carries the rest of the affine, which becomes the layer's source transform."""
    state: dict = {"type": "annotation"}
    shader = annotation_shader(info, property_values(tree, path, info))
    if shader:
        state["shader"] = shader
    lower, upper = np.asarray(info["lower_bound"], np.float64), np.asarray(info["upper_bound"], np.float64)
    extension = info.get(EXTENSION) or {}
    if "transform" not in extension:
        return Layer(state, Box.of(lower, upper, info["dimensions"]), dict(info["dimensions"]))
    matrix = np.asarray(extension["transform"], np.float64)
    output = dict(extension["output_dimensions"])
    state["source_transform"] = {"matrix": neuroglancer_matrix(matrix, info["dimensions"], output).tolist(),
                                 "outputDimensions": output}  # fmt: skip
    corners = np.asarray(np.meshgrid(*zip(lower, upper, strict=True), indexing="ij")).reshape(len(lower), -1).T
    moved = corners @ matrix[:, :-1].T + matrix[:, -1]
    return Layer(state, Box.of(moved.min(0), moved.max(0), output), output)


# -- skeletons and meshes ----------------------------------------------------------------------


def skeleton_shader(info: dict, attributes: Mapping[str, np.ndarray]) -> str | None:
    """Colour by direction where zvfs gave the skeletons one (streamlines: |x| red, |y| green, |z|
    blue, as tractography viewers do), with a checkbox back to the store's attributes: an SWC-type-
    like attribute (soma, axon, dendrites), else the first attribute."""
    direction = (info.get(EXTENSION) or {}).get("direction")
    single = [a["id"] for a in info.get("vertex_attributes", []) if a["num_components"] == 1 and a["id"] != direction]
    swc = [
        i
        for i in single
        if SWC_LIKE.search(i) and i in attributes and np.array_equal(attributes[i], np.round(attributes[i]))
    ]
    controls, body = "", ""
    if swc:
        controls, body = SWC_COLOURS, f"emitRGB(swcColour({swc[0]}));"
    elif single:
        name = single[0]
        lo, hi = value_range(attributes.get(name)) or [0.0, 1.0]
        controls = (
            f"#uicontrol float {name}_min slider(min={lo}, max={hi}, default={lo})\n"
            f"#uicontrol float {name}_max slider(min={lo}, max={hi}, default={hi})\n"
        )
        body = f"emitRGB(colormapJet(clamp(({name} - {name}_min) / max({name}_max - {name}_min, 1e-20), 0.0, 1.0)));"
    if direction:
        toggle = "#uicontrol bool direction_colours checkbox(default=true)\n"
        otherwise = f" else {{\n    {body}\n  }}" if body else ""
        body = f"if (direction_colours) {{\n    emitRGB(abs({direction}));\n  }}{otherwise}"
        controls = toggle + controls
    if not body:
        return None
    return f"{controls}void main() {{\n  {body}\n}}\n"


def skeleton_layer(tree: Tree, path: str, info: dict, ids: list[str]) -> Layer:
    spec = skeletons.spec_from_info(info)
    found = sample(tree, segment_files(tree, path, info, ids), lambda data: skeletons.decode(data, spec))
    positions = np.concatenate([p for p, _, _ in found]) if found else np.zeros((0, 3))
    attributes = {a.id: np.concatenate([f[2][a.id] for f in found]) for a in spec} if found else {}
    state: dict = {
        "type": "segmentation",
        "skeletonRendering": {"mode2d": "lines_and_points", "mode3d": "lines", "lineWidth3d": 2},
    }
    shader = skeleton_shader(info, attributes)
    if shader:
        state["skeletonShader"] = shader
    return Layer(state, Box.nanometres(to_nanometres(positions.astype(np.float64), info)))


def multilod_corners(data: bytes) -> np.ndarray:
    """Corners of the finest LOD's non-empty nodes, in stored coordinates (from the manifest alone)."""
    manifest = meshes.Manifest.decode(data)
    boxes = [manifest.node_box(0, p) for p, size in zip(manifest.positions[0], manifest.sizes[0], strict=True) if size]
    return np.asarray([corner for low, edge in boxes for corner in (low, low + edge)]).reshape(-1, 3)


def legacy_vertices(tree: Tree, path: str, manifest: bytes) -> np.ndarray:
    """The vertices (nanometres) of a legacy mesh's fragments."""
    fragments = files(tree, [f"{path}/{name}" for name in json.loads(manifest)["fragments"]])
    found = sample(tree, fragments, lambda data: meshes.decode_legacy_fragment(data)[0])
    return np.concatenate([np.zeros((0, 3), np.float32), *found])


def mesh_layer(tree: Tree, path: str, info: dict, ids: list[str]) -> Layer:
    if info["@type"] == MULTILOD:
        corners = sample(tree, segment_files(tree, path, info, ids, ".index"), multilod_corners)
        points = to_nanometres(np.concatenate(corners), info) if corners else np.zeros((0, 3))
    else:
        manifests = files(tree, [f"{path}/{i}:0" for i in ids])
        meshes = sample(tree, manifests, lambda data: legacy_vertices(tree, path, data))
        points = np.concatenate(meshes).astype(np.float64) if meshes else np.zeros((0, 3))
    return Layer({"type": "segmentation"}, Box.nanometres(points))


# -- the state ---------------------------------------------------------------------------------


def directory_layer(tree: Tree, path: str, info: dict) -> Layer:
    """The layer of one layer directory, without name and source."""
    if info["@type"] == ANNOTATIONS:
        return annotation_layer(tree, path, info)
    ids = segment_ids(tree, path, info)
    layer = (skeleton_layer if info["@type"] == SKELETONS else mesh_layer)(tree, path, info, ids)
    layer.state["segments"] = ids
    return layer


def tree_layers(source: Source) -> list[Layer]:
    """The layers of one tree, named ``<source name>/<directory>``. A layer whose ``info`` or
    segment list cannot be used is still listed, without a type, so that the viewer shows its
    source's error; a warning names it. Where a store has skeletons, its annotation layer (the
    same objects) starts hidden."""
    layers = []
    for dirs in layer_groups(source.tree).values():
        hide_annotations = any(isinstance(i, dict) and i["@type"] == SKELETONS for i in dirs.values())
        for path, info in dirs.items():
            try:
                if isinstance(info, StoreError):
                    raise info
                layer = directory_layer(source.tree, path, info)
            except (StoreError, NotFound, ReadFailed, KeyError, TypeError, ValueError) as exc:
                log.warning(
                    "%s: /%s: layer cannot be used (%s: %s); the viewer will show its error",
                    source.tree.label,
                    path,
                    type(exc).__name__,
                    exc,
                )
                layer = Layer({}, Box())
            if isinstance(info, dict) and info["@type"] == ANNOTATIONS and hide_annotations:
                layer.state["visible"] = False
            url = f"precomputed://{source.url}{quote(path)}"
            transform = layer.state.pop("source_transform", None)
            layer.state = {
                "name": f"{source.name}/{path}",
                "source": url if transform is None else {"url": url, "transform": transform},
                **layer.state,
            }
            layers.append(layer)
    return layers


def view_fit(dimensions: dict[str, list], box: Box) -> dict:
    """Position at the centre of ``box`` and zooms that show all of it (in canonical voxels: the
    smallest dimension scale); empty if nothing is known."""
    if not box.dims:
        return {}
    centre, extents = [], []
    for name, (scale, unit) in dimensions.items():
        lo, hi, their_unit = box.dims.get(name, (0.0, 0.0, unit))
        if their_unit != unit:
            lo = hi = 0.0
        centre.append((lo + hi) / 2 / scale)
        extents.append(hi - lo)
    extent = max(extents) / min(scale for scale, _ in dimensions.values())
    if extent <= 0:
        return {"position": centre}
    return {
        "position": centre,
        "crossSectionScale": extent / CROSS_SECTION_PIXELS,
        "projectionScale": extent * PROJECTION_MARGIN,
        "projectionOrientation": PROJECTION_ORIENTATION,
    }


def build_state(sources: Sequence[Source], images: Sequence[dict] = (), dimensions: dict | None = None) -> dict:
    """A complete Neuroglancer state showing every layer of every source in one coordinate space
    (``dimensions``, a viewer's own, else the first annotation layer's, else x/y/z in nanometres),
    above the ``images``' layers (:func:`zvfs.images.image_layer`), fitted to the sources' data."""
    layers = [layer for s in sources for layer in tree_layers(s)]
    dimensions = dimensions or next((lay.dimensions for lay in layers if lay.dimensions), dict.fromkeys("xyz", NM))
    box = Box()
    for layer in layers:
        box = box.union(layer.box)
    return {
        "dimensions": dimensions,
        **view_fit(dimensions, box),
        "layers": [*images, *(lay.state for lay in layers)],
        "showSlices": bool(images),
        "layout": "xy-3d",
    }


def union_state(trees: Mapping[str, Tree], base_url: str, images: Sequence[Image] = ()) -> dict:
    """The state of named trees served side by side, each at ``base_url + name/``, with ``images``
    served by the same server."""
    sources = [Source(name, tree, f"{base_url}{quote(name)}/") for name, tree in trees.items()]
    return build_state(sources, [image_layer(image, base_url) for image in images])


def state_url(state: dict, viewer_url: str = DEFAULT_VIEWER) -> str:
    """``VIEWER#!<url-encoded JSON>``, the form Neuroglancer reads its state from."""
    return f"{viewer_url}#!{quote(json.dumps(state, separators=(',', ':')), safe=URL_SAFE)}"


def source_name(path: str) -> str:
    """A layer name prefix from a store path or URL: its file name without ``.zarrvectors``."""
    name = path.rstrip("/").rsplit("/", 1)[-1] if "://" in path else os.path.basename(os.path.abspath(path))
    return name.removesuffix(".zarrvectors") or name


def unique_names(paths: Sequence[str], taken: Iterable[str] = ()) -> dict[str, str]:
    """name -> path, names from :func:`source_name` made unique (none of ``taken``)."""
    return dict(zip(tree_names(map(source_name, paths), taken), paths, strict=True))
