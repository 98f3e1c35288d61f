"""The migration's lossless value encodings and typed codecs (no server needed)."""

from __future__ import annotations

import json
import math

import pytest

from vectorstore.migrate import checksum, values
from vectorstore.migrate.engine import read_overflow
from vectorstore.records import dump_json
from vectorstore.schema import FieldType

HARD = [("null", None), ("integer", 0), ("integer", -(2**63)), ("integer", 2**63 - 1), ("real", 0.30000000000000004),
        ("real", -0.0), ("real", 1e16), ("real", -1e300), ("real", 5e-324), ("real", math.inf), ("real", -math.inf),
        ("real", 2.0), ("text", b""), ("text", "☃".encode()), ("text", b"nul \x00"), ("text", b"lone \xed\xa0\x80"),
        ("text", b"\xff\xfe"), ("blob", b""), ("blob", b"\x00\x01\xff")]


@pytest.mark.parametrize("value", HARD, ids=repr)
def test_holding_encoding_round_trips_through_canonical_json(value: tuple[str, object]) -> None:
    encoded = values.to_json(value)
    # what a backend stores and reads back: canonical JSON text (jsonb keeps numbers as numeric)
    stored = json.loads(dump_json(encoded))
    assert values.encode(values.from_json(stored)) == values.encode(value)


def test_reals_that_jsonb_would_turn_into_integers_are_escaped() -> None:
    assert values.to_json(("real", 1e16)) == {"$real": "1e+16"}
    assert values.to_json(("real", -0.0)) == {"$real": "-0.0"}
    assert values.to_json(("real", 2.5)) == 2.5
    assert read_overflow({"$text_b64": "bG9uZSDtoIA="}) == "lone \ud800"


def test_typed_codecs() -> None:
    assert values.convert(FieldType.FLOAT, ("integer", 12), "INTEGER", False) == (12.0, None)
    assert values.convert(FieldType.FLOAT, ("real", 12.5), "INTEGER", False) == (12.5, None)
    assert values.convert(FieldType.INT, ("real", 7.5), "INTEGER", False)[1] is not None
    assert values.convert(FieldType.TEXT, ("text", b"a\x00b"), "TEXT", False) == ("a\ufffdb", "text with NUL or "
                                                                                   "invalid UTF-8")
    assert values.convert(values.METADATA, ("integer", 42), "NUMERIC", True)[0] == {}
    assert values.convert(values.METADATA, ("text", b"{}"), "NUMERIC", True)[1] is not None  # {} reads as no metadata
    assert values.convert(values.METADATA, ("text", b'{"a": 1}'), "NUMERIC", True) == ({"a": 1}, None)
    assert values.convert(FieldType.JSON, ("integer", 42), "NUMERIC", True) == (42, None)
    assert values.convert(FieldType.TEXT_ARRAY, ("text", b'["a"]'), "TEXT", True) == (["a"], None)
    assert values.convert(FieldType.TEXT_ARRAY, ("text", b"[1]"), "TEXT", True)[1] is not None
    assert values.convert(FieldType.JSON, ("text", b'{"a": 1, "a": 2}'), "TEXT", True)[1] is not None
    # checksums: 42 stored as an integer and '42' text holding JSON agree in a JSON column
    assert checksum.encode_sqlite("integer", 42, json_column=True) == checksum.encode_sqlite("text", b"42",
                                                                                            json_column=True)
