"""Rows for binary COPY with the heavy columns encoded in bulk.

psycopg formats binary COPY rows in C, but calls a Python dumper per value for
types it does not know natively: pgvector's (a ``Vector`` object, a byte-order
conversion and a ``struct.pack`` per row) and jsonb (a JSON dump per row). Here the
whole vector column is converted to PostgreSQL's binary ``vector`` format in one
NumPy operation, and metadata to binary jsonb from the batch's canonical JSON; each
value reaches COPY as :class:`Encoded` bytes that a pass-through dumper (registered
on the COPY's cursor for that type's OID) hands over unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from psycopg import AsyncCursor
from psycopg.adapt import Dumper
from psycopg.pq import Format

from vectorstore.records import RecordBatch


class Encoded(bytes):
    """A value already in PostgreSQL's binary wire format."""


def register_passthrough(cur: AsyncCursor[Any], oids: list[int]) -> None:
    """Make COPY on ``cur`` send :class:`Encoded` values of these types as they are."""
    for oid in oids:
        dumper = type(f"Passthrough{oid}", (_Passthrough,), {"oid": oid})
        cur.adapters.register_dumper(Encoded, dumper)


class _Passthrough(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        return bytes(obj) if not isinstance(obj, bytes) else obj


def vectors(batch: RecordBatch) -> list[Encoded | None]:
    """pgvector's binary format of every row: int16 dim, int16 0, dim big-endian float32;
    None for a record without a vector."""
    n, dim = batch.vectors.shape
    buf = np.empty((n, 4 + 4 * dim), dtype=np.uint8)
    buf[:, 0:2] = np.frombuffer(np.array([dim], dtype=">u2").tobytes(), dtype=np.uint8)
    buf[:, 2:4] = 0
    buf[:, 4:] = np.ascontiguousarray(batch.vectors, dtype=">f4").view(np.uint8).reshape(n, 4 * dim)
    raw = buf.tobytes()
    width = 4 + 4 * dim
    out: list[Encoded | None] = [Encoded(raw[i * width:(i + 1) * width]) for i in range(n)]
    if not batch.all_vectors:
        assert batch.present is not None
        for i in np.flatnonzero(~batch.present).tolist():
            out[i] = None
    return out


def jsonb(texts: list[str]) -> list[Encoded]:
    """Binary jsonb: a version byte (1), then the JSON text."""
    return [Encoded(b"\x01" + text.encode("utf-8")) for text in texts]
