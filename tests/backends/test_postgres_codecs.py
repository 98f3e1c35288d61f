"""The PostgreSQL backend's own codecs and placeholder conversion, without a server."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from pgvector.psycopg.vector import VectorBinaryDumper as PgvectorBinaryDumper
from psycopg.adapt import PyFormat

from vectorstore_postgres.codecs import JsonbBinaryLoader, VectorBinaryDumper, json_loads
from vectorstore_postgres.prepared import numbered


def test_numbered_placeholders() -> None:
    assert numbered("SELECT %s, %b, %t") == ("SELECT $1, $2, $3", (PyFormat.AUTO, PyFormat.BINARY, PyFormat.TEXT))
    assert numbered("SELECT 1") == ("SELECT 1", ())
    # %% is a literal percent sign, never a placeholder, wherever it stands.
    assert numbered("SELECT '%%s' LIKE %s || '%%'") == ("SELECT '%s' LIKE $1 || '%'", (PyFormat.AUTO,))
    # Named or unknown placeholders, and a lone trailing %, are left to a cursor (which names the problem).
    assert numbered("SELECT %(name)s") is None
    assert numbered("SELECT %d") is None
    assert numbered("SELECT 5 %") is None


def _dumper() -> VectorBinaryDumper:
    fallback = type("Fallback", (PgvectorBinaryDumper,), {"oid": 16385})
    cls = type("Dumper", (VectorBinaryDumper,), {"oid": 16385, "fallback": fallback})
    return cls(np.ndarray)


@pytest.mark.parametrize("values", [
    np.array([1.5, -2.0, 3e-5, 0.0], dtype=np.float32),
    np.array([0.1, -1e30, 7.0], dtype=np.float64),  # rounded to float32, as pgvector's dumper does
    np.array([1, 2, 3], dtype=np.int64),  # (not float: pgvector's own dumper)
    np.arange(16, dtype=np.float32)[::2],  # a strided view
])
def test_vector_dumper_writes_what_pgvectors_writes(values: np.ndarray) -> None:
    ours = bytes(_dumper().dump(values) or b"")
    theirs = bytes(PgvectorBinaryDumper(np.ndarray).dump(values) or b"")
    assert ours == theirs
    assert int.from_bytes(ours[:2], "big") == values.shape[0]


def test_vector_dumper_refuses_a_matrix_like_pgvector() -> None:
    with pytest.raises(ValueError, match="ndim"):
        _dumper().dump(np.zeros((2, 2), dtype=np.float32))


def test_jsonb_binary_loader() -> None:
    loader = JsonbBinaryLoader(0)
    assert loader.load(b'\x01{"a": [1, 2.5, null, "x"]}') == {"a": [1, 2.5, None, "x"]}
    # The same reading as json_loads where orjson alone would differ.
    for text in (b'{"big": 123456789012345678901}', b'{"n": 1e400}', b'[18446744073709551615]'):
        assert loader.load(b"\x01" + text) == json_loads(text)
    assert loader.load(memoryview(b'\x01{"m": 1}')) == {"m": 1}
    with pytest.raises(psycopg.DataError, match="version"):
        loader.load(b'\x02{"a": 1}')
