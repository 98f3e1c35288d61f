"""Records and hits, and the one place where caller input is validated.

:func:`prepare_batch` turns whatever the caller passed (``Record`` objects or
plain dicts) into a :class:`RecordBatch`: unique ids, a C-contiguous float32
matrix of finite vectors, fields normalised to their declared types, and
metadata that survives a JSON round trip. Backends only ever see a batch that
passed these checks, so a bad record can never leave a batch half-written.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from vectorstore.errors import DimensionMismatch, DuplicateId, InvalidRecord, InvalidVector
from vectorstore.schema import CollectionSpec, FieldType, IdType, Metric

RecordId = str | int
Vector = npt.NDArray[np.float32]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_TEXT_ID_LENGTH = 512


def _vector_eq(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


@attrs.frozen(slots=True)
class Record:
    """A record: ``(id, vector, fields, metadata)``.

    ``id`` may be ``None`` on write: a UUID is generated for text ids, the next id is
    allocated for int ids. ``vector`` may be ``None``: the record is stored, read, filtered
    and counted, but never a search hit (AgentDB allows rows without an embedding). In a
    collection without vectors (``dim=None``) it is always ``None`` (a dict record may leave
    the ``'vector'`` key out there). Records read back carry ``vector`` as a float32 NumPy
    array, or ``None``.
    """

    id: RecordId | None
    vector: Any = attrs.field(eq=attrs.cmp_using(eq=_vector_eq), repr=False)
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    metadata: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class Hit:
    """One search result. Hits come nearest first; ties are ordered by id."""

    id: RecordId
    distance: float
    similarity: float
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    vector: Any = attrs.field(default=None, eq=attrs.cmp_using(eq=_vector_eq), repr=False)


@attrs.frozen(slots=True)
class RecordBatch:
    """A validated batch, ready for a backend to write."""

    spec: CollectionSpec
    ids: list[RecordId]
    #: shape (n, dim), float32, C-contiguous, finite; zeros where ``present`` is False. A collection
    #: without vectors (``spec.dim is None``): shape (n, 0), and ``present`` all False.
    vectors: Vector
    fields: list[dict[str, Any]]  # every declared field present; None means missing
    metadata: list[dict[str, Any]]
    present: npt.NDArray[np.bool_] | None = None  # which records have a vector; None: all of them
    #: ``metadata`` as canonical JSON, when validation already produced it.
    metadata_texts: list[str] | None = attrs.field(default=None, eq=False, repr=False)

    def has_vector(self, i: int) -> bool:
        return self.present is None or bool(self.present[i])

    @property
    def all_vectors(self) -> bool:
        return self.present is None or bool(self.present.all())

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def missing_ids(self) -> int:
        """How many records still wait for an allocated id."""
        return sum(1 for rid in self.ids if rid is None)

    def with_allocated_ids(self, new_ids: Sequence[int]) -> RecordBatch:
        """This batch with the missing ids filled, in order, from ``new_ids``."""
        fresh = iter(new_ids)
        return attrs.evolve(self, ids=[next(fresh) if rid is None else rid for rid in self.ids])

    def metadata_json(self) -> list[str]:
        """Each record's metadata as canonical JSON (see :func:`dump_json`)."""
        if self.metadata_texts is not None and len(self.metadata_texts) == len(self.metadata):
            return self.metadata_texts
        return [dump_json(m) for m in self.metadata]

    def norms(self) -> npt.NDArray[np.float64]:
        result: npt.NDArray[np.float64] = np.linalg.norm(self.vectors.astype(np.float64), axis=1)
        return result


#: One encoder for every call (json.dumps with options builds a new one each time).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def dump_json(value: Any) -> str:
    """Canonical JSON text used by every backend (sorted keys, no NaN)."""
    return _ENCODER.encode(value)


# -- ids -----------------------------------------------------------------------


def check_id(value: object, id_type: IdType, where: str = "record") -> RecordId:
    """Validate one id for a collection with ``id_type`` ids."""
    if id_type is IdType.TEXT:
        if not isinstance(value, str):
            raise InvalidRecord(
                f"{where}: id {value!r} is a {type(value).__name__}, but this collection has text ids; "
                "pass ids as str (or create the collection with id_type='int')"
            )
        if not value or len(value) > MAX_TEXT_ID_LENGTH:
            raise InvalidRecord(f"{where}: text ids must be 1 to {MAX_TEXT_ID_LENGTH} characters, got {value!r}")
        _check_text(value, f"{where}: id")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidRecord(
            f"{where}: id {value!r} is a {type(value).__name__}, but this collection has int ids; pass int ids"
        )
    ivalue = int(value)
    if not INT64_MIN <= ivalue <= INT64_MAX:
        raise InvalidRecord(f"{where}: id {ivalue} does not fit in a signed 64-bit integer")
    return ivalue


def check_ids(values: Iterable[object], spec: CollectionSpec) -> list[RecordId]:
    if isinstance(values, (str, bytes, int)):
        raise InvalidRecord(f"ids must be a list of ids, got a single {type(values).__name__}; wrap it in a list")
    if isinstance(values, Mapping) or not isinstance(values, Iterable):
        raise InvalidRecord(f"ids must be a list of ids, got {type(values).__name__} {values!r}")
    return [check_id(v, spec.id_type, f"{spec.name}: ids[{i}]") for i, v in enumerate(values)]


def _check_text(value: str, where: str) -> None:
    if "\x00" in value:
        raise InvalidRecord(f"{where} contains a NUL character (U+0000), which PostgreSQL cannot store; remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRecord(
            f"{where} contains a lone surrogate and is not valid Unicode text; fix the string's encoding"
        ) from None


# -- vectors -------------------------------------------------------------------


_ADD = np.add.reduce
_ABS = np.abs


def coerce_vector(value: object, dim: int, metric: Metric, where: str = "vector") -> Vector:
    """Validate one vector; return it as float32 (a copy: never the caller's array)."""
    if type(value) is np.ndarray and value.shape == (dim,) and value.dtype == np.float32:
        # The common query: a float32 NumPy vector. coerce_vectors' checks, without its stacking
        # (anything they would refuse goes on to coerce_vectors, for its message).
        out: Vector = value.astype(np.float32)
        # One C-level reduction instead of isfinite/all/any (whose Python wrappers cost more than
        # the checks in a ~1 ms search): the sum of magnitudes, in float64 so that it cannot
        # overflow, is finite only if every element is, and above 0 only if one is not zero.
        # A zero vector then takes the precise path below, which accepts it but for cosine.
        if 0.0 < float(_ADD(_ABS(out), dtype=np.float64)) < math.inf:
            return out
    row: Vector = coerce_vectors([value], dim, metric, [where])[0]
    return row


def coerce_vectors(values: Sequence[object], dim: int, metric: Metric,
                   labels: Sequence[str] | None = None) -> Vector:
    """Validate vectors and return them as one ``(n, dim)`` float32 matrix.

    Rejects empty, ragged, non-numeric (including bool and strings), NaN,
    infinite (also after rounding to float32) and, for cosine, all-zero vectors.
    """
    n = len(values)
    if n == 0:
        return np.empty((0, dim), dtype=np.float32)
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        arr = None
    if arr is None or arr.ndim != 2 or arr.dtype.kind not in "iuf" or arr.shape[1] != dim or _has_bools(values):
        # Slow path only to name the culprit precisely.
        for i, v in enumerate(values):
            _check_one_vector(v, dim, labels[i] if labels else f"vectors[{i}]")
        raise InvalidVector("vectors could not be read as one numeric matrix")  # pragma: no cover
    if arr.dtype == np.float32:
        # No float64 round trip (nothing can overflow); a copy never aliases the caller's array.
        out = np.array(arr, dtype=np.float32, order="C", copy=True if isinstance(values, np.ndarray) else None)
    else:
        wide = arr.astype(np.float64, copy=False)
        with np.errstate(over="ignore"):  # overflow becomes inf, reported below
            out = np.ascontiguousarray(wide, dtype=np.float32)
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        label = labels[i] if labels else f"vectors[{i}]"
        raise InvalidVector(
            f"{label} holds NaN or infinity (or a value too large for float32); every element must be finite"
        )
    if metric is Metric.COSINE:
        zero = ~out.any(axis=1)
        if zero.any():
            i = int(np.argmax(zero))
            label = labels[i] if labels else f"vectors[{i}]"
            raise InvalidVector(
                f"{label} is all zeros, which has no direction under the cosine metric; "
                "store a non-zero vector or use metric='l2' / 'inner_product'"
            )
    return out


def _has_bools(values: Sequence[object]) -> bool:
    """NumPy silently turns True into 1.0; a bool in a vector is almost always a caller's bug."""
    for v in values:
        if isinstance(v, np.ndarray):
            if v.dtype.kind == "b":
                return True
        elif isinstance(v, (list, tuple)) and any(type(x) is bool or type(x) is np.bool_ for x in v):
            return True
    return False


def _check_one_vector(value: object, dim: int, label: str) -> None:
    if isinstance(value, (str, bytes)) or value is None:
        raise InvalidVector(f"{label} must be a sequence of numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:
        raise InvalidVector(f"{label} is not a flat sequence of numbers ({exc})") from None
    if arr.ndim != 1:
        raise InvalidVector(f"{label} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise InvalidVector(f"{label} is empty; vectors need {dim} numbers")
    if arr.dtype.kind not in "iuf" or _has_bools([value]):
        raise InvalidVector(
            f"{label} must hold only numbers (int or float), got elements of type {arr.dtype} "
            f"(first element {arr.flat[0]!r})"
        )
    if arr.shape[0] != dim:
        raise DimensionMismatch(f"{label} has {arr.shape[0]} dimensions, but the collection expects {dim}")


# -- fields and metadata -------------------------------------------------------


def coerce_field(name: str, kind: FieldType, value: object, where: str) -> Any:
    """Normalise one field value to its declared type; ``None`` stays ``None``."""
    if value is None:
        return None
    label = f"{where}: field {name!r} ({kind.value})"
    if kind is FieldType.TEXT:
        if not isinstance(value, str):
            raise InvalidRecord(f"{label} must be str, got {type(value).__name__} {value!r}")
        _check_text(value, label)
        return value
    if kind is FieldType.INT:
        return _coerce_int(value, label)
    if kind is FieldType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise InvalidRecord(f"{label} must be a number, got {type(value).__name__} {value!r}")
        fvalue = float(value)
        if not math.isfinite(fvalue):
            raise InvalidRecord(f"{label} must be finite, got {value!r}")
        return fvalue
    if kind is FieldType.BOOL:
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidRecord(f"{label} must be True or False, got {type(value).__name__} {value!r}")
        return bool(value)
    if kind is FieldType.DATE:
        return coerce_date(value, label)
    if kind is FieldType.TIMESTAMP:
        return coerce_timestamp(value, label)
    if kind is FieldType.JSON:
        _check_json(value, label)
        return json.loads(dump_json(value))
    # arrays
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)):
        raise InvalidRecord(f"{label} must be a list, got {type(value).__name__} {value!r}")
    items = list(value)
    if kind is FieldType.INT_ARRAY:
        return [_coerce_int(v, f"{label}[{i}]") for i, v in enumerate(items)]
    out: list[str] = []
    for i, v in enumerate(items):
        if not isinstance(v, str):
            raise InvalidRecord(f"{label}[{i}] must be str, got {type(v).__name__} {v!r}")
        _check_text(v, f"{label}[{i}]")
        out.append(v)
    return out


def _coerce_int(value: object, label: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidRecord(f"{label} must be an int, got {type(value).__name__} {value!r}")
    ivalue = int(value)
    if not INT64_MIN <= ivalue <= INT64_MAX:
        raise InvalidRecord(f"{label} = {ivalue} does not fit in a signed 64-bit integer")
    return ivalue


def coerce_date(value: object, label: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise InvalidRecord(f"{label} must be a date, got a datetime {value!r}; pass value.date()")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidRecord(f"{label} must be a datetime.date or an ISO date string 'YYYY-MM-DD', got {value!r}")


def coerce_timestamp(value: object, label: str) -> dt.datetime:
    """Timestamps are stored in UTC with microsecond precision; naive values are taken as UTC."""
    parsed: dt.datetime | None = None
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        raise InvalidRecord(f"{label} must be a datetime.datetime or an ISO 8601 string, got {value!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise InvalidRecord(f"{label}: {value!r} is outside the years 1-9999 once converted to UTC; timestamps "
                            "are stored in UTC") from None


def _check_json(value: Any, label: str, depth: int = 0) -> None:
    if depth > 64:
        raise InvalidRecord(f"{label} is nested more than 64 levels deep")
    if value is None or isinstance(value, (bool, int)):
        if isinstance(value, int) and not isinstance(value, bool) and not INT64_MIN <= value <= INT64_MAX:
            raise InvalidRecord(f"{label} holds the integer {value}, which does not fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRecord(f"{label} holds {value!r}; JSON cannot represent NaN or infinity")
        return
    if isinstance(value, str):
        _check_text(value, label)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRecord(f"{label} has the key {key!r}; JSON object keys must be str")
            _check_text(key, f"{label} key {key!r}")
            _check_json(item, f"{label}[{key!r}]", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{label}[{i}]", depth + 1)
        return
    raise InvalidRecord(f"{label} holds a {type(value).__name__} ({value!r}), which is not JSON")


def coerce_metadata(value: object, where: str) -> dict[str, Any]:
    return coerce_metadata_text(value, where)[0]


def coerce_metadata_text(value: object, where: str) -> tuple[dict[str, Any], str]:
    """Validated metadata (a deep, JSON-normalised copy) and its canonical JSON text."""
    if value is None:
        return {}, "{}"
    if not isinstance(value, Mapping):
        raise InvalidRecord(f"{where}: metadata must be a dict, got {type(value).__name__}")
    # Fast path, all in C: serialise, parse back, compare. Anything the JSON text cannot show
    # to be fine (a non-str key reads back different, NaN or an unknown type fails to dump, a
    # NUL, a possibly too large int, deep nesting, a lone surrogate) takes the precise check.
    try:
        text: str | None = dump_json(value)
    except (TypeError, ValueError, RecursionError):
        text = None
    if (text is None or "\\u0000" in text or LONG_DIGITS.search(text) is not None
            or text.count("{") + text.count("[") > 64 or not _encodes(text)):
        _check_json(value, f"{where}: metadata")  # raises, naming the culprit, or passes
        text = dump_json(value)
    result: dict[str, Any] = json.loads(text)
    if result != value:
        _check_json(value, f"{where}: metadata")  # (tuples read back as lists: fine)
    return result, text


#: 19 or more digits in a row: maybe an int beyond 64 bits.
LONG_DIGITS = re.compile(r"[0-9]{19,}")


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- batches -------------------------------------------------------------------


def _unpack(item: object, index: int, vectorless: bool = False) -> tuple[object, object, object, object]:
    """``(id, vector, fields, metadata)`` of a caller's record. A dict record must name its
    ``'vector'`` (None for none), except in a collection without vectors (``vectorless``)."""
    if isinstance(item, Record):
        return item.id, item.vector, item.fields, item.metadata
    if isinstance(item, Mapping):
        unknown = set(item) - {"id", "vector", "fields", "metadata"}
        if unknown:
            raise InvalidRecord(
                f"records[{index}] has unknown keys {sorted(unknown)}; a record dict has the keys "
                "'id', 'vector', 'fields' and 'metadata'"
            )
        if "vector" not in item and not vectorless:
            raise InvalidRecord(f"records[{index}] has no 'vector'; pass 'vector': None to store a record "
                                "without one")
        return item.get("id"), item.get("vector"), item.get("fields"), item.get("metadata")
    raise InvalidRecord(
        f"records[{index}] is a {type(item).__name__}; pass vectorstore.Record(...) or a dict with "
        "'id', 'vector', 'fields', 'metadata'"
    )


def prepare_batch(spec: CollectionSpec, records: Iterable[object], *,
                  allocate: bool = False, offset: int = 0) -> RecordBatch:
    """Validate caller records for ``spec``. Raises before anything is written.

    With ``allocate=True``, records of an int-id collection may omit the id: their ``ids``
    entry is ``None`` until :meth:`RecordBatch.with_allocated_ids` fills it. ``offset``: the
    position of the first record in the caller's list (errors name ``records[offset + i]``).

    Each record first takes a fast path (exact types that need no conversion: a plain int
    or str id, field values already of their declared type, flat metadata of str keys and
    JSON scalars); anything else takes the precise path, which converts what it may and
    names the culprit of what it must refuse. Both accept and refuse the same records.
    """
    if isinstance(records, (Record, Mapping)):
        raise InvalidRecord("pass a list of records, not a single record; wrap it in a list")
    if isinstance(records, (str, bytes)) or not isinstance(records, Iterable):
        raise InvalidRecord(f"pass a list of records, got {type(records).__name__} {records!r}")
    items = list(records)
    ids: list[RecordId] = []
    raw_vectors: list[object] = []
    fields: list[dict[str, Any]] = []
    metadata: list[dict[str, Any]] = []
    texts: list[str] = []
    checks = [(name, _FIELD_FAST.get(kind)) for name, kind in spec.fields.items()]
    names = frozenset(spec.fields)
    text_ids = spec.id_type is IdType.TEXT
    vectorless = spec.dim is None
    for i, item in enumerate(items):
        record = _fast_record(item, checks, names, text_ids, vectorless)
        if record is None:
            record = _precise_record(spec, item, offset + i, allocate)
        rid, vector, rfields, meta, text = record
        ids.append(rid)  # type: ignore[arg-type]  # None: filled by with_allocated_ids
        raw_vectors.append(vector)
        fields.append(rfields)
        metadata.append(meta)
        texts.append(text)
    _check_unique([rid for rid in ids if rid is not None])
    labels = _VectorLabels(ids, offset)
    present = np.array([v is not None for v in raw_vectors], dtype=bool)
    if spec.dim is None:
        if present.any():
            i = int(np.argmax(present))
            raise DimensionMismatch(
                f"{labels[i]}: collection {spec.name!r} has no vectors (it was created with dim=None); leave "
                "'vector' out or pass None, or keep vectors in a collection created with dim=N")
        return RecordBatch(spec=spec, ids=ids, vectors=np.zeros((len(ids), 0), dtype=np.float32), fields=fields,
                           metadata=metadata, present=present, metadata_texts=texts)
    if present.all():
        return RecordBatch(spec=spec, ids=ids, vectors=coerce_vectors(raw_vectors, spec.dim, spec.metric, labels),
                           fields=fields, metadata=metadata, metadata_texts=texts)
    vectors = np.zeros((len(raw_vectors), spec.dim), dtype=np.float32)
    if present.any():
        index = np.flatnonzero(present)
        vectors[index] = coerce_vectors([raw_vectors[i] for i in index], spec.dim, spec.metric,
                                        [labels[i] for i in index])
    return RecordBatch(spec=spec, ids=ids, vectors=vectors, fields=fields, metadata=metadata, present=present,
                       metadata_texts=texts)


#: Bytes of vectors in one part of a streamed write (:class:`BatchParts`, and the parts a
#: backend sends): about what a socket buffer holds, so the backend hands a part over without
#: waiting for the server and the server stores it while the next part is checked. Parts of
#: 2,000 rows (3 MB at 384 dims) made each side wait for the other: measured, ~160-row parts
#: loaded 10-20 % faster at 384 dims, and no slower at 768.
PART_BYTES = 256 * 1024


#: Records in one part of a streamed write to a collection without vectors (fields and metadata
#: only: taken as ~256 bytes a record).
VECTORLESS_PART_ROWS = PART_BYTES // 256


def part_rows(dim: int | None) -> int:
    """Records in one part of a streamed write of ``dim``-dimensional vectors (``None``: a
    collection without vectors)."""
    if dim is None:
        return VECTORLESS_PART_ROWS
    return max(16, PART_BYTES // (4 * dim))


@attrs.frozen(slots=True)
class BatchParts:
    """A large write, validated a part at a time: a backend that streams it (see
    ``write_parts`` in the backend SPI) sends one part while the next is being checked.

    The ids are checked (and found unique) up front by :func:`batch_ids`; every other check
    runs as the parts are iterated, so a bad record raises while the backend is writing: the
    backend writes every part in one transaction, and nothing is written.
    """

    spec: CollectionSpec
    ids: list[RecordId]
    items: list[object]
    part_rows: int = attrs.field(default=attrs.Factory(lambda self: part_rows(self.spec.dim), takes_self=True))

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[RecordBatch]:
        for start in range(0, len(self.items), self.part_rows):
            yield prepare_batch(self.spec, self.items[start:start + self.part_rows], offset=start)


def batch_ids(spec: CollectionSpec, items: list[object]) -> list[RecordId] | None:
    """The checked ids of a list of records, or None if a record has no id (the whole batch
    then goes through :func:`prepare_batch`, which allocates). Raises as prepare_batch does
    for a bad id or an id given twice."""
    text_ids = spec.id_type is IdType.TEXT
    ids: list[RecordId] = []
    for i, item in enumerate(items):
        rid = item.get("id") if type(item) is dict else None
        if not _fast_id(rid, text_ids):
            rid = _unpack(item, i, spec.dim is None)[0]
            if rid is None:
                return None
            rid = check_id(rid, spec.id_type, f"records[{i}]")
        ids.append(rid)  # type: ignore[arg-type]  # (narrowed by the checks above)
    _check_unique(ids)
    return ids


def _check_unique(ids: list[RecordId]) -> None:
    """Raise DuplicateId naming every repeated occurrence, if an id appears twice."""
    if len(set(ids)) == len(ids):
        return
    seen: set[RecordId] = set()
    dupes: list[RecordId] = []
    for rid in ids:
        if rid in seen:
            dupes.append(rid)
        seen.add(rid)
    raise DuplicateId(f"ids {sorted(set(dupes), key=str)[:10]!r} appear more than once in this batch; "
                      "each id may appear once per call", ids=dupes)


_Prepared = tuple[RecordId | None, object, dict[str, Any], dict[str, Any], str]


def _label(index: int, rid: RecordId | None) -> str:
    return f"records[{index}] (id {rid!r})" if rid is not None else f"records[{index}] (new id)"


class _VectorLabels(Sequence[str]):
    """``records[i] (id ...) vector`` for the i-th record, built only when an error needs it."""

    def __init__(self, ids: Sequence[RecordId | None], offset: int = 0) -> None:
        self._ids = ids
        self._offset = offset

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return f"{_label(self._offset + i, self._ids[i])} vector"


def _precise_record(spec: CollectionSpec, item: object, i: int, allocate: bool) -> _Prepared:
    rid, vector, rfields, rmeta = _unpack(item, i, spec.dim is None)
    where = f"records[{i}]"
    if rid is None and spec.id_type is IdType.INT:
        if not allocate:
            raise InvalidRecord(f"{where} has no id; pass an int id, or use insert()/upsert() on the "
                                "collection, which allocate ids")
    else:
        rid = check_id(uuid.uuid4().hex if rid is None else rid, spec.id_type, where)
    label = _label(i, rid)
    fields = _coerce_fields(spec, rfields, label)
    meta, text = coerce_metadata_text(rmeta, label)
    return rid, vector, fields, meta, text


def _fast_text(value: str) -> bool:
    return "\x00" not in value and (value.isascii() or _encodes(value))


def _fast_int(value: object) -> bool:
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def _fast_id(rid: object, text_ids: bool) -> bool:
    """A plain id that check_id would return unchanged."""
    if text_ids:
        return type(rid) is str and 0 < len(rid) <= MAX_TEXT_ID_LENGTH and _fast_text(rid)
    return _fast_int(rid)


_FIELD_FAST: dict[FieldType, Any] = {
    FieldType.TEXT: lambda v: type(v) is str and _fast_text(v),
    FieldType.INT: _fast_int,
    FieldType.FLOAT: lambda v: type(v) is float and math.isfinite(v),
    FieldType.BOOL: lambda v: type(v) is bool,
}
_RECORD_KEYS = frozenset(("id", "vector", "fields", "metadata"))
_JSON_SCALARS = frozenset((str, int, float, bool, type(None)))
_STR = frozenset((str,))


def _fast_record(item: object, checks: list[tuple[str, Any]], names: frozenset[str],
                 text_ids: bool, vectorless: bool = False) -> _Prepared | None:
    """A dict record whose values need no conversion, validated; None sends it to the precise path."""
    if type(item) is not dict or not item.keys() <= _RECORD_KEYS or ("vector" not in item and not vectorless):
        return None
    rid = item.get("id")
    if not _fast_id(rid, text_ids):
        return None
    raw_fields = item.get("fields")
    if raw_fields is None:
        raw_fields = {}
    elif type(raw_fields) is not dict or not raw_fields.keys() <= names:
        return None
    rfields: dict[str, Any] = {}
    for name, check in checks:
        value = raw_fields.get(name)
        if value is not None and (check is None or not check(value)):
            return None
        rfields[name] = value
    meta = item.get("metadata")
    if meta is None:
        return rid, item.get("vector"), rfields, {}, "{}"
    if type(meta) is not dict or not _STR.issuperset(map(type, meta)) or not _JSON_SCALARS.issuperset(
            map(type, meta.values())):
        return None
    try:
        text = dump_json(meta)
    except ValueError:  # NaN or infinity
        return None
    if "\\u0000" in text or LONG_DIGITS.search(text) is not None or not _encodes(text):
        return None
    return rid, item.get("vector"), rfields, dict(meta), text


def _coerce_fields(spec: CollectionSpec, raw: object, where: str) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InvalidRecord(f"{where}: fields must be a dict, got {type(raw).__name__}")
    unknown = [k for k in raw if k not in spec.fields]
    if unknown:
        known = ", ".join(spec.fields) or "(none)"
        raise InvalidRecord(
            f"{where}: unknown field(s) {unknown!r}; collection {spec.name!r} declares: {known}. "
            "Put free-form data in metadata instead"
        )
    return {name: coerce_field(name, kind, raw.get(name), where) for name, kind in spec.fields.items()}
