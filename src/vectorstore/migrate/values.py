"""Lossless encodings of SQLite values, and the typed-field codecs of the AgentDB tables.

**Holding encoding** (:func:`to_json` / :func:`from_json`): any SQLite value as a JSON value that
PostgreSQL ``jsonb`` accepts and that reads back as the same value:

==========================  ==================================================================
SQLite value                JSON
==========================  ==================================================================
NULL                        ``null`` (the field is NULL)
integer                     the integer
real                        the number, when it reads back as the same double; otherwise
                            ``{"$real": "<repr>"}`` (``inf``, ``-inf``, ``-0.0``, integral
                            values written with an exponent such as ``1e+16``, which jsonb
                            would print as an integer)
text (valid UTF-8, no NUL)  the string
other text                  ``{"$text_b64": "<base64 of the stored bytes>"}``
blob                        ``{"$blob_b64": "<base64>"}``
==========================  ==================================================================

Plain values are never JSON objects, so an object is always one of the escapes.

**Typed codecs** (:func:`forward` / :func:`backward`): a value of an AgentDB column goes into its
typed field through ``forward`` (value, or a documented best-effort value plus a reason); the value
the target then holds is turned back into its checksum encoding by ``backward``. A value is
*overflowed* (kept exactly in ``agentdb_overflow``) when ``forward`` gives a reason or when
``backward(forward(v))`` does not encode like ``v``: the migration is lossless by construction, and
the validation checks it again against what the target actually stored.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from vectorstore.records import INT64_MAX, INT64_MIN
from vectorstore.schema import FieldType

from . import checksum
from .source import SqlValue

# -- holding encoding ------------------------------------------------------------------


def clean_text(raw: bytes) -> str | None:
    """``raw`` as str when it is valid UTF-8 without NUL (storable in any backend), else None."""
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def plain_real(value: float) -> bool:
    """Whether a double survives as a plain JSON number (jsonb numeric) and reads back as a double."""
    if not math.isfinite(value) or (value == 0.0 and math.copysign(1.0, value) < 0):
        return False
    return not (value.is_integer() and "e" in repr(value))


def to_json(value: SqlValue) -> Any:
    kind, v = value
    if kind == "null" or v is None:
        return None
    if kind == "integer":
        return int(v)
    if kind == "real":
        f = float(v)
        return f if plain_real(f) else {"$real": repr(f)}
    if kind == "text":
        text = clean_text(v)
        return text if text is not None else {"$text_b64": base64.b64encode(bytes(v)).decode("ascii")}
    if kind == "blob":
        return {"$blob_b64": base64.b64encode(bytes(v)).decode("ascii")}
    raise ValueError(f"unknown SQLite storage class {kind!r}")


def from_json(value: Any) -> SqlValue:
    """Inverse of :func:`to_json` (text comes back as bytes, as the source reader gives it)."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        raise ValueError(f"not a holding encoding: {value!r}")
    if isinstance(value, int):
        return ("integer", value)
    if isinstance(value, float):
        return ("real", value)
    if isinstance(value, str):
        return ("text", value.encode("utf-8"))
    if isinstance(value, Mapping) and len(value) == 1:
        (key, item), = value.items()
        if key == "$real":
            return ("real", float(item))
        if key == "$text_b64":
            return ("text", base64.b64decode(item))
        if key == "$blob_b64":
            return ("blob", base64.b64decode(item))
    raise ValueError(f"not a holding encoding: {value!r}")


def encode(value: SqlValue, json_column: bool = False) -> bytes:
    """The checksum encoding of a source value."""
    return checksum.encode_sqlite(value[0], value[1], json_column=json_column)


# -- JSON columns ------------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _storable(value: Any, depth: int = 0) -> bool:
    """What the core accepts in a json field / metadata (no NUL, no lone surrogates, int64, finite)."""
    if depth > 64:
        return False
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return INT64_MIN <= value <= INT64_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, dict):
        return all(_clean_str(k) and _storable(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v, depth + 1) for v in value)
    return False


def _clean_str(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_json(value: SqlValue) -> tuple[bool, Any]:
    """``(True, parsed)`` when a JSON column's value is JSON the target can store; ``(False, reason)``."""
    kind, v = value
    if kind in ("integer", "real"):
        return (True, v) if _storable(v) else (False, "a number JSON cannot hold")
    if kind == "blob":
        return False, "a BLOB in a JSON column"
    if kind != "text":
        return False, f"a {kind} value in a JSON column"
    try:
        text = bytes(v).decode("utf-8", "surrogatepass")
        parsed = json.loads(text, object_pairs_hook=_pairs)
    except _DuplicateKey as exc:
        return False, f"JSON with the duplicate key {str(exc)!r}"
    except (ValueError, UnicodeDecodeError):
        return False, "text that is not valid JSON"
    if not _storable(parsed):
        return False, "JSON holding NUL, a lone surrogate, NaN/Infinity or an integer beyond 64 bits"
    return True, parsed


# -- typed codecs ------------------------------------------------------------------------

#: Kinds of target slots a source column can go to besides a typed field.
METADATA = "$metadata"
ID = "$id"

_MARK_MISSING = b"?missing"


def _best_text(value: SqlValue) -> str | None:
    kind, v = value
    if kind == "text":
        return bytes(v).decode("utf-8", "replace").replace("\x00", "\ufffd")
    if kind == "integer":
        return str(v)
    if kind == "real":
        return repr(float(v))
    return None


def _parse_number(value: SqlValue) -> float | None:
    kind, v = value
    if kind in ("integer", "real"):
        return float(v)
    if kind == "text":
        try:
            f = float(bytes(v).decode("utf-8").strip())
        except (ValueError, UnicodeDecodeError):
            return None
        return f if math.isfinite(f) else None
    return None


def forward(kind: FieldType | str, value: SqlValue) -> tuple[Any, str | None]:
    """``(target value, reason)``: the value for a typed slot, and why it is not the source value
    itself (None when it is). With a reason, the target value is the documented best effort."""
    tag, v = value
    if tag == "null" or v is None:
        return ({} if kind == METADATA else None), None
    if kind == METADATA:
        ok, parsed = parse_json(value)
        if not ok:
            return {}, str(parsed)
        if not isinstance(parsed, dict):
            return {}, f"metadata that is a JSON {type(parsed).__name__}, not an object"
        return parsed, None
    if kind is FieldType.TEXT:
        if tag == "text":
            text = clean_text(v)
            if text is not None:
                return text, None
            return _best_text(value), "text with NUL or invalid UTF-8"
        return _best_text(value), f"a {tag} value in a text field"
    if kind is FieldType.INT:
        if tag == "integer":
            return int(v), None
        number = _parse_number(value)
        if number is not None and math.isfinite(number) and INT64_MIN <= round(number) <= INT64_MAX:
            return round(number), f"a {tag} value in an int field"
        return None, f"a {tag} value in an int field"
    if kind is FieldType.FLOAT:
        if tag in ("integer", "real"):
            f = float(v)
            if math.isfinite(f):
                return f, None
            return None, "a non-finite REAL"
        return _parse_number(value), f"a {tag} value in a float field"
    if kind is FieldType.JSON:
        ok, parsed = parse_json(value)
        return (parsed, None) if ok else (None, str(parsed))
    if kind is FieldType.TEXT_ARRAY:
        ok, parsed = parse_json(value)
        if not ok:
            return None, str(parsed)
        if not isinstance(parsed, list) or not all(isinstance(x, str) for x in parsed):
            return None, "tags that are not a JSON list of strings"
        return parsed, None
    raise ValueError(f"no codec for {kind!r}")


def convert(kind: FieldType | str, value: SqlValue, column_affinity: str, json_column: bool) -> tuple[Any, str | None]:
    """:func:`forward`, plus the round-trip check: a reason whenever ``backward(forward(v))`` would
    not encode like ``v``. Values that trivially round-trip skip the (costly) check; the validation
    after the copy checks every value again against what the target stored."""
    target, reason = forward(kind, value)
    if reason is not None:
        return target, reason
    tag, v = value
    if tag == "null" or v is None:
        return target, None
    if (tag == "text" and kind is FieldType.TEXT) or (tag == "integer" and kind is FieldType.INT):
        return target, None
    if kind is FieldType.FLOAT and column_affinity not in ("INTEGER", "NUMERIC") and tag == "real":
        return target, None
    if kind is FieldType.FLOAT and column_affinity in ("INTEGER", "NUMERIC") and (
            (tag == "real" and not float(v).is_integer()) or (tag == "integer" and abs(v) <= 2**53)):
        return target, None
    if kind in (FieldType.JSON, FieldType.TEXT_ARRAY) or (kind == METADATA and target):
        return target, None  # J(parsed) on both sides (duplicate keys were refused by forward)
    if backward(kind, target, column_affinity, json_column) != encode(value, json_column):
        return target, "a value whose type the field does not keep"
    return target, None


def backward(kind: FieldType | str, target: Any, column_affinity: str, json_column: bool) -> bytes:
    """The checksum encoding of the source value that the target value ``target`` stands for."""
    if kind == METADATA:
        return checksum.encode_null() if not target else checksum.encode_json(dict(target))
    if target is None:
        return checksum.encode_null()
    if json_column:
        return checksum.encode_json(target)
    if kind is FieldType.TEXT:
        return checksum.encode_text(str(target).encode("utf-8"))
    if kind is FieldType.INT:
        return checksum.encode_int(int(target))
    if kind is FieldType.FLOAT:
        f = float(target)
        if column_affinity in ("INTEGER", "NUMERIC") and f.is_integer() and INT64_MIN <= f < 2**63:
            return checksum.encode_int(int(f))
        return checksum.encode_real(f)
    return _MARK_MISSING


def missing() -> bytes:
    """An encoding no source value has: a column the target cannot account for."""
    return _MARK_MISSING


# -- embeddings -------------------------------------------------------------------------


def forward_vector(value: SqlValue, dim: int) -> tuple[npt.NDArray[np.float32] | None, str | None]:
    kind, v = value
    if kind == "null" or v is None:
        return None, "a NULL embedding"
    if kind != "blob":
        return None, f"a {kind} embedding (AgentDB stores raw float32 BLOBs)"
    raw = bytes(v)
    if len(raw) != dim * 4:
        return None, f"an embedding of {len(raw)} bytes (expected {dim * 4} for {dim} dimensions)"
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if not np.isfinite(vector).all():
        return None, "an embedding holding NaN or infinity"
    if not vector.any():
        return None, "an all-zero embedding (no direction under cosine)"
    return vector, None


def backward_vector(vector: Any) -> bytes:
    if vector is None:
        return _MARK_MISSING
    return checksum.encode_blob(np.asarray(vector, dtype="<f4").tobytes())
