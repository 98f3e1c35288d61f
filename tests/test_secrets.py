"""The database password never shows (docs/security.md).

With URLs holding one unique password, every command of the CLI (subprocesses logging every logger
at DEBUG to stderr), every error a user can meet, the ``repr`` of every object a user can get and
every log record of this process (all loggers, DEBUG) are searched for it: it must appear nowhere.
The password still reaches libpq: a role of the test server that must log in with a password
(scram-sha-256, through a pg_hba.conf line of its own) connects with a passfile, PGPASSFILE, a
service file and DB_PASSWORD_FILE, and is refused without them.

(``vectorstore serve``, its answers and its JSON logs are checked by tests/faults/test_ops_endpoints.py.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vectorstore as vs
from fixtures.agentdb_files import bulk_file
from vectorstore.config import env_url, resolve
from vectorstore.errors import VectorStoreError

#: The one password of this module: if it shows anywhere, something leaked it.
PASSWORD = f"pw-{uuid.uuid4().hex}"

#: The CLI as a user runs it, with every logger of the process at DEBUG on stderr.
LAUNCHER = """\
import logging, sys, warnings
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
warnings.simplefilter("always")
from vectorstore.cli import main
sys.exit(main(sys.argv[1:]))
"""


def hidden(label: str, text: object, secret: str = PASSWORD) -> None:
    """``text`` does not show ``secret``, not even folded over lines by a console, nor percent-encoded."""
    text = str(text)
    whole = "".join(text.split())
    for form in {secret, urllib.parse.quote(secret, safe="")}:
        assert form not in text and form not in whole, (
            f"{label.replace(secret, '<PASSWORD>')} shows the password: {text.replace(secret, '<PASSWORD>')[:3000]}")


def error_texts(exc: BaseException) -> dict[str, str]:
    """What a user may see of an exception: its message, repr and whole traceback."""
    return {"str": str(exc), "repr": repr(exc), "traceback": "".join(traceback.format_exception(exc))}


def with_password(url: str, password: str = PASSWORD, user: str | None = None) -> str:
    """``url`` with ``password`` (and ``user``) in its user part."""
    parts = urllib.parse.urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    name = user or parts.username or "postgres"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{name}:{urllib.parse.quote(password, safe='')}@{hosts}"))


def without_password(url: str, user: str | None = None) -> str:
    parts = urllib.parse.urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user or parts.username or 'postgres'}@{hosts}"))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def unreachable_url() -> str:
    return f"postgresql://alice:{PASSWORD}@127.0.0.1:{closed_port()}/salesdb?connect_timeout=2"


def run_cli(*args: str, env: Mapping[str, str] | None = None, script: bool = False) -> subprocess.CompletedProcess[str]:
    """``vectorstore ARGS`` in a subprocess (the console script beside the interpreter with
    ``script``, else the launcher logging every logger at DEBUG); no store configured by the
    environment unless ``env`` says so."""
    full = {k: v for k, v in os.environ.items() if k != "VECTORSTORE_URL" and not k.startswith("DB_")}
    full.update(env or {})
    console_script = Path(sys.executable).with_name("vectorstore")
    command = [str(console_script)] if script else [sys.executable, "-c", LAUNCHER]
    return subprocess.run([*command, *args], capture_output=True, text=True, env=full, timeout=300)


def cli_hidden(result: subprocess.CompletedProcess[str]) -> None:
    words = " ".join(result.args[3:] if result.args[1] == "-c" else result.args[1:])
    hidden(f"`vectorstore {words}` stdout", result.stdout)
    hidden(f"`vectorstore {words}` stderr", result.stderr)


@pytest.fixture(autouse=True)
def no_log_record_shows_the_password(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every log record of the test (every logger, DEBUG and up), its message and its extras."""
    caplog.set_level(logging.DEBUG)
    yield
    for when in ("setup", "call"):
        for record in caplog.get_records(when):
            hidden(f"log record of {record.name}", f"{record.getMessage()} {record.__dict__!r}")


@pytest.fixture
def secret_url(server_url: str) -> str:
    """A new schema on the test server, through a URL with the password (the server trusts local
    logins: the password is sent and ignored)."""
    from vectorstore_postgres.testing import isolated_url

    return with_password(isolated_url(server_url))


# -- the redaction itself ----------------------------------------------------------------------


@pytest.mark.parametrize(("given", "kept"), [
    (f"postgresql://app:{PASSWORD}@db.internal:5432/media", ["postgresql://app:***@db.internal:5432/media"]),
    (f"postgres://app:{PASSWORD}@db/media?sslmode=require&application_name=gw",
     ["app:***@db/media", "sslmode=require", "application_name=gw"]),
    (f"postgresql://app@db/media?password={PASSWORD}&sslmode=require", ["password=***", "sslmode=require"]),
    (f"postgresql://app@db/media?sslpassword={PASSWORD}", ["sslpassword=***"]),
    (f"postgresql://app@db/media?pass%77ord={PASSWORD}", ["app@db/media"]),
    (f"postgresql://app:{PASSWORD}@h1:5432,h2:5433/media", ["h1:5432,h2:5433/media"]),
    (f"postgresql://app:{PASSWORD}@/media?host=/var/run/postgresql", ["host=/var/run/postgresql"]),
    # characters a password should have percent-encoded, written as they are
    (f"postgresql://app:{PASSWORD}@x@db/media", ["@db/media"]),
    (f"postgresql://app:{PASSWORD}?x@db/media", ["@db/media"]),
    (f"postgresql://app:{PASSWORD}#x@db/media?sslmode=disable", ["@db/media?sslmode=disable"]),
    (f"postgresql://app:{PASSWORD}/x@db/media", ["@db/media"]),
    (f"postgresql://app:{PASSWORD}@db?application_name=a@b", ["app:***@db?application_name=a@b"]),
    # libpq connection strings, given where a URL was expected
    (f"host=db dbname=media user=app password={PASSWORD}", ["host=db dbname=media user=app password=***"]),
    (f"host=db password = '{PASSWORD} with spaces\\' and a quote' port=5432", ["port=5432"]),
    (f"password='{PASSWORD}", ["password=***"]),
    (f"sslpassword={PASSWORD} host=db", ["sslpassword=*** host=db"]),
    # URLs missing their "://", and messages quoting a user part
    (f"postgresql//app:{PASSWORD}@db/media", ["app:***@db/media"]),
    (f"postgres:/app:{PASSWORD}@db/media", ["@db/media"]),
    (f"could not use app:{PASSWORD}@db: refused", ["could not use app:***@db: refused"]),
])
def test_redact_hides_the_password_of_every_form(given: str, kept: list[str]) -> None:
    """One redaction for URLs, their query options, libpq connection strings and free text; what
    is not secret stays, so the message still says which store."""
    from vectorstore.config import display_url, redact

    shown = redact(given)
    hidden(f"redact({given!r})", shown)
    for part in kept:
        assert part in shown, shown
    hidden(f"display_url({given!r})", display_url(given))
    assert redact(shown) == shown  # (redacting twice changes nothing)


def test_display_url_is_the_url_without_password_nor_options() -> None:
    """The short name of a store (metrics labels): never a password, whatever it is given."""
    from vectorstore.config import display_url

    for given in (f"postgresql://app:{PASSWORD}?x@db/media", f"host=db password={PASSWORD}"):
        hidden(f"display_url({given!r})", display_url(given))
    assert display_url(f"postgresql://app:{PASSWORD}@db:5432/media?sslmode=require&password=x") == \
        "postgresql://app@db:5432/media"
    assert display_url("sqlite:////srv/data/app.db?readers=3") == "sqlite:////srv/data/app.db"
    assert display_url("memory://") == "memory://"


# -- configuration: reprs and errors, no server needed ----------------------------------------------


def test_config_reprs_hide_the_password_however_it_is_given() -> None:
    """The URL's password, a ``password=`` keyword and option, and DB_PASSWORD: none in the reprs of
    the store configuration, before and after it is bound to its backend's options."""
    from vectorstore import registry

    spec = registry.backend_for_scheme("postgresql")
    configs = [
        resolve(f"postgresql://app:{PASSWORD}@db/media?sslmode=disable"),
        resolve("postgresql://app@db/media", {"password": PASSWORD, "sslpassword": PASSWORD}),
        resolve(f"postgresql://app@db/media?password={PASSWORD}"),
        resolve(None, environ={"DB_HOST": "db", "DB_USER": "app", "DB_PASSWORD": PASSWORD}),
    ]
    for config in configs:
        bound = spec.bind(config)
        for label, text in (("config", repr(config)), ("str(config)", str(config)), ("bound", repr(bound))):
            hidden(label, text)
        assert "postgresql://app" in repr(config)
    assert PASSWORD in configs[0].url  # (the URL itself still carries it, for libpq)


def test_db_password_file_is_read_without_its_line_break(tmp_path: Path) -> None:
    """DB_PASSWORD_FILE (a mounted secret): its contents are the password, less one line break."""
    env = {"DB_HOST": "db.internal", "DB_NAME": "media", "DB_USER": "app"}
    for content, password in ((f"{PASSWORD}\n", PASSWORD), (f"{PASSWORD}\r\n", PASSWORD),
                              (f"{PASSWORD}\n\n", f"{PASSWORD}\n"), ("p@ss:w/rd", "p@ss:w/rd")):
        path = tmp_path / "secret"
        path.write_text(content, newline="")
        url, _ = env_url({**env, "DB_PASSWORD_FILE": str(path)})
        assert url == f"postgresql://app:{urllib.parse.quote(password, safe='')}@db.internal:5432/media"
    hidden("config", repr(resolve(None, environ={**env, "DB_PASSWORD_FILE": str(path)})), "p@ss:w/rd")


def test_db_password_file_errors_name_the_file_never_its_contents(tmp_path: Path) -> None:
    env = {"DB_HOST": "db.internal", "DB_NAME": "media"}
    secret = tmp_path / "secret"
    secret.write_text(PASSWORD)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    binary = tmp_path / "binary"
    binary.write_bytes(PASSWORD.encode() + b"\xff\xfe")
    cases = [({"DB_PASSWORD_FILE": str(tmp_path / "missing")}, "cannot be read"),
             ({"DB_PASSWORD_FILE": str(tmp_path)}, "cannot be read"),
             ({"DB_PASSWORD_FILE": str(empty)}, "is empty"),
             ({"DB_PASSWORD_FILE": str(binary)}, "not UTF-8"),
             ({"DB_PASSWORD_FILE": str(secret), "DB_PASSWORD": PASSWORD}, "both DB_PASSWORD and DB_PASSWORD_FILE")]
    for extra, message in cases:
        with pytest.raises(vs.ConfigError, match=message) as info:
            env_url({**env, **extra})
        assert "DB_PASSWORD_FILE" in str(info.value)
        for label, text in error_texts(info.value).items():
            hidden(f"DB_PASSWORD_FILE error {label}", text)


def test_no_error_of_opening_a_store_shows_the_password() -> None:
    """Bad configuration (a libpq connection string or a mistyped URL where a URL was expected, an
    unknown option, a bad option value, an unknown scheme, a URL libpq cannot read, a SQLite URL
    with a user part) and an unreachable server: the message, repr and traceback of each, sync and
    async, and its ``store_exists`` twin."""
    attempts: list[tuple[str, dict[str, Any]]] = [
        (f"host=127.0.0.1 port=5432 dbname=postgres user=app password={PASSWORD}", {}),
        (f"postgresql//app:{PASSWORD}@127.0.0.1/postgres", {}),
        (f"postgresql://app:{PASSWORD}@127.0.0.1/postgres?pool_size=3", {}),
        (f"postgresql://app:{PASSWORD}@127.0.0.1/postgres?pool_max=many", {}),
        ("postgresql://app@127.0.0.1/postgres", {"password": PASSWORD, "statement_timeout": "soon"}),
        (f"mongodb://app:{PASSWORD}@127.0.0.1/postgres", {}),
        (f"postgresql://app:{PASSWORD}%zz@127.0.0.1/postgres", {}),
        (f"postgresql://app:{PASSWORD}%@127.0.0.1/postgres", {}),
        (f"postgresql://app:{PASSWORD}@127.0.0.1:port/postgres", {}),
        (f"sqlite://app:{PASSWORD}@host/data.db", {}),
        (unreachable_url(), {}),
        ("postgresql://alice@127.0.0.1:1/salesdb?connect_timeout=2", {"password": PASSWORD}),
    ]
    for url, options in attempts:
        for way in ("connect", "open_store", "store_exists"):
            with pytest.raises(VectorStoreError) as info:
                if way == "connect":
                    vs.connect(url, **options)
                elif way == "open_store":
                    asyncio.run(vs.open_store(url, **options))
                else:
                    vs.store_exists(url, **options)
            for label, text in error_texts(info.value).items():
                hidden(f"{type(info.value).__name__} {label} for {url!r}", text)


# -- an open store -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_reprs_and_urls_of_everything_a_user_gets(secret_url: str) -> None:
    """Stores (sync and async; the password in the URL, as a keyword and as a URL option), their
    collections, backend, layer, checks and health, the backend's settings: no password in any
    repr or str, nor in ``store.url``, which still names the store."""
    from vectorstore import registry
    from vectorstore_postgres.connection import parse_settings

    urls: list[tuple[str, dict[str, Any]]] = [(secret_url, {}), (without_password(secret_url), {"password": PASSWORD}),
                                              (f"{without_password(secret_url)}&password={PASSWORD}", {})]
    for url, options in urls:
        config = resolve(url, options)
        settings = parse_settings(config)
        objects: dict[str, object] = {"config": config, "bound": registry.backend_for_scheme("postgresql").bind(config),
                                      "settings": settings, "target": settings.target}
        store = vs.connect(url, **options)
        collection = store.create_collection("films", dim=3, fields={"title": "text"}, exist_ok=True)
        collection.upsert([{"id": "a", "vector": [1, 0, 0], "fields": {"title": "Alien"}}])
        assert [h.id for h in collection.search([1, 0, 0], k=1)] == ["a"]
        objects.update(store=store, url=store.url, async_store=store.async_store, async_url=store.async_store.url,
                       backend=store.async_store.backend, layer=store.layer, capabilities=store.capabilities,
                       collection=collection, spec=collection.spec, collections=store.list_collections(),
                       doctor=store.doctor(), health=store.health())
        assert store.url.startswith("postgresql://postgres") and "/postgres?" in store.url and "schema=" in store.url
        store.close()
        objects["closed store"] = store

        async def async_objects(url: str = url, options: dict[str, Any] = options) -> dict[str, object]:
            astore = await vs.open_store(url, **options)
            acollection = await astore.collection("films")
            found = {"astore": astore, "acollection": acollection, "ahealth": await astore.health(),
                     "adoctor": await astore.doctor()}
            await astore.aclose()
            return found

        objects.update(asyncio.run(async_objects()))
        for label, thing in objects.items():
            hidden(f"repr({label})", repr(thing))
            hidden(f"str({label})", str(thing))


@pytest.mark.postgres
def test_errors_of_an_open_store_never_show_the_password(secret_url: str) -> None:
    """StoreClosed (sync and async), a missing collection, DeadlineExceeded, and whatever writes past a
    1 ms deadline raise (OutcomeUnknown, CircuitOpen...)."""
    seen: list[BaseException] = []

    def expect(call: Any, kind: type[BaseException] = VectorStoreError) -> None:
        with pytest.raises(kind) as info:
            call()
        seen.append(info.value)

    store = vs.connect(secret_url)
    films = store.create_collection("films", dim=8, exist_ok=True)
    expect(lambda: store.collection("nope"), vs.CollectionNotFound)
    store.close()
    expect(store.list_collections, vs.StoreClosed)
    expect(lambda: films.count(), vs.StoreClosed)
    assert "/postgres" in str(seen[-1])  # (it still says which store)

    async def closed_async() -> None:
        astore = await vs.open_store(secret_url)
        await astore.aclose()
        with pytest.raises(vs.StoreClosed) as info:
            await astore.list_collections()
        seen.append(info.value)

    asyncio.run(closed_async())
    hurried = vs.connect(secret_url, deadline="0.01ms", retries=0)
    expect(lambda: hurried.collection("films"), vs.DeadlineExceeded)
    hurried.close()
    hurried = vs.connect(secret_url, deadline="2ms", retries=0)
    rng = np.random.default_rng(0)
    for attempt in range(8):
        try:
            hurried.collection("films").upsert([{"id": f"{attempt}-{i}", "vector": rng.random(8)} for i in range(300)])
        except VectorStoreError as exc:
            seen.append(exc)
    hurried.close()
    assert {type(exc) for exc in seen} >= {vs.StoreClosed, vs.CollectionNotFound, vs.DeadlineExceeded}
    for exc in seen:
        for label, text in error_texts(exc).items():
            hidden(f"{type(exc).__name__} {label}", text)


# -- the command line ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_doctor_never_shows_the_password(secret_url: str) -> None:
    """``vectorstore doctor`` with the server up (the console script, and with DEBUG logs), with it
    unreachable (a closed port), and given a libpq connection string."""
    for result in (run_cli("doctor", secret_url, script=True), run_cli("doctor", secret_url)):
        cli_hidden(result)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "health: ok" in result.stdout and "postgresql://postgres:***@" in result.stdout
    down = run_cli("doctor", unreachable_url())
    cli_hidden(down)
    assert down.returncode == 1 and "cannot open the store" in down.stdout
    dsn = run_cli("doctor", f"host=127.0.0.1 dbname=postgres password={PASSWORD}")
    cli_hidden(dsn)
    assert dsn.returncode == 2 and "no scheme" in dsn.stdout


@pytest.mark.postgres
def test_demo_never_shows_the_password(secret_url: str) -> None:
    result = run_cli("demo", "--url", secret_url, "--n", "60", "--dim", "8")
    cli_hidden(result)
    assert result.returncode == 0, result.stdout + result.stderr
    out = " ".join(result.stdout.split())  # (the console wraps long lines)
    assert "postgres backend" in out and "loaded 60 records" in out
    down = run_cli("demo", "--url", unreachable_url(), "--n", "10", "--dim", "4")
    cli_hidden(down)
    assert down.returncode == 2


@pytest.mark.postgres
def test_learn_never_shows_the_password(secret_url: str) -> None:
    result = run_cli("learn", "--url", secret_url, "--dry-run")
    cli_hidden(result)
    assert result.returncode == 0, result.stdout + result.stderr
    for url, code in ((unreachable_url(), 1), (f"host=127.0.0.1 password={PASSWORD}", 2)):
        failed = run_cli("learn", "--url", url)
        cli_hidden(failed)
        assert failed.returncode == code, failed.stdout + failed.stderr


def test_bench_never_shows_the_password_of_a_malformed_url() -> None:
    """``--url`` takes NAME=URL; a URL given without the name is refused, quoted redacted."""
    result = run_cli("bench", "--url", f"postgresql://alice:{PASSWORD}@127.0.0.1/db", "--n", "10")
    cli_hidden(result)
    assert result.returncode != 0 and "NAME=URL" in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.postgres
def test_migrate_never_shows_the_password(secret_url: str, tmp_path: Path) -> None:
    """The dry run (text and JSON), the run, status and rollback into PostgreSQL; a wrong number of
    words, a store URL given as the SOURCE, an unreachable target."""
    source = tmp_path / "agent.db"
    bulk_file(source, 30, dim=8)
    for args in (("--dry-run",), ("--dry-run", "--json")):
        dry = run_cli("migrate", str(source), secret_url, *args)
        cli_hidden(dry)
        assert dry.returncode == 0, dry.stdout + dry.stderr
    done = run_cli("migrate", str(source), secret_url, "--json")
    cli_hidden(done)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = json.loads(done.stdout)["id"]
    for args in (("status", secret_url), ("status", secret_url, "--json"),
                 ("rollback", secret_url, "--run", run_id)):
        result = run_cli("migrate", *args)
        cli_hidden(result)
        assert result.returncode == 0, result.stdout + result.stderr
    for args, code in (((secret_url,), 2), ((secret_url, f"sqlite:///{tmp_path}/t.db"), 2),
                       ((str(source), unreachable_url(), "--dry-run"), 0), ((str(source), unreachable_url()), 2),
                       (("status", unreachable_url()), 2)):
        result = run_cli("migrate", *args)
        cli_hidden(result)
        assert result.returncode == code, result.stdout + result.stderr


@pytest.mark.postgres
def test_export_never_shows_the_password(secret_url: str, server_url: str, tmp_path: Path) -> None:
    """PostgreSQL to SQLite and back, into a store that has the collection already, onto itself,
    and from an unreachable server."""
    store = vs.connect(secret_url)
    films = store.create_collection("films", dim=4, fields={"title": "text"})
    films.upsert([{"id": str(i), "vector": [i, 1, 0, 0], "fields": {"title": f"t{i}"}} for i in range(20)])
    store.close()
    backup = f"sqlite:///{tmp_path}/backup.db"
    from vectorstore_postgres.testing import isolated_url

    other = with_password(isolated_url(server_url))
    for args, code in (((secret_url, backup), 0), ((backup, other), 0), ((backup, other), 2),
                       ((secret_url, secret_url), 2), ((unreachable_url(), backup), 2)):
        result = run_cli("export", *args)
        cli_hidden(result)
        assert result.returncode == code, result.stdout + result.stderr


# -- the password reaches libpq: passfile, PGPASSFILE, service file, DB_PASSWORD_FILE -------------


@pytest.fixture
def password_role(server_url: str) -> Iterator[tuple[str, str]]:
    """A role of the test server that must give its password (``PASSWORD``), owning a database of
    its own (with pgvector): its ``scram-sha-256`` lines lead pg_hba.conf while the test runs.
    Yields the role (also the database's name) and a URL of that database as the role, without a
    password. Skipped when pg_hba.conf is not a file this process can write (a server given by
    VECTORSTORE_TEST_POSTGRES_URL elsewhere)."""
    import psycopg
    from psycopg import sql

    role = f"vs_secret_{uuid.uuid4().hex[:8]}"
    name = sql.Identifier(role)
    parts = urllib.parse.urlsplit(server_url)
    hosts = parts.netloc.rpartition("@")[2]
    url = urllib.parse.urlunsplit(parts._replace(netloc=f"{role}@{hosts}", path=f"/{role}"))
    as_superuser = urllib.parse.urlunsplit(parts._replace(path=f"/{role}"))
    with psycopg.connect(server_url, autocommit=True) as conn:
        hba_row = conn.execute("SHOW hba_file").fetchone()
        assert hba_row is not None
        hba = Path(str(hba_row[0]))
        if not os.access(hba, os.W_OK):
            pytest.skip(f"pg_hba.conf of the test server ({hba}) is not writable here")
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(name, sql.Literal(PASSWORD)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(name, name))
        with psycopg.connect(as_superuser, autocommit=True) as own:
            own.execute("CREATE EXTENSION IF NOT EXISTS vector")
        original = hba.read_text()
        hba.write_text(f"local all {role} scram-sha-256\nhost all {role} all scram-sha-256\n" + original)
        try:
            conn.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + 10
            while True:  # (the server reloads its configuration on its own time)
                try:
                    psycopg.connect(url, passfile=os.devnull).close()
                except psycopg.OperationalError:
                    break
                assert time.monotonic() < deadline, "the server still lets the role in without a password"
                time.sleep(0.05)
            yield role, url
        finally:
            hba.write_text(original)
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
            conn.execute(sql.SQL("DROP ROLE {}").format(name))


def _socket(url: str) -> tuple[str, int]:
    """The server's host (a Unix-socket directory for the embedded server) and port."""
    parts = urllib.parse.urlsplit(url)
    host = dict(urllib.parse.parse_qsl(parts.query)).get("host") or parts.hostname or "localhost"
    return host, parts.port or 5432


def _use(store: vs.Store) -> None:
    films = store.create_collection("films", dim=3, exist_ok=True)
    films.upsert([{"id": "a", "vector": [1, 0, 0]}])
    assert films.count() == 1
    for thing in (store, store.url, store.async_store, films):
        hidden("repr", repr(thing))


@pytest.mark.postgres
def test_a_passfile_gives_the_password_to_libpq(password_role: tuple[str, str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The role is refused without a password and with a wrong one (ConfigError, neither password
    shown), and let in with a passfile given as ``passfile=`` (URL option or keyword) or as
    PGPASSFILE."""
    role, url = password_role
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))  # (not ~/.pgpass)
    with pytest.raises(vs.ConfigError, match="refused the connection"):
        vs.connect(url)
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"*:*:*:{role}:{PASSWORD}\n")
    passfile.chmod(0o600)
    wrong = tmp_path / "wrong"
    wrong.write_text(f"*:*:*:{role}:not-{PASSWORD[::-1]}\n")
    wrong.chmod(0o600)
    with pytest.raises(vs.ConfigError, match="password authentication failed") as info:
        vs.connect(url, passfile=str(wrong))
    for label, text in error_texts(info.value).items():
        hidden(label, text, f"not-{PASSWORD[::-1]}")
    for store in (vs.connect(url, passfile=str(passfile)), vs.connect(f"{url}&passfile={passfile}")):
        _use(store)
        store.close()
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    store = vs.connect(url)
    _use(store)
    store.close()
    result = run_cli("doctor", url, env={"PGPASSFILE": str(passfile)})
    cli_hidden(result)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.postgres
def test_a_service_file_gives_the_connection_and_its_password(password_role: tuple[str, str], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``?service=NAME`` (or ``service=``) with PGSERVICEFILE: host, port, database, user and
    password come from the entry; an unreachable entry is named in the error by its service."""
    role, url = password_role
    host, port = _socket(url)
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[vs_app]\nhost={host}\nport={port}\ndbname={role}\nuser={role}\npassword={PASSWORD}\n\n"
                        f"[vs_gone]\nhost=127.0.0.1\nport={closed_port()}\nuser={role}\npassword={PASSWORD}\n"
                        "connect_timeout=2\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    for store in (vs.connect("postgresql://?service=vs_app"), vs.connect("postgresql://", service="vs_app")):
        _use(store)
        store.close()
    with pytest.raises(vs.BackendUnavailable, match="service vs_gone") as info:
        vs.connect("postgresql://?service=vs_gone")
    for label, text in error_texts(info.value).items():
        hidden(label, text)
    result = run_cli("doctor", "postgresql://?service=vs_app", env={"PGSERVICEFILE": str(services)})
    cli_hidden(result)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.postgres
def test_db_password_file_gives_the_password_to_libpq(password_role: tuple[str, str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """DB_HOST (the server's socket directory), DB_PORT, DB_NAME, DB_USER and DB_PASSWORD_FILE (with
    a line break, as secrets are mounted): the store opens, in this process and in the CLI."""
    role, url = password_role
    host, port = _socket(url)
    secret = tmp_path / "db_password"
    secret.write_text(PASSWORD + "\n")
    env = {"DB_HOST": host, "DB_PORT": str(port), "DB_NAME": role, "DB_USER": role,
           "DB_PASSWORD_FILE": str(secret), "PGPASSFILE": str(tmp_path / "none")}
    for name in ("VECTORSTORE_URL", "DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = vs.connect()
    _use(store)
    store.close()
    result = run_cli("doctor", env=env)
    cli_hidden(result)
    assert result.returncode == 0, result.stdout + result.stderr
    secret.write_text("not-the-password\n")
    with pytest.raises(vs.ConfigError, match="password authentication failed"):
        vs.connect()


def test_a_url_without_a_secret_is_shown_whole(tmp_path: Path) -> None:
    """(Redaction hides secrets only: a SQLite URL is shown as given, options included.)"""
    url = f"sqlite:///{tmp_path}/x.db?readers=1"
    store = vs.connect(url)
    assert store.url == url and repr(store) == f"<Store {url} backend=sqlite>"
    store.close()
    assert repr(store) == f"<Store {url} backend=sqlite closed>"
