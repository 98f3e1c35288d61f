"""How values cross the wire: JSON read like the reference backend reads it, vectors as binary.

:func:`register` sets up a connection's adapters: psycopg's JSON codecs with
:func:`json_loads` and vectorstore's JSON writer, pgvector's vector adapters, and two
replacements on the paths every search takes — the jsonb binary loader (one value per hit)
and the binary dumper of NumPy vectors (each query vector, and each record of a write too
small for COPY, whose rows are encoded by ``copyrows``) — that do the same work as the ones
they replace in fewer Python steps.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

import numpy as np
import orjson
import psycopg
from psycopg import pq
from psycopg.abc import Buffer
from psycopg.adapt import Dumper, Loader
from psycopg.types import TypeInfo
from psycopg.types.json import set_json_dumps, set_json_loads

from vectorstore.records import INT64_MAX, INT64_MIN, LONG_DIGITS, dump_json

# -- JSON --------------------------------------------------------------------------


def _parse_int(text: str) -> int | float:
    # jsonb keeps numbers as numeric and prints 1e300 as 1 followed by 300 zeros;
    # integers outside int64 cannot have been stored as ints (the core refuses them),
    # so they were floats: read them back as floats, as the reference does.
    value = int(text)
    return value if INT64_MIN <= value <= INT64_MAX else float(text)


#: One decoder for every value (json.loads with options builds a new one per call); the one
#: with the int hook only for texts that may hold an int beyond 64 bits (19 digits or more).
_DECODER = json.JSONDecoder()
_WIDE_DECODER = json.JSONDecoder(parse_int=_parse_int)


#: LONG_DIGITS for the bytes psycopg hands to the loader.
_LONG_DIGITS_BYTES = re.compile(LONG_DIGITS.pattern.encode())


def json_loads(data: str | Buffer) -> Any:
    """A jsonb/json value as Python, read like the reference backend reads its JSON.

    orjson (~7x faster than the stdlib on metadata-sized values; a search decodes one per
    hit) reads the same values as ``json.loads``, except numbers beyond float range (jsonb's
    numeric keeps ``1e400``), which it refuses: those, and texts that may hold an int beyond
    64 bits, take the stdlib's path with the int hook."""
    if isinstance(data, str):
        long_digits = LONG_DIGITS.search(data) is not None
    else:
        long_digits = _LONG_DIGITS_BYTES.search(data) is not None
    if not long_digits:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # (a number beyond float range: the stdlib reads it, below)
    text = data if isinstance(data, str) else bytes(data).decode("utf-8")
    return (_WIDE_DECODER if long_digits else _DECODER).decode(text)


class JsonbBinaryLoader(Loader):
    """jsonb in binary (a version byte, then the JSON text), read by :func:`json_loads` with
    its common case inline: psycopg's own loader adds a Python call per value."""

    format = pq.Format.BINARY

    def load(self, data: Buffer) -> Any:
        if data[:1] != b"\x01":
            raise psycopg.DataError(f"unknown jsonb binary format version: {bytes(data[:1])!r}")
        text = data[1:]
        if _LONG_DIGITS_BYTES.search(text) is None:
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                pass  # (json_loads reads numbers beyond float range)
        return json_loads(text)


# -- vectors -----------------------------------------------------------------------

_HEADER = struct.Struct(">HH")
#: float32, big-endian: pgvector's binary element format.
_WIRE = np.dtype(">f4")


class VectorBinaryDumper(Dumper):
    """A NumPy vector in pgvector's binary format: pgvector's dumper copies it into a
    ``pgvector.Vector`` (an ``array``), byte-swaps a second copy and packs that; here one
    NumPy cast does both. Anything but a 1-D float array goes to pgvector's dumper."""

    format = pq.Format.BINARY
    #: pgvector's dumper for everything else (set with the type's oid by :func:`register`).
    fallback: type[Dumper]

    def dump(self, obj: Any) -> Buffer | None:
        if type(obj) is np.ndarray and obj.ndim == 1 and obj.dtype.kind == "f":
            return _HEADER.pack(obj.shape[0], 0) + obj.astype(_WIRE).tobytes()
        return self.fallback(self.cls, self.connection).dump(obj)


def register(conn: psycopg.AsyncConnection[Any], vector_info: TypeInfo | None) -> None:
    """JSON codecs on ``conn``, and the vector adapters when ``vector_info`` (pgvector's
    ``vector`` type) is given."""
    set_json_loads(json_loads, conn)
    set_json_dumps(dump_json, conn)
    conn.adapters.register_loader("jsonb", JsonbBinaryLoader)
    if vector_info is None:
        return
    from pgvector.psycopg.vector import VectorBinaryDumper as PgvectorBinaryDumper
    from pgvector.psycopg.vector import register_vector_info

    register_vector_info(conn, vector_info)
    fallback = type("PgvectorBinaryDumper", (PgvectorBinaryDumper,), {"oid": vector_info.oid})
    dumper = type("VectorBinaryDumper", (VectorBinaryDumper,), {"oid": vector_info.oid, "fallback": fallback})
    conn.adapters.register_dumper("numpy.ndarray", dumper)
