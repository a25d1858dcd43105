"""Reference images shown beneath the vector layers (``zvfs view/link/serve --image``).

An image is a local NIfTI file or OME-Zarr (or precomputed, N5) directory, served by the same server
under ``_images/<name>``, or any URL Neuroglancer reads. zvfs does not convert images: the client
reads them with its own data sources. One correction is zvfs's: Neuroglancer reads a NIfTI file by
its qform alone and puts voxel *corners* at the qform's positions (google/neuroglancer#730), while
NIfTI (and nibabel, FSL, MRtrix, every tractography tool) puts voxel *centres* there and prefers the
sform. A NIfTI layer therefore gets a source transform from its header, read with nibabel: the
affine nibabel uses (sform, else qform), shifted by half a voxel, in the header's spatial unit
(``unknown`` read as millimetres, as neuroimaging viewers do). Streamlines tracked on the image then
meet the voxels they were tracked through.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np

from .errors import UsageError
from .tree import DirectoryTree, MultiTree, Tree, unique_names

log = logging.getLogger("zvfs")

IMAGES_DIR = "_images"  # where a server puts local images, beside the stores
SCHEMES = ("nifti", "zarr", "zarr2", "zarr3", "n5", "precomputed")  # Neuroglancer data sources passed through
NIFTI_SUFFIXES = (".nii", ".nii.gz")
METRES = {"meter": 1.0, "mm": 1e-3, "micron": 1e-6, "unknown": 1e-3}  # NIfTI spatial units
INTENSITY_PERCENTILES = (0.5, 99.5)  # the contrast window of a local image
MAX_WINDOW_BYTES = 1 << 30  # images larger than this keep Neuroglancer's default window


@dataclass(frozen=True)
class Image:
    """A reference image: ``path`` when zvfs serves it (a local file or directory, as ``_images/NAME``),
    else ``url``. ``name`` is its file name."""

    name: str
    scheme: str
    path: str | None = None
    url: str | None = None

    def source_url(self, base_url: str) -> str:
        """Where the client reads it from, for a server at ``base_url`` (ending in '/')."""
        where = self.url if self.url is not None else f"{base_url}{IMAGES_DIR}/{quote(self.name)}"
        return f"{self.scheme}://{where}"


def _directory_scheme(path: str) -> str | None:
    """The data source of a local image directory, from the metadata files it holds."""
    for marker, scheme in (("zarr.json", "zarr"), (".zgroup", "zarr"), (".zattrs", "zarr"), (".zarray", "zarr")):
        if os.path.isfile(os.path.join(path, marker)):
            return scheme
    if os.path.isfile(os.path.join(path, "info")):
        return "precomputed"
    if os.path.isfile(os.path.join(path, "attributes.json")):
        return "n5"
    return None


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def layer_name(image: Image) -> str:
    """The file name without the format's suffix."""
    name = image.name
    for suffix in (*NIFTI_SUFFIXES, ".ome.zarr", ".zarr", ".n5"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def parse_image(text: str) -> Image:
    """An :class:`Image` from what a user typed; :class:`UsageError` (one line) when it is neither a
    readable local image nor a URL whose format is known."""
    scheme, sep, rest = text.partition("://")
    if sep and scheme in SCHEMES:
        return Image(_basename(rest), scheme, url=rest)
    if sep:
        if rest.lower().endswith(NIFTI_SUFFIXES):
            return Image(_basename(rest), "nifti", url=text)
        if ".zarr" in rest.lower():
            return Image(_basename(rest), "zarr", url=text)
        raise UsageError(f"{text}: say which format the image is in: {', '.join(s + '://' for s in SCHEMES)}")
    path = os.path.abspath(text)
    if os.path.isfile(path) and path.lower().endswith(NIFTI_SUFFIXES):
        return Image(_basename(path), "nifti", path=path)
    if os.path.isdir(path) and (scheme := _directory_scheme(path) or ""):
        return Image(_basename(path), scheme, path=path)
    if not os.path.exists(path):
        raise UsageError(f"{text}: no such image file or directory")
    raise UsageError(f"{text}: not an image zvfs can show (a NIfTI .nii/.nii.gz file, an OME-Zarr, N5 or precomputed "
                     "directory, or a URL)")  # fmt: skip


def parse_images(texts: Sequence[str]) -> list[Image]:
    """Images with names made unique, so that each is served at its own path."""
    images = [parse_image(text) for text in texts]
    names = unique_names(image.name for image in images)
    return [Image(name, image.scheme, image.path, image.url) for name, image in zip(names, images, strict=True)]


def image_tree(images: Sequence[Image]) -> Tree | None:
    """The local images as one tree (``NAME`` -> the file or directory), or None if there are none."""
    local = {image.name: DirectoryTree(image.path) for image in images if image.path is not None}
    return MultiTree(local) if local else None


def with_images(tree: Tree, images: Sequence[Image]) -> Tree:
    """``tree`` with the local images beside it under ``_images/``."""
    served = image_tree(images)
    return tree if served is None else MultiTree({IMAGES_DIR: served}, base=tree)


# -- NIfTI -----------------------------------------------------------------------------------------


def read_nifti_header(where: str):
    """The NIfTI-1 or -2 header of a local file or URL, reading only its first bytes."""
    import fsspec
    import nibabel as nib

    with fsspec.open(where, "rb") as raw:
        head = raw.read(2)
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
        start = f.read(540)
    size = int.from_bytes(start[:4], "little")
    size = size if size in (348, 540) else int.from_bytes(start[:4], "big")
    kind = nib.Nifti2Header if size == 540 else nib.Nifti1Header
    return kind.from_fileobj(_Bytes(start))


class _Bytes:
    """The few file methods nibabel's header reader calls, over bytes already read."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        out, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return out

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = pos if whence == 0 else self.pos + pos if whence == 1 else len(self.data) + pos
        return self.pos

    def tell(self) -> int:
        return self.pos


def nifti_transform(header) -> dict | None:
    """The layer source transform that puts each voxel's centre where the header says (see the
    module docstring), or None for images of other than three dimensions (left to Neuroglancer)."""
    if int(header["dim"][0]) != 3:
        return None
    affine = np.asarray(header.get_best_affine(), float)
    linear = affine[:3, :3]
    offset = affine[:3, 3] - linear @ np.full(3, 0.5)  # voxel i spans [i, i+1) in the client
    unit = [METRES.get(header.get_xyzt_units()[0], 1e-3), "m"]
    return {
        "matrix": [[*map(float, linear[r]), float(offset[r])] for r in range(3)],
        "inputDimensions": dict.fromkeys("ijk", unit),  # the client's names for NIfTI voxel axes
        "outputDimensions": dict.fromkeys("xyz", unit),
    }


def intensity_window(path: str, header) -> list[float] | None:
    """The contrast window of a local NIfTI image (percentiles of its finite values), if affordable."""
    import nibabel as nib

    if int(np.prod(header.get_data_shape())) * header.get_data_dtype().itemsize > MAX_WINDOW_BYTES:
        return None
    image: Any = nib.load(path)
    data = np.asarray(image.dataobj)
    values = data[np.isfinite(data)] if data.dtype.kind == "f" else data.ravel()
    if not values.size:
        return None
    lo, hi = (float(v) for v in np.percentile(values, INTENSITY_PERCENTILES))
    return [lo, hi] if hi > lo else None


def image_layer(image: Image, base_url: str) -> dict:
    """The layer state of one image; a NIfTI header that cannot be read is a warning, and the image
    is then shown as Neuroglancer reads it."""
    url = image.source_url(base_url)
    layer: dict = {"type": "image", "name": layer_name(image), "source": url}
    if image.scheme != "nifti":
        return layer
    where = image.path if image.path is not None else image.url or ""
    try:
        header = read_nifti_header(where)
        transform = nifti_transform(header)
        window = intensity_window(image.path, header) if image.path is not None else None
    except Exception as exc:  # any unreadable header: the client may still read the image
        log.warning("%s: NIfTI header not readable (%s: %s); shown as Neuroglancer reads it (qform, voxel corners)",
                    where, type(exc).__name__, exc)  # fmt: skip
        return layer
    if transform is None:
        log.warning("%s: not a 3-D NIfTI image; shown as Neuroglancer reads it (qform, voxel corners)", where)
    else:
        layer["source"] = {"url": url, "transform": transform}
    if window is not None:
        layer["shaderControls"] = {"normalized": {"range": window}}
    return layer
