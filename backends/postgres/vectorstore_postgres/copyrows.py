"""Binary COPY data for a whole batch, built column by column with NumPy.

PostgreSQL's binary COPY format is, per row, a 16-bit field count and then each field as
a 32-bit length (-1 for NULL) followed by its bytes in the type's binary format. Fixed-width
columns without NULLs (int ids, vectors, int / float / bool / date / timestamp fields) are
encoded for every row at once with NumPy; variable-width ones (text, JSON, metadata) and
columns with NULLs as one ``bytes`` per row; each row is then one ``b"".join``. psycopg's
``write_row`` would instead call a Python dumper per value -- pgvector's builds a ``Vector``
and packs it with ``struct`` for every row. Array fields have no encoder here
(:func:`can_encode` says so; the caller falls back to ``write_row``).

:func:`encode` yields the data in parts of ~256 kB, so the server inserts one part while
the next is being built.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from vectorstore import records
from vectorstore.records import RecordBatch, dump_json
from vectorstore.schema import CollectionSpec, FieldType, IdType

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
NULL = b"\xff\xff\xff\xff"
PG_EPOCH_DATE = dt.date(2000, 1, 1)
PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
ONE_MICROSECOND = dt.timedelta(microseconds=1)

#: A column: a ``(n, 4 + width)`` uint8 matrix (fixed width, no NULL) or one bytes per row.
Column = npt.NDArray[np.uint8] | list[bytes]

#: Fixed-width field types: (NumPy dtype, struct format, conversion to the wire value).
_FIXED: dict[FieldType, tuple[str, str, Callable[[Any], Any]]] = {
    FieldType.INT: (">i8", ">q", int),
    FieldType.FLOAT: (">f8", ">d", float),
    FieldType.BOOL: ("?", ">?", bool),
    FieldType.DATE: (">i4", ">i", lambda d: (d - PG_EPOCH_DATE).days),
    FieldType.TIMESTAMP: (">i8", ">q", lambda t: (t - PG_EPOCH) // ONE_MICROSECOND),
}


def _fixed(values: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Length-prefixed big-endian values, one row each."""
    n, width = len(values), values.dtype.itemsize
    out = np.empty((n, 4 + width), dtype=np.uint8)
    out[:, :4] = np.frombuffer(struct.pack(">i", width), dtype=np.uint8)
    out[:, 4:] = values.view(np.uint8).reshape(n, width)
    return out


def _variable(payloads: list[bytes | None]) -> list[bytes]:
    return [NULL if p is None else struct.pack(">i", len(p)) + p for p in payloads]


def _jsonb(text: str) -> bytes:
    return b"\x01" + text.encode("utf-8")


def can_encode(spec: CollectionSpec) -> bool:
    """Whether :func:`encode` can build every column of ``spec`` (not array fields)."""
    return all(kind in _FIXED or kind in (FieldType.TEXT, FieldType.JSON) for kind in spec.fields.values())


def _field(kind: FieldType, values: list[Any]) -> Column:
    if kind in _FIXED:
        dtype, fmt, convert = _FIXED[kind]
        if all(v is not None for v in values):
            return _fixed(np.array([convert(v) for v in values], dtype=dtype))
        one = struct.Struct(fmt).pack
        return _variable([None if v is None else one(convert(v)) for v in values])
    if kind is FieldType.TEXT:
        return _variable([None if v is None else v.encode("utf-8") for v in values])
    assert kind is FieldType.JSON, f"no binary COPY encoder for {kind} fields (see can_encode)"
    return _variable([None if v is None else _jsonb(dump_json(v)) for v in values])


def _vectors(vectors: npt.NDArray[np.float32], present: npt.NDArray[np.bool_] | None) -> Column:
    """pgvector's binary format: int16 dim, int16 0, dim big-endian float32."""
    n, dim = vectors.shape
    out = np.empty((n, 8 + 4 * dim), dtype=np.uint8)
    out[:, :4] = np.frombuffer(struct.pack(">i", 4 + 4 * dim), dtype=np.uint8)
    out[:, 4:8] = np.frombuffer(struct.pack(">hh", dim, 0), dtype=np.uint8)
    out[:, 8:] = np.ascontiguousarray(vectors, dtype=">f4").view(np.uint8).reshape(n, 4 * dim)
    if present is None or present.all():
        return out
    rows = [row.tobytes() for row in out]
    return [rows[i] if has else NULL for i, has in enumerate(present.tolist())]


def encode(batches: Iterable[RecordBatch], part_rows: int | None = None) -> Iterator[bytes]:
    """Binary COPY data for the columns ``id, vector, fields..., metadata`` (``id, fields...,
    metadata`` for a collection without vectors) of every row of ``batches`` (one spec, which
    :func:`can_encode`): the signature, then ``part_rows`` rows at a time (default:
    :func:`vectorstore.records.part_rows`, ~256 kB of vectors), then the trailer. A batch is
    taken from ``batches`` only when its first part is due (a streamed write validates it then)."""
    yield SIGNATURE
    for batch in batches:
        texts = batch.metadata_json()
        step = part_rows or records.part_rows(batch.spec.dim)
        for start in range(0, len(batch), step):
            yield _rows(batch, texts, start, min(len(batch), start + step))
    yield TRAILER


def _rows(batch: RecordBatch, texts: list[str], start: int, stop: int) -> bytes:
    spec = batch.spec
    n = stop - start
    ids = batch.ids[start:stop]
    ncols = (3 if spec.has_vectors else 2) + len(spec.fields)
    columns: list[Column] = [np.frombuffer(struct.pack(">h", ncols) * n, dtype=np.uint8).reshape(n, 2)]
    if spec.id_type is IdType.INT:
        columns.append(_fixed(np.array(ids, dtype=">i8")))
    else:
        columns.append(_variable([str(rid).encode("utf-8") for rid in ids]))
    if spec.has_vectors:
        columns.append(_vectors(batch.vectors[start:stop],
                                None if batch.present is None else batch.present[start:stop]))
    fields = batch.fields[start:stop]
    for name, kind in spec.fields.items():
        columns.append(_field(kind, [f.get(name) for f in fields]))
    columns.append(_variable([_jsonb(text) for text in texts[start:stop]]))
    # Adjacent fixed-width columns become one block, sliced once per row.
    runs: list[list[Column]] = []
    for column in columns:
        if isinstance(column, np.ndarray) and runs and isinstance(runs[-1][0], np.ndarray):
            runs[-1].append(column)
        else:
            runs.append([column])
    merged: list[Column] = [run[0] if len(run) == 1 else np.concatenate(run, axis=1) for run in runs]
    per_row: list[list[bytes]] = []
    for column in merged:
        if isinstance(column, np.ndarray):
            width = column.shape[1]
            flat = column.tobytes()
            per_row.append([flat[i * width:(i + 1) * width] for i in range(n)])
        else:
            per_row.append(column)
    return b"".join(map(b"".join, zip(*per_row, strict=True)))
