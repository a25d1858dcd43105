"""Neuroglancer precomputed formats, one pure module each: encode, decode and size side by side."""

EXTENSION = "zvfs"  # a key of ours in an info: what zvfs link and view need that the format has no place for
