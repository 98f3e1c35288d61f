"""Which SQLite the backend runs on, and loading sqlite-vec into it.

sqlite-vec is a loadable extension, so the backend needs a ``sqlite3`` module
whose connections have ``enable_load_extension``. Many Python builds (macOS
system Python, some distribution and pyenv builds) compile it out. The choice:

1. ``VECTORSTORE_SQLITE_MODULE=sqlite3`` or ``=sqlean`` forces a module (an error if it cannot work);
2. otherwise the standard library ``sqlite3`` when it can load extensions;
3. otherwise ``sqlean`` (the ``sqlean.py`` package: the same DB-API, its own SQLite build).

Both modules have their own exception classes (``sqlean.OperationalError`` is not a
``sqlite3.OperationalError``), so callers catch ``driver().module.Error``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
from types import ModuleType
from typing import Any

import attrs

from vectorstore.errors import ConfigError, ExtensionMissing

ENV_VAR = "VECTORSTORE_SQLITE_MODULE"
_CHOICES = ("sqlite3", "sqlean")


@attrs.frozen(slots=True)
class Driver:
    """The DB-API module in use and why it was chosen (reported by ``doctor``)."""

    module: ModuleType = attrs.field(repr=False)
    name: str  # "sqlite3" or "sqlean"
    label: str  # human-readable: "stdlib sqlite3" / "sqlean.py 3.50.4.5"
    reason: str
    sqlite_version: str

    @property
    def error(self) -> type[Exception]:
        """The module's base exception class."""
        err: type[Exception] = self.module.Error
        return err


def _can_load_extensions(module: ModuleType) -> bool:
    return hasattr(module.Connection, "enable_load_extension")


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def _sqlean(reason: str) -> Driver:
    try:
        module = importlib.import_module("sqlean")
    except ImportError:
        raise ExtensionMissing(
            f"{reason}, and the fallback module sqlean is not installed; run `pip install sqlean.py` "
            "(or use a Python whose sqlite3 module supports loadable extensions)"
        ) from None
    return Driver(module=module, name="sqlean", label=f"sqlean.py {_dist_version('sqlean.py')}", reason=reason,
                  sqlite_version=str(module.sqlite_version))


def _stdlib(reason: str) -> Driver:
    module = importlib.import_module("sqlite3")
    return Driver(module=module, name="sqlite3", label="stdlib sqlite3", reason=reason,
                  sqlite_version=str(module.sqlite_version))


def choose_driver(environ: Any = None) -> Driver:
    """Pick the module per the rules in the module docstring (uncached; see :func:`driver`)."""
    env = os.environ if environ is None else environ
    forced = str(env.get(ENV_VAR, "")).strip().lower()
    if forced and forced not in _CHOICES:
        raise ConfigError(f"{ENV_VAR}={env.get(ENV_VAR)!r} is not valid; use 'sqlite3' or 'sqlean', or unset it")
    import sqlite3

    stdlib_ok = _can_load_extensions(sqlite3)
    if forced == "sqlite3":
        if not stdlib_ok:
            raise ConfigError(
                f"{ENV_VAR}=sqlite3 forces the standard library sqlite3, but this Python's sqlite3 cannot load "
                "extensions (it was built without enable_load_extension), so sqlite-vec cannot be loaded; "
                f"unset {ENV_VAR} or set it to 'sqlean' (pip install sqlean.py)"
            )
        return _stdlib(f"forced by {ENV_VAR}=sqlite3")
    if forced == "sqlean":
        return _sqlean(f"forced by {ENV_VAR}=sqlean")
    if stdlib_ok:
        return _stdlib("the standard library sqlite3 can load extensions")
    return _sqlean("the standard library sqlite3 cannot load extensions (built without enable_load_extension)")


@functools.cache
def driver() -> Driver:
    """The process-wide choice; the environment is read once, on first use."""
    return choose_driver()


def load_sqlite_vec(conn: Any) -> None:
    """Load sqlite-vec into a DB-API connection, leaving extension loading disabled afterwards
    (so SQL such as ``SELECT load_extension(...)`` cannot load anything else)."""
    try:
        import sqlite_vec
    except ImportError:
        raise ExtensionMissing("the sqlite-vec package is not installed; run `pip install sqlite-vec`") from None
    if not hasattr(conn, "enable_load_extension"):
        raise ExtensionMissing(
            f"this SQLite connection ({type(conn).__module__}) cannot load extensions, so sqlite-vec cannot be "
            f"loaded; install sqlean.py (pip install sqlean.py) and unset {ENV_VAR}"
        )
    conn.enable_load_extension(True)
    try:
        sqlite_vec.load(conn)
    except Exception as exc:
        raise ExtensionMissing(
            f"sqlite-vec could not be loaded ({exc}); reinstall it with `pip install --force-reinstall sqlite-vec`"
        ) from exc
    finally:
        conn.enable_load_extension(False)


def sqlite_vec_package_version() -> str:
    return _dist_version("sqlite-vec")
