from __future__ import annotations

import pytest

from vectorstore.config import DEFAULT_URL, env_url, parse_duration, resolve
from vectorstore.errors import ConfigError, UnknownBackend


def test_default_is_the_embedded_sqlite_file() -> None:
    assert env_url({}) == (DEFAULT_URL, {})
    assert resolve(None, environ={}).scheme == "sqlite"


def test_vectorstore_url_wins_over_db_variables() -> None:
    env = {"VECTORSTORE_URL": "memory://", "DB_HOST": "db.example"}
    assert env_url(env) == ("memory://", {})


def test_db_variables_build_a_postgres_url_with_options() -> None:
    env = {"DB_HOST": "db.internal", "DB_PORT": "6432", "DB_NAME": "media", "DB_USER": "app",
           "DB_PASSWORD": "p@ss:w/rd", "DB_SSL": "true", "DB_POOL_MIN": "3", "DB_POOL_MAX": "20",
           "DB_CONNECTION_TIMEOUT": "30000", "DB_QUERY_TIMEOUT": "10s"}
    url, options = env_url(env)
    assert url == "postgresql://app:p%40ss%3Aw%2Frd@db.internal:6432/media"
    assert options == {"sslmode": "require", "pool_min": 3, "pool_max": 20, "connect_timeout": 30.0,
                       "statement_timeout": 10.0}


def test_postgres_scheme_alias() -> None:
    assert resolve("postgres://u@h/db").scheme == "postgresql"


@pytest.mark.parametrize(("value", "unit", "seconds"), [
    ("500ms", "s", 0.5), ("2m", "s", 120.0), (10, "s", 10.0), ("10000", "ms", 10.0), (1.5, "s", 1.5)])
def test_durations(value: object, unit: str, seconds: float) -> None:
    assert parse_duration(value, unit) == seconds


@pytest.mark.parametrize("value", ["soon", "-1s", True, "10 parsecs"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(value)


@pytest.mark.parametrize(("env", "message"), [({"DB_HOST": "h", "DB_PORT": "http"}, "DB_PORT"),
                                              ({"DB_HOST": "h", "DB_SSL": "maybe"}, "DB_SSL"),
                                              ({"DB_HOST": "h", "DB_POOL_MAX": "0"}, "DB_POOL_MAX")])
def test_bad_db_variables_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        env_url(env)


def test_url_without_scheme() -> None:
    with pytest.raises(ConfigError, match="no scheme"):
        resolve("./data/x.db")


def test_unknown_scheme_lists_installed_ones() -> None:
    import vectorstore as vs

    with pytest.raises(UnknownBackend, match="memory"):
        vs.connect("mongodb://localhost")


def test_unknown_option_is_rejected() -> None:
    import vectorstore as vs

    with pytest.raises(ConfigError, match="unknown option"):
        vs.connect("memory://", pool_size=3)
