"""zvfs: Zarr Vector Format stores as read-only Neuroglancer precomputed trees."""

__version__ = "0.1.0"
