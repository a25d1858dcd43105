"""ZVF attributes -> typed annotation properties (names and values kept wherever the format can)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from .encoders import numeric
from .encoders.annotations import Property
from .store import AttributeInfo

_ID = re.compile(r"[^a-zA-Z0-9_]")
_UNDERSCORES = re.compile(r"__+")


@dataclass(frozen=True)
class Column:
    """How one annotation property is computed from one stored attribute (or one of its channels)."""

    prop: Property
    attribute: str
    channel: int | None = None

    def values(self, data: Mapping[str, np.ndarray]) -> np.ndarray:
        """The property column from the attribute columns of a batch."""
        raw = np.asarray(data[self.attribute])
        if self.channel is not None:
            raw = raw.reshape(len(raw), -1)[:, self.channel]
        if self.prop.type in ("rgb", "rgba"):
            return raw.reshape(len(raw), -1).astype(np.uint8)
        return numeric.cast(raw, self.prop.type, f"attribute {self.attribute!r}")


def unique_id(name: str, taken: set[str]) -> str:
    """``name`` as an identifier not in ``taken`` (which it joins): ASCII letters, digits and single
    underscores, starting with a lower-case letter. Accents are dropped (``größe`` -> ``gro_e``),
    other characters become ``_``, a name not starting with a letter gets a ``p_`` prefix, and a
    taken one a ``_2``, ``_3``... suffix."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    pid = _UNDERSCORES.sub("_", _ID.sub("_", plain)) or "p"
    if not pid[0].isalpha():
        pid = "p_" + pid
    pid = pid[0].lower() + pid[1:]
    base, k = pid, 1
    while pid in taken:
        k += 1
        pid = f"{base}_{k}"
    taken.add(pid)
    return pid


def _description(attr: AttributeInfo, scope: str, channel: str = "") -> str:
    text = f"{scope} attribute {attr.name}" + (f"[{channel}]" if channel else "")
    if attr.unit:
        text += f" ({attr.unit})"
    return text + (f": {attr.description}" if attr.description else "")


def columns(attrs: Iterable[AttributeInfo], scope: str, taken: set[str] | None = None) -> list[Column]:
    """Property columns for stored attributes: categorical -> enum, uint8 x3/x4 -> rgb/rgba,
    other multi-channel attributes -> one property per channel, 64-bit -> 32-bit."""
    taken = set() if taken is None else taken
    out: list[Column] = []
    for a in attrs:
        if a.categories:
            out.append(
                Column(
                    Property(
                        unique_id(a.name, taken),
                        numeric.type_for(a.dtype),
                        _description(a, scope),
                        tuple(range(len(a.categories))),
                        a.categories,
                    ),
                    a.name,
                )
            )
        elif a.dtype == np.uint8 and a.channels in (3, 4):
            out.append(
                Column(
                    Property(unique_id(a.name, taken), "rgb" if a.channels == 3 else "rgba", _description(a, scope)),
                    a.name,
                )
            )
        elif a.dtype == np.bool_:
            out.append(
                Column(
                    Property(unique_id(a.name, taken), "uint8", _description(a, scope), (0, 1), ("false", "true")),
                    a.name,
                )
            )
        elif a.channels == 1:
            out.append(
                Column(Property(unique_id(a.name, taken), numeric.type_for(a.dtype), _description(a, scope)), a.name)
            )
        else:
            for c in range(a.channels):
                label = a.channel_names[c] if c < len(a.channel_names) else str(c)
                out.append(
                    Column(
                        Property(
                            unique_id(f"{a.name}_{label}", taken),
                            numeric.type_for(a.dtype),
                            _description(a, scope, label),
                        ),
                        a.name,
                        c,
                    )
                )
    return out
