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
    assert options == {"sslmode": "verify-full", "sslrootcert": "system", "pool_min": 3, "pool_max": 20,
                       "connect_timeout": 30.0, "statement_timeout": 10.0}


def test_db_ssl_means_the_server_is_verified() -> None:
    """DB_SSL=true verifies the server's certificate and name (verify-full), against DB_SSL_ROOT_CERT
    or the system's CAs; require would only encrypt, accepting any server on the path."""
    base = {"DB_HOST": "db.internal", "DB_SSL": "true"}
    assert env_url(base)[1] == {"sslmode": "verify-full", "sslrootcert": "system"}
    assert env_url({**base, "DB_SSL_ROOT_CERT": "/etc/ssl/db-ca.crt"})[1] == {
        "sslmode": "verify-full", "sslrootcert": "/etc/ssl/db-ca.crt"}
    assert env_url({**base, "DB_SSL": "false"})[1] == {"sslmode": "disable"}


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


@pytest.mark.parametrize("url", ["memory://?foo=1", "sqlite:///{tmp}/x.db?foo=1", "postgresql://h/db?foo=1"])
def test_an_unknown_url_option_is_an_error_on_every_backend(url: str, tmp_path: object) -> None:
    """Options are checked once, by the core, for every backend: an unknown one is a ConfigError
    naming it and listing the known ones (before any file is created or server contacted)."""
    import vectorstore as vs

    with pytest.raises(ConfigError, match=r"unknown option\(s\) foo .*known options: .*exact_search_below"):
        vs.connect(url.format(tmp=tmp_path))
    with pytest.raises(ConfigError, match=r"unknown option\(s\) bar"):
        vs.connect(url.split("?")[0].format(tmp=tmp_path), bar=1)


def test_a_repeated_option_is_an_error() -> None:
    import vectorstore as vs

    with pytest.raises(ConfigError, match="appears twice"):
        vs.connect("memory://?exact_search_below=1&exact_search_below=2")


def test_common_options_are_accepted_by_every_backend() -> None:
    """exact_search_below is known to every installed backend (memory honours it by being exact at
    every size), with the same default."""
    from vectorstore import registry
    from vectorstore.config import COMMON_OPTIONS

    for spec in registry.backends().values():
        bound = spec.bind(resolve(f"{spec.schemes[0]}:///x?exact_search_below=0"))
        assert bound.options["exact_search_below"] == "0"
        assert "exact_search_below" not in bound.url
        assert spec.bind(resolve(f"{spec.schemes[0]}:///x")).options["exact_search_below"] == \
            spec.options.get("exact_search_below", COMMON_OPTIONS["exact_search_below"])


def test_binding_keeps_driver_parameters_and_the_rest_of_the_url() -> None:
    from vectorstore import registry

    pg = registry.backends()["postgres"]
    bound = pg.bind(resolve("postgresql://u@h/db?pool_max=3&application_name=my%20app#frag", {"sslmode": "disable"}))
    assert bound.url == "postgresql://u@h/db?application_name=my%20app#frag"
    assert bound.options["pool_max"] == "3" and bound.passthrough == {"sslmode": "disable"}
    assert pg.bind(bound) == bound  # idempotent
    sqlite = registry.backends()["sqlite"]
    assert sqlite.bind(resolve("sqlite:////abs/x.db?readers=3")).url == "sqlite:////abs/x.db"
