"""Content checksums, computed the same way on both sides of a migration.

A table's checksum is SHA-256 over its rows' digests in key order; a row's digest is
SHA-256 over its values' canonical encodings in column order, each prefixed by its
length. A value's canonical encoding says what the value *is*, not how a database
stored it, so the source (SQLite, typeof-aware) and the target (PostgreSQL, after
decoding the migration's escapes) agree exactly when nothing was lost:

========================  ==============================================================
value                     encoding
========================  ==============================================================
NULL                      ``N``
integer                   ``I`` + decimal digits
real (double)             ``R`` + ``float.hex`` (every bit of the double; 0.30000000000000004
                          and 0.3 differ)
text                      ``T`` + the exact bytes SQLite holds (NUL, invalid UTF-8 and all)
blob                      ``B`` + the bytes
JSON (declared JSON       ``J`` + canonical JSON of the parsed value (sorted keys, no spaces,
columns that parse)       numbers as integers or ``float.hex``), so ``42`` stored as an
                          integer and ``"42"`` text holding JSON agree
vector                    ``V`` + little-endian float32 bytes
========================  ==============================================================

Records of a vectorstore collection (a vectorstore store as the migration source) are digested
with :func:`record_digest`: the id (``I`` / ``T``), the vector (``V``, or ``N`` for none), every
declared field in the spec's order (text ``T``, int ``I``, float ``R``, bool, json and arrays ``J``,
date and timestamp ``T`` + ISO 8601, timestamps in UTC with microseconds) and the metadata (``J``).
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import attrs


def encode_null() -> bytes:
    return b"N"


def encode_int(value: int) -> bytes:
    return b"I" + str(int(value)).encode("ascii")


def encode_real(value: float) -> bytes:
    return b"R" + float(value).hex().encode("ascii")


def encode_text(raw: bytes) -> bytes:
    """``raw`` is the text's bytes as stored (may be invalid UTF-8)."""
    return b"T" + bytes(raw)


def encode_blob(raw: bytes) -> bytes:
    return b"B" + bytes(raw)


def encode_vector(float32_le: bytes) -> bytes:
    return b"V" + bytes(float32_le)


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        # Integral doubles and ints are the same JSON number; others keep every bit.
        if math.isfinite(value) and value == int(value) and abs(value) < 2**63:
            return int(value)
        return {"$float": value.hex()}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    raise TypeError(f"not a JSON value: {value!r}")


def encode_json(value: Any) -> bytes:
    """A parsed JSON value (dict, list, str, int, float, bool, None)."""
    text = json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return b"J" + text.encode("utf-8", "surrogatepass")


def encode_sqlite(typeof: str, value: Any, *, json_column: bool = False) -> bytes:
    """Canonical encoding of a SQLite value given its ``typeof()`` (``null``, ``integer``, ``real``,
    ``text`` with ``value`` as bytes, ``blob``). With ``json_column`` a text, integer or real value
    that parses as JSON is encoded as JSON."""
    if typeof == "null" or value is None:
        return encode_null()
    if json_column and typeof in ("integer", "real"):
        return encode_json(value)
    if json_column and typeof == "text":
        try:
            return encode_json(json.loads(bytes(value).decode("utf-8", "surrogatepass")))
        except (ValueError, UnicodeDecodeError):
            return encode_text(value)
    if typeof == "integer":
        return encode_int(value)
    if typeof == "real":
        return encode_real(value)
    if typeof == "text":
        return encode_text(value)
    if typeof == "blob":
        return encode_blob(value)
    raise ValueError(f"unknown SQLite storage class {typeof!r}")


def encode_field(kind: str, value: Any) -> bytes:
    """Canonical encoding of a vectorstore field value of type ``kind`` (a FieldType value)."""
    if value is None:
        return encode_null()
    if kind == "text":
        return encode_text(str(value).encode("utf-8", "surrogatepass"))
    if kind == "int":
        return encode_int(value)
    if kind == "float":
        return encode_real(value)
    if kind == "date":
        return encode_text(value.isoformat().encode("ascii"))
    if kind == "timestamp":
        import datetime as dt

        return encode_text(value.astimezone(dt.UTC).isoformat(timespec="microseconds").encode("ascii"))
    return encode_json(list(value) if kind.endswith("[]") else value)  # bool, json, int[], text[]


def record_digest(spec: Any, record: Any) -> bytes:
    """Digest of a vectorstore record (``spec``: its CollectionSpec)."""
    import numpy as np

    rid = record.id
    parts = [encode_int(rid) if isinstance(rid, int) else encode_text(str(rid).encode("utf-8"))]
    parts.append(encode_null() if record.vector is None
                 else encode_vector(np.asarray(record.vector, dtype="<f4").tobytes()))
    for name, kind in spec.fields.items():
        parts.append(encode_field(str(getattr(kind, "value", kind)), record.fields.get(name)))
    parts.append(encode_json(dict(record.metadata)))
    return row_digest(parts)


def row_digest(encoded_values: Sequence[bytes]) -> bytes:
    h = hashlib.sha256()
    for item in encoded_values:
        h.update(struct.pack("<Q", len(item)))
        h.update(item)
    return h.digest()


@attrs.define
class TableChecksum:
    """Accumulates row digests in key order; ``hexdigest`` is the table's checksum."""

    rows: int = 0
    _h: Any = attrs.field(factory=hashlib.sha256)

    def add(self, key: Any, digest: bytes) -> None:
        self._h.update(repr(key).encode("utf-8", "surrogatepass") + b"\x00" + digest)
        self.rows += 1

    def hexdigest(self) -> str:
        return str(self._h.hexdigest())


def first_difference(source: Iterable[tuple[Any, bytes]], target: Iterable[tuple[Any, bytes]]) -> Any | None:
    """The first key (in key order) whose row differs or exists on one side only; None if equal.
    Both iterables yield ``(key, row_digest)`` sorted by key."""
    src, tgt = iter(source), iter(target)
    a, b = next(src, None), next(tgt, None)
    while a is not None or b is not None:
        if a is None:
            return b[0] if b is not None else None
        if b is None:
            return a[0]
        if a[0] != b[0]:
            return min(a[0], b[0])
        if a[1] != b[1]:
            return a[0]
        a, b = next(src, None), next(tgt, None)
    return None
