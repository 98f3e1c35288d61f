"""Reading a migration source (an SQLite file) without ever changing it.

The file is opened with ``file:PATH?mode=ro&immutable=1`` so SQLite creates no ``-wal`` / ``-shm``
files and takes no locks. ``immutable`` also makes SQLite ignore a ``-wal`` file, whose committed
but not yet checkpointed pages are part of the database: when a non-empty ``-wal`` sits beside the
source, the database and its WAL are copied to a temporary directory and the copy is read instead
(the source is never opened for writing, and no file is created beside it).

Text is read as bytes (``text_factory = bytes``) together with ``typeof()``, so text holding NUL
or invalid UTF-8 (lone surrogates written by a JavaScript engine) is read exactly, and a REAL in an
INTEGER column is seen as the REAL it is.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

#: ``(typeof, value)``: ``typeof`` is SQLite's storage class (null, integer, real, text, blob);
#: text values are ``bytes`` exactly as stored.
SqlValue = tuple[str, Any]


def source_path(source: str) -> Path:
    """The file a SOURCE argument names: a path, or a ``sqlite:///relative.db`` /
    ``sqlite:////absolute.db`` URL (the sqlite backend's rule; the query is ignored)."""
    if source.startswith("sqlite:"):
        raw = urllib.parse.unquote(urllib.parse.urlsplit(source).path)
        return Path(raw[1:]) if raw.startswith("/") else Path(raw)
    return Path(source)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def affinity(decl_type: str) -> str:
    """SQLite's column affinity for a declared type (section 3.1 of the datatype docs)."""
    t = decl_type.upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@attrs.frozen
class Column:
    name: str
    decl_type: str
    notnull: bool
    default: str | None
    pk: int

    @property
    def affinity(self) -> str:
        return affinity(self.decl_type)


@attrs.frozen
class SourceTable:
    """A table of the source file, as ``sqlite_master`` and ``PRAGMA table_info`` describe it."""

    name: str
    sql: str | None
    columns: tuple[Column, ...]
    rowid: str | None  # the name to select the rowid by; None for WITHOUT ROWID tables
    virtual: bool
    rows: int
    sequence: int | None  # sqlite_sequence value (AUTOINCREMENT tables)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    def integer_pk(self) -> str | None:
        """The column that aliases the rowid (``INTEGER PRIMARY KEY``), if any."""
        pks = [c for c in self.columns if c.pk]
        if len(pks) == 1 and pks[0].decl_type.upper() == "INTEGER" and self.rowid is not None:
            return pks[0].name
        return None


@attrs.frozen
class SchemaObject:
    """A row of ``sqlite_master`` (table, view, index, trigger)."""

    rowid: int
    type: str
    name: str
    tbl_name: str
    sql: bytes | None


class SourceDB:
    """A read-only view of an SQLite file; see the module docstring for how it is opened."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"source file {str(self.path)!r} does not exist")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        wal = Path(str(self.path) + "-wal")
        self.wal_pages = wal.is_file() and wal.stat().st_size > 0
        read_path = self.path
        if self.wal_pages:
            # immutable=1 would ignore the WAL's committed pages: read a private copy instead.
            self._tmp = tempfile.TemporaryDirectory(prefix="vsmigrate-src-")
            read_path = Path(self._tmp.name) / self.path.name
            shutil.copyfile(self.path, read_path)
            shutil.copyfile(wal, str(read_path) + "-wal")
            # The copy may be changed by SQLite (WAL recovery); that is the point of copying.
            self.conn = sqlite3.connect(str(read_path), check_same_thread=False)
        else:
            uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro&immutable=1"
            # check_same_thread=False: batches are converted in a worker thread, one at a time.
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self.conn.text_factory = bytes
        self.read_path = read_path
        self.copied = self._tmp is not None

    def close(self) -> None:
        self.conn.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SourceDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------

    def _text(self, value: Any) -> str:
        return bytes(value).decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)

    def schema_objects(self) -> list[SchemaObject]:
        rows = self.conn.execute("SELECT rowid, type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid")
        return [SchemaObject(int(r[0]), self._text(r[1]), self._text(r[2]), self._text(r[3]),
                             None if r[4] is None else bytes(r[4])) for r in rows]

    def has_table(self, name: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                [name]).fetchone()
        return row is not None

    def columns(self, table: str) -> tuple[Column, ...]:
        rows = self.conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
        return tuple(Column(self._text(r[1]), self._text(r[2] or b""), bool(r[3]),
                            None if r[4] is None else self._text(r[4]), int(r[5])) for r in rows)

    def sequences(self) -> dict[str, int]:
        if not self.has_table("sqlite_sequence"):
            return {}
        return {self._text(name): int(seq) for name, seq in
                self.conn.execute("SELECT name, seq FROM sqlite_sequence") if seq is not None}

    def tables(self) -> list[SourceTable]:
        seqs = self.sequences()
        out = []
        for obj in self.schema_objects():
            if obj.type != "table":
                continue
            sql = obj.sql.decode("utf-8", "surrogateescape") if obj.sql is not None else None
            virtual = bool(sql and sql.lstrip().upper().startswith("CREATE VIRTUAL"))
            cols = () if virtual else self.columns(obj.name)
            without_rowid = bool(sql and "WITHOUT ROWID" in " ".join(sql.upper().split()))
            rowid = None
            if not virtual and not without_rowid:
                names = {c.name.lower() for c in cols}
                rowid = next((n for n in ("rowid", "_rowid_", "oid") if n not in names), None)
            rows = 0
            if not virtual:
                rows = int(self.conn.execute(f"SELECT count(*) FROM {quote(obj.name)}").fetchone()[0])
            out.append(SourceTable(obj.name, sql, cols, rowid, virtual, rows, seqs.get(obj.name)))
        return out

    # -- rows ---------------------------------------------------------------------

    def _select(self, table: SourceTable, columns: Sequence[str]) -> str:
        parts = []
        for c in columns:
            parts += [f"typeof({quote(c)})", quote(c)]
        return ", ".join(parts) if parts else "NULL"

    def _decode_row(self, row: Sequence[Any], ncols: int) -> list[SqlValue]:
        return [(row[1 + 2 * i].decode() if isinstance(row[1 + 2 * i], bytes) else str(row[1 + 2 * i]),
                 row[2 + 2 * i]) for i in range(ncols)]

    def key_expr(self, table: SourceTable) -> str:
        if table.rowid is not None:
            return table.rowid
        pk = [c.name for c in sorted(table.columns, key=lambda c: c.pk) if c.pk] or table.column_names
        return ", ".join(quote(c) for c in pk)

    def rows(self, table: SourceTable, columns: Sequence[str], *, after: int | None = None,
             limit: int = 1000) -> list[tuple[int, list[SqlValue]]]:
        """Up to ``limit`` rows with key > ``after``, in key order, as ``(key, values)``.

        The key is the rowid; a WITHOUT ROWID table has none, so its key is the row's 1-based
        position in primary-key order (stable because the source never changes)."""
        select = self._select(table, columns)
        if table.rowid is not None:
            sql = (f"SELECT {table.rowid}, {select} FROM {quote(table.name)} "
                   + ("WHERE " + table.rowid + " > ? " if after is not None else "")
                   + f"ORDER BY {table.rowid} LIMIT ?")
            params: list[Any] = ([after] if after is not None else []) + [limit]
            return [(int(r[0]), self._decode_row(r, len(columns))) for r in self.conn.execute(sql, params)]
        offset = after or 0
        sql = (f"SELECT NULL, {select} FROM {quote(table.name)} ORDER BY {self.key_expr(table)} "
               "LIMIT ? OFFSET ?")
        return [(offset + i + 1, self._decode_row(r, len(columns)))
                for i, r in enumerate(self.conn.execute(sql, [limit, offset]))]

    def rows_by_key(self, table: SourceTable, columns: Sequence[str], first: int,
                    last: int) -> dict[int, list[SqlValue]]:
        """Rows with ``first <= rowid <= last`` (rowid tables only)."""
        assert table.rowid is not None
        sql = (f"SELECT {table.rowid}, {self._select(table, columns)} FROM {quote(table.name)} "
               f"WHERE {table.rowid} BETWEEN ? AND ?")
        return {int(r[0]): self._decode_row(r, len(columns)) for r in self.conn.execute(sql, [first, last])}

    def iter_rows(self, table: SourceTable, columns: Sequence[str], *, after: int | None = None,
                  batch: int = 2000) -> Iterator[tuple[int, list[SqlValue]]]:
        while True:
            chunk = self.rows(table, columns, after=after, limit=batch)
            yield from chunk
            if len(chunk) < batch:
                return
            after = chunk[-1][0]

    def max_key(self, table: SourceTable) -> int:
        if table.rowid is None:
            return table.rows
        row = self.conn.execute(f"SELECT max({table.rowid}) FROM {quote(table.name)}").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.conn.execute(sql, list(params)).fetchone()
        return None if row is None else row[0]
