"""One statement at a time on a held connection, through psycopg's libpq layer.

A search is one prepared statement and one result, thousands of times a second. psycopg's
cursor does per call what such a statement does not need again: it converts the query's
placeholders, consults its prepare manager, runs a generator under the connection's lock and
waits on an ``asyncio.Event``, then sets up its result. :class:`PreparedStatements` does
what is left: it dumps the parameters and loads the rows with the connection's own adapters
(a psycopg ``Transformer``: the same dumpers and loaders as a binary cursor), prepares each
statement once per connection, sends it with ``psycopg.pq`` (psycopg's libpq binding) and
raises psycopg's own error classes. Measured on 10k x 768 with 8 concurrent clients: ~0.06 ms
less client CPU per search (docs/benchmarks.md, "Profiling").

Only for a caller holding the connection alone and outside a transaction (a pooled
checkout). A call interrupted while its statement runs (the task cancelled, a timeout) asks
the server to cancel the statement, as psycopg's cursor does, and leaves the connection busy,
which the pool then discards.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

#: Statements prepared per connection before the least recently used is deallocated
#: (psycopg's own prepare manager keeps 100).
MAX_PREPARED = 128
#: Seconds an interrupted call waits for the server to take its cancel request.
CANCEL_TIMEOUT = 5.0

_PERCENT = re.compile(r"%(.)", re.DOTALL)


#: psycopg's positional placeholders and the format each asks for.
_FORMATS = {"s": PyFormat.AUTO, "b": PyFormat.BINARY, "t": PyFormat.TEXT}


@functools.lru_cache(maxsize=1024)
def numbered(statement: str) -> tuple[str, tuple[PyFormat, ...]] | None:
    """``statement`` with psycopg's positional placeholders (``%s``, ``%b``, ``%t``) as ``$1,
    $2, ...`` and ``%%`` as ``%``, and the format each parameter is to be sent in; None when
    it has any other ``%`` sequence (named placeholders: such a statement goes through a
    cursor)."""
    parts: list[str] = []
    formats: list[PyFormat] = []
    end = 0
    for found in _PERCENT.finditer(statement):
        parts.append(statement[end:found.start()])
        char = found.group(1)
        if char in _FORMATS:
            formats.append(_FORMATS[char])
            parts.append(f"${len(formats)}")
        elif char == "%":
            parts.append("%")
        else:
            return None
        end = found.end()
    tail = statement[end:]
    if "%" in tail:  # a lone trailing "%"
        return None
    parts.append(tail)
    return "".join(parts), tuple(formats)


class PreparedStatements:
    """A connection's prepared statements, run without a cursor (see the module's docstring)."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self._tx = Transformer(conn)
        self._encoding = conn.info.encoding
        #: (statement, parameter types) -> name, least recently used first.
        self._names: dict[tuple[str, tuple[int, ...]], bytes] = {}
        self._counter = 0

    async def fetch(self, statement: str, params: Sequence[Any], *,
                    prepare: bool = True) -> list[tuple[Any, ...]] | None:
        """The rows of ``statement`` run with ``params``; None when the statement has other
        than positional placeholders (the caller then uses a cursor). With ``prepare=False``
        the statement goes unnamed, so the server plans it for these values every time."""
        converted = numbered(statement)
        if converted is None:
            return None
        query, wanted = converted
        if len(wanted) != len(params):
            raise psycopg.ProgrammingError(
                f"the statement has {len(wanted)} placeholders but {len(params)} parameters were passed")
        tx = self._tx
        values = tx.dump_sequence(params, wanted)
        key = (query, tx.types or ())
        formats = tx.formats
        if not prepare:
            self._conn.pgconn.send_query_params(query.encode(self._encoding), values, param_types=key[1],
                                                param_formats=formats, result_format=pq.Format.BINARY)
            result = self._check(await self._results(), pq.ExecStatus.TUPLES_OK)
            tx.set_pgresult(result)
            return tx.load_rows(0, result.ntuples, tuple)
        try:
            name = await self._prepared(key)
            result = await self._run(name, values, formats)
        except psycopg.errors.InvalidSqlStatementName:
            # The server lost this connection's statements (psycopg sends DEALLOCATE ALL after
            # a rollback; a DISCARD ALL does the same): prepare again, once.
            self._names.clear()
            name = await self._prepared(key)
            result = await self._run(name, values, formats)
        tx.set_pgresult(result)
        return tx.load_rows(0, result.ntuples, tuple)

    async def _prepared(self, key: tuple[str, tuple[int, ...]]) -> bytes:
        name = self._names.pop(key, None)
        if name is not None:
            self._names[key] = name  # (now the most recently used)
            return name
        pgconn = self._conn.pgconn
        if len(self._names) >= MAX_PREPARED:
            oldest = next(iter(self._names))
            pgconn.send_query(b"DEALLOCATE " + self._names.pop(oldest))
            self._check(await self._results(), pq.ExecStatus.COMMAND_OK)
        self._counter += 1
        name = f"vs_{self._counter}".encode()
        pgconn.send_prepare(name, key[0].encode(self._encoding), param_types=key[1])
        self._check(await self._results(), pq.ExecStatus.COMMAND_OK)
        self._names[key] = name
        return name

    async def _run(self, name: bytes, values: Sequence[bytes | bytearray | memoryview | None],
                   formats: Sequence[pq.Format] | None) -> pq.abc.PGresult:
        pgconn = self._conn.pgconn
        pgconn.send_query_prepared(name, values, param_formats=formats, result_format=pq.Format.BINARY)
        return self._check(await self._results(), pq.ExecStatus.TUPLES_OK)

    async def _results(self) -> list[pq.abc.PGresult]:
        try:
            return await _read_results(self._conn.pgconn)
        except BaseException:
            if self._conn.pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
                # Interrupted mid-statement: stop it on the server rather than let it run on
                # for nobody (up to statement_timeout); the pool discards the connection.
                with contextlib.suppress(Exception):
                    await self._conn.cancel_safe(timeout=CANCEL_TIMEOUT)
            raise

    def _check(self, results: list[pq.abc.PGresult], expected: pq.ExecStatus) -> pq.abc.PGresult:
        for result in results:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                raise psycopg.errors.error_from_result(result, encoding=self._encoding)
        if len(results) != 1 or results[0].status != expected:
            statuses = ", ".join(pq.ExecStatus(r.status).name for r in results) or "none"
            raise psycopg.InternalError(f"expected one {expected.name} result, got: {statuses}")
        return results[0]


async def _read_results(pgconn: pq.abc.PGconn) -> list[pq.abc.PGresult]:
    """Send what is buffered, then every result of the statement sent (libpq, non-blocking)."""
    while pgconn.flush():
        await _ready(pgconn.socket, write=True)
    results: list[pq.abc.PGresult] = []
    while True:
        pgconn.consume_input()
        if pgconn.is_busy():
            await _ready(pgconn.socket, write=False)
            continue
        result = pgconn.get_result()
        if result is None:
            return results
        results.append(result)


async def _ready(fd: int, *, write: bool) -> None:
    """Until ``fd`` can be written (or read)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    if write:
        loop.add_writer(fd, _wake, waiter)
    else:
        loop.add_reader(fd, _wake, waiter)
    try:
        await waiter
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
