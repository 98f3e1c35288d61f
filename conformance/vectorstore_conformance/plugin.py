"""pytest plugin of the conformance suite (loaded through the ``pytest11`` entry point).

It only adds options and fixtures; tests run when you ask for them::

    pytest --pyargs vectorstore_conformance                       # every installed backend
    pytest --pyargs vectorstore_conformance --vectorstore-backend=sqlite
    pytest --pyargs vectorstore_conformance --vectorstore-url=postgresql://me@db/test

A third-party backend subclasses :class:`vectorstore_conformance.ConformanceSuite`
and overrides the ``store_url`` fixture (see the README).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

# Must run before the suite's modules are imported, or failures print no detail.
pytest.register_assert_rewrite("vectorstore_conformance.suite", "vectorstore_conformance.domain",
                               "vectorstore_conformance.helpers")

import vectorstore  # noqa: E402
from vectorstore import registry  # noqa: E402
from vectorstore.config import redact, resolve  # noqa: E402
from vectorstore_conformance import guard  # noqa: E402


@attrs.frozen
class Target:
    """A backend under test: the backend's name and the URL the tester gave, if any."""

    backend: str
    base_url: str | None = None

    def __str__(self) -> str:
        return self.backend if self.base_url is None else f"{self.backend}:{redact(self.base_url)}"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vectorstore", "vectorstore conformance suite")
    group.addoption("--vectorstore-url", action="append", default=[], metavar="URL",
                    help="run the conformance suite against this store URL (repeatable)")
    group.addoption("--vectorstore-backend", action="append", default=[], metavar="NAME",
                    help="run the conformance suite against this installed backend, on a throwaway store "
                         "(repeatable; default: every installed backend)")


def targets(config: pytest.Config) -> list[Target]:
    urls: list[str] = config.getoption("--vectorstore-url")
    names: list[str] = config.getoption("--vectorstore-backend")
    installed = registry.backends()
    out = []
    for url in urls:
        out.append(Target(registry.backend_for_scheme(resolve(url).scheme).name, url))
    for name in names:
        if name not in installed:
            raise pytest.UsageError(f"--vectorstore-backend={name}: no such backend; installed: {', '.join(installed)}")
        out.append(Target(name))
    if not out:
        out = [Target(name) for name in sorted(installed)]
    return out


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    """The guard, for classes: a subclass of ConformanceSuite runs the standard tests as written."""
    result = yield
    if result is not None and guard.is_suite_class(obj):
        assert isinstance(obj, type)
        problems = guard.class_problems(obj) + guard.module_problems(getattr(collector, "obj", None), [obj])
        if problems:
            raise collector.CollectError("the conformance suite cannot run as written:\n  " + "\n  ".join(problems))
    return result


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The guard, for items: no skip/xfail mark or fixture override reaches a standard test."""
    problems = [problem for item in items for problem in guard.item_problems(item)]
    if problems:
        raise pytest.UsageError("the conformance suite cannot run as written:\n  " + "\n  ".join(problems))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """The guard, at run time: a standard test skips only for a capability the backend lacks."""
    report = yield
    assert isinstance(report, pytest.TestReport)
    problem = guard.runtime_problem(item, report, call.excinfo)
    if problem is not None:
        report.outcome = "failed"
        report.longrepr = problem
        if hasattr(report, "wasxfail"):
            del report.wasxfail
    return report


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "vectorstore_target" in metafunc.fixturenames:
        found = targets(metafunc.config)
        metafunc.parametrize("vectorstore_target", found, ids=[str(t) for t in found], scope="session")


@pytest.fixture
def store_url(vectorstore_target: Target, tmp_path: Path) -> Iterator[str]:
    """URL of a new, empty store for one test, made by the backend's ``test_url`` from the URL the
    tester gave (if any). Override this fixture to test your own backend."""
    spec = registry.backends()[vectorstore_target.backend]
    if spec.test_url is None:
        if vectorstore_target.base_url is None:
            pytest.fail(f"backend {spec.name!r} has no test_url in its BackendSpec; pass --vectorstore-url=URL")
        yield vectorstore_target.base_url
        return
    url = spec.test_url(vectorstore_target.base_url, tmp_path)
    yield url
    if spec.test_cleanup is not None and vectorstore_target.base_url is not None:
        spec.test_cleanup(url)


@pytest.fixture
def store(store_url: str) -> Iterator[vectorstore.Store]:
    """An open, empty sync store; every collection is dropped afterwards."""
    opened = vectorstore.connect(store_url)
    try:
        leftover = [c.name for c in opened.list_collections()]
        assert not leftover, (
            f"the store at {redact(store_url)} is not empty (collections: {leftover}); the suite needs an "
            "empty store per test: make store_url return a fresh database, schema or file"
        )
        yield opened
    finally:
        # A test that closed the store (persistence) cleaned up after itself.
        if not opened.closed:
            try:
                for spec in opened.list_collections():
                    opened.drop_collection(spec.name)
            finally:
                opened.close()
