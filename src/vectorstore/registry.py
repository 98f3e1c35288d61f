"""Backend discovery through pluggy entry points (group ``vectorstore``).

Entry points load on first use, not at import. ``VECTORSTORE_PLUGINS`` (a
comma-separated list of entry-point names) restricts which plugin packages load (the built-in
embedders, part of the core, are always there);
``VECTORSTORE_TRACE_HOOKS=1`` logs every hook call.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import os
import threading
from typing import Any

import attrs
import pluggy

from vectorstore import hookspecs
from vectorstore.errors import ConfigError, UnknownBackend
from vectorstore.spi import BackendSpec

log = logging.getLogger("vectorstore.plugins")

_lock = threading.Lock()
_pm: pluggy.PluginManager | None = None


@attrs.frozen(slots=True)
class PluginInfo:
    name: str
    distribution: str
    version: str
    backends: tuple[str, ...]


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with entry points loaded on first call."""
    global _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            # The built-in embedders are the core's own: registered whatever VECTORSTORE_PLUGINS
            # says (it restricts plugin packages; restricting backends must not lose embedders).
            from vectorstore import embedding

            pm.register(embedding, name="embedders")
            allowed = os.environ.get("VECTORSTORE_PLUGINS")
            if allowed is None:
                pm.load_setuptools_entrypoints(hookspecs.PROJECT)
            else:
                for name in filter(None, (n.strip() for n in allowed.split(","))):
                    pm.load_setuptools_entrypoints(hookspecs.PROJECT, name=name)
            if os.environ.get("VECTORSTORE_TRACE_HOOKS"):
                pm.trace.root.setwriter(lambda msg: log.warning("hook: %s", msg.rstrip()))
                pm.enable_tracing()
            _pm = pm
        return _pm


def register(plugin: object, name: str | None = None) -> None:
    """Register a plugin object at run time (tests, applications embedding a backend)."""
    plugin_manager().register(plugin, name=name)


def unregister(plugin: object) -> None:
    plugin_manager().unregister(plugin)


def backends() -> dict[str, BackendSpec]:
    """Every registered backend by name."""
    out: dict[str, BackendSpec] = {}
    for specs in plugin_manager().hook.vectorstore_register_backends():
        for spec in specs or ():
            if not isinstance(spec, BackendSpec):
                raise ConfigError(
                    f"a plugin returned {spec!r} from vectorstore_register_backends; expected BackendSpec"
                )
            out.setdefault(spec.name, spec)
    return out


def backend_for_scheme(scheme: str) -> BackendSpec:
    found = [spec for spec in backends().values() if scheme in spec.schemes]
    if not found:
        known = sorted({s for spec in backends().values() for s in spec.schemes})
        raise UnknownBackend(
            f"no installed backend handles URLs starting with {scheme!r}://; installed schemes: "
            f"{', '.join(known) or '(none)'}. Check the URL, or install the backend's package "
            "(`vectorstore plugins` lists what loaded)"
        )
    if len(found) > 1:
        names = ", ".join(s.name for s in found)
        raise ConfigError(
            f"several backends claim the {scheme!r} scheme ({names}); uninstall one or use VECTORSTORE_PLUGINS"
        )
    return found[0]


def plugins() -> list[PluginInfo]:
    """What loaded, with distribution versions, for ``vectorstore plugins``."""
    pm = plugin_manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist: Any = dists.get(id(plugin))
        dist_name = dist.project_name if dist is not None else "(registered at run time)"
        version = dist.version if dist is not None else "-"
        impl = getattr(plugin, "vectorstore_register_backends", None)
        names: tuple[str, ...] = ()
        if impl is not None and inspect.isfunction(impl):
            names = tuple(s.name for s in impl() or ())
        out.append(PluginInfo(name=name, distribution=dist_name, version=version, backends=names))
    return sorted(out, key=lambda p: p.name)


def prepare_connection(conn: Any, backend: str) -> list[Any]:
    """Run every ``vectorstore_prepare_connection`` hook; returns their results (awaitables are the caller's)."""
    results: list[Any] = plugin_manager().hook.vectorstore_prepare_connection(conn=conn, backend=backend)
    return results


def distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
