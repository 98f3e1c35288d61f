"""The PostgreSQL backend's JSON reader (jsonb metadata, one value per search hit) reads every
value exactly as the stdlib reading it replaced: the same values of the same types, ints beyond
64 bits as floats. No server needed: these are the texts PostgreSQL sends."""

from __future__ import annotations

import json
import math
import random
import struct

import pytest

from vectorstore.records import INT64_MAX, INT64_MIN
from vectorstore_postgres.codecs import json_loads as _json_loads


def _reference(text: str) -> object:
    """The stdlib's reading, with the backend's rule for ints outside int64 (they were floats)."""
    def parse_int(digits: str) -> int | float:
        value = int(digits)
        return value if INT64_MIN <= value <= INT64_MAX else float(digits)

    return json.loads(text, parse_int=parse_int)


def _same(a: object, b: object) -> bool:
    """Equal values of the same types all the way down (1 and 1.0 differ; NaN never occurs)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isinf(a):
        return a == b
    return a == b


def _texts() -> list[str]:
    rng = random.Random(20261206)
    texts = [
        '{"n": 12345}', '{}', '[]', '{"a": null, "b": true, "c": false}',
        '{"s": "caf\\u00e9 \\ud83c\\udfac \\"quoted\\" \\\\ back\\nslash", "e": ""}',
        '{"deep": {"x": [1, [2, [3, {"y": -0.0}]]]}}',
        # jsonb prints numbers from numeric: whole floats without an exponent, 1e300 as 301 digits.
        f'{{"big": 1{"0" * 300}, "small": 0.{"0" * 320}1}}',
        '{"inf": 1e400, "ninf": -1e400, "tiny": 1e-400}',
        f'{{"a": {INT64_MAX}, "b": {INT64_MIN}, "c": {INT64_MAX + 1}, "d": {INT64_MIN - 1}}}',
        f'{{"u": {2**64 - 1}, "v": {2**64}, "w": {2**70}}}',
        '{"f": 0.30000000000000004, "g": 1.7976931348623157e308, "h": 5e-324, "i": 2.2250738585072014e-308}',
        '{"k": 100000000000000000000.0, "l": 123456789012345678}',
    ]
    for _ in range(2000):  # every kind of double, as Python and as PostgreSQL's numeric print it
        value = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(value):
            texts.append(f'{{"x": {value!r}, "y": [{value!r}, {-value!r}]}}')
            texts.append(f'{{"x": {value:.25g}}}')
    for _ in range(1000):  # decimal strings longer than a double holds, near rounding boundaries
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40)))
        texts.append(f'{{"d": {digits.lstrip("0") or "0"}.{digits}e{rng.randint(-330, 310)}}}')
        texts.append(f'{{"i": {"-" if rng.random() < 0.5 else ""}{digits.lstrip("0") or "0"}}}')
    return texts


@pytest.mark.parametrize("as_bytes", [True, False])
def test_json_reader_reads_every_value_like_the_stdlib(as_bytes: bool) -> None:
    for text in _texts():
        expected = _reference(text)
        got = _json_loads(text.encode() if as_bytes else text)
        assert _same(got, expected), text
