"""The plugin hooks. Built-in backends implement them exactly as third parties do.

A plugin is a module (or object) with functions decorated by
``vectorstore.hookimpl``, published under the entry-point group ``vectorstore``::

    [project.entry-points.vectorstore]
    mydb = "vectorstore_mydb.plugin"

Every hook has a test in ``tests/test_plugins.py`` and documentation in the
README's "Writing a backend plugin" section (``tests/test_docs.py`` checks both).
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "vectorstore"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def vectorstore_register_backends() -> list[Any]:  # type: ignore[empty-body]
    """Return the backends this plugin provides.

    :returns: a list of :class:`vectorstore.spi.BackendSpec`. Results of all plugins
        are collected; two backends claiming one URL scheme is a configuration error
        reported by ``vectorstore plugins``.
    """


@hookspec
def vectorstore_register_embedders() -> list[Any]:  # type: ignore[empty-body]
    """Return the embedders this plugin provides (text → vector).

    :returns: a list of :class:`vectorstore.embedding.EmbedderSpec`; results of all plugins
        are collected. ``vectorstore.embedding.get_embedder(name)`` picks one by name.
    """


@hookspec
def vectorstore_prepare_connection(conn: Any, backend: str) -> None:
    """Called for every new driver connection a backend opens, before first use.

    This is where the SQLite backend loads sqlite-vec and the PostgreSQL backend
    registers vector types; a plugin may add SQL functions or session settings.

    :param conn: the driver connection (``sqlite3.Connection``-like for ``"sqlite"``,
        ``psycopg.AsyncConnection`` for ``"postgres"``; may be awaited by the backend
        if the implementation returns an awaitable).
    :param backend: the backend name.
    """
