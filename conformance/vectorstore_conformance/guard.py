"""The guard: a class that runs the conformance suite runs every standard test as written.

It is part of the pytest plugin, not a test a subclass could override or mark. At collection
time it refuses (the run fails, naming the culprit and saying what to do):

- an override of a standard test that is not marked ``@pytest.mark.xfail(reason=..., strict=True)``
  with no condition and without ``run=False`` (a non-strict xfail would let an override that does
  nothing pass as XPASS; ``xfail(False, ...)`` would let it pass outright);
- a standard test replaced by something that is not a test (``test_x = None``, ``__test__ = False``);
- an override of anything else the standard tests use: a helper method or a fixture of the suite
  (``_check_search``, ``clock``...); the one override point is the ``store_url`` fixture;
- a fixture of the suite's plugin (``store``...) overridden by a conftest or a test module;
- a skip / skipif / xfail mark reaching a standard test from anywhere (class- or module-level
  ``pytestmark``, a conftest's ``pytest_collection_modifyitems``), other than an override's own
  strict xfail.

At run time a standard test may end as skipped only by the suite's own
:class:`CapabilityNotDeclared` (a capability the backend does not declare, after checking that the
backend refuses it with ``NotSupported``); any other skip or xfail of a standard test (``pytest.skip``
in an overridden ``store_url`` fixture, say) is reported as a failure.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest

import vectorstore as vs

OUTCOME_MARKS = frozenset({"skip", "skipif", "xfail"})
#: Fixtures of the suite that a backend's tests may override.
OVERRIDABLE_FIXTURES = frozenset({"store_url"})
HOW_TO_OVERRIDE = ("mark the override @pytest.mark.xfail(reason='why this backend fails it', strict=True) "
                   "(no condition), or delete it so the standard test runs")


class CapabilityNotDeclared(pytest.skip.Exception):  # type: ignore[name-defined,misc]
    """A standard test skipped because the backend does not declare a capability it needs (the
    only skip the guard lets through)."""


def requires(store: vs.Store, capability: str, refused: bool = True) -> None:
    """Skip the calling test, naming ``capability``, unless the store's backend declares it.
    With ``refused`` the other side of the capability is checked first: ``store.transaction()``
    must raise NotSupported on a backend without transactions."""
    if getattr(store.capabilities, capability):
        return
    checked = ""
    if capability == "transactions" and refused:
        with pytest.raises(vs.NotSupported, match="transactions"):
            store.transaction()
        checked = " (checked: store.transaction() raises NotSupported)"
    raise CapabilityNotDeclared(f"the backend does not declare the {capability!r} capability{checked}")


# -- what the standard suite is ------------------------------------------------------------


def _suite() -> type[Any]:
    from vectorstore_conformance import ConformanceSuite

    return ConformanceSuite


def standard_tests() -> dict[str, Any]:
    suite = _suite()
    return {name: getattr(suite, name) for name in dir(suite) if name.startswith("test_")}


def protected_names() -> dict[str, str]:
    """Everything else the suite's classes define (helpers, fixtures), with the part defining it."""
    out: dict[str, str] = {}
    for part in _suite().__mro__:
        if part is object:
            continue
        for name in vars(part):
            if not name.startswith("test_") and not (name.startswith("__") and name.endswith("__")):
                out.setdefault(name, part.__name__)
    return out


def _defined_by_suite(cls: type[Any], name: str) -> bool:
    """Whether ``cls`` gets ``name`` from the suite's own classes (not from a subclass's override)."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass in _suite().__mro__
    return False


def is_suite_class(obj: object) -> bool:
    return inspect.isclass(obj) and issubclass(obj, _suite()) and obj is not _suite()


def _own_marks(obj: object) -> list[pytest.Mark]:
    marks = getattr(obj, "pytestmark", [])
    if not isinstance(marks, list):
        marks = [marks]
    return [getattr(m, "mark", m) for m in marks]


def _override_problem(cls: type[Any], name: str, mine: object) -> str | None:
    """Why ``mine``, which replaces the standard test ``name``, is not an allowed override."""
    where = f"{cls.__name__}.{name}"
    if not callable(mine) or getattr(mine, "__test__", True) is not True:
        return (f"{where} replaces a standard conformance test with {mine!r}, which does not run; "
                f"delete it so the standard test runs, or {HOW_TO_OVERRIDE}")
    marks = [m for m in _own_marks(mine) if m.name in OUTCOME_MARKS]
    xfails = [m for m in marks if m.name == "xfail"]
    if len(marks) != 1 or len(xfails) != 1:
        return f"{where} overrides a standard conformance test without a strict xfail: {HOW_TO_OVERRIDE}"
    mark = xfails[0]
    if mark.args:
        return (f"{where} marks its override xfail{mark.args!r}: a condition can switch the mark off and let the "
                f"override pass; {HOW_TO_OVERRIDE}")
    if not isinstance(mark.kwargs.get("reason"), str) or not mark.kwargs["reason"].strip():
        return f"{where}'s xfail has no reason: say why this backend fails the standard test; {HOW_TO_OVERRIDE}"
    if mark.kwargs.get("strict") is not True:
        return (f"{where}'s xfail is not strict, so an override that does nothing would pass as XPASS; "
                f"{HOW_TO_OVERRIDE}")
    if mark.kwargs.get("run", True) is not True:
        return f"{where}'s xfail has run=False: the override must run (and fail); {HOW_TO_OVERRIDE}"
    return None


def class_problems(cls: type[Any]) -> list[str]:
    """Why ``cls`` (a subclass of ConformanceSuite) does not run the standard suite as written."""
    suite = _suite()
    problems: list[str] = []
    for name in standard_tests():
        if not _defined_by_suite(cls, name):
            problem = _override_problem(cls, name, getattr(cls, name, None))
            if problem:
                problems.append(problem)
    for name, part in protected_names().items():
        if not _defined_by_suite(cls, name):
            kind = "fixture" if _is_fixture(getattr(suite, name, None)) else "helper"
            problems.append(
                f"{cls.__name__}.{name} overrides the {kind} {name!r} of {part}, which standard tests use, so it "
                "would change them unflagged; remove it (a backend configures the suite only through the "
                "store_url fixture), and override the standard tests that fail with a strict xfail instead")
    for mark in _own_marks(cls):
        if mark.name in OUTCOME_MARKS:
            problems.append(
                f"{cls.__name__} has a class-level pytestmark {mark.name}, which would change the outcome of "
                f"every standard test; remove it, and for each standard test this backend fails, {HOW_TO_OVERRIDE}")
    return problems


def module_problems(module: object, classes: list[type[Any]]) -> list[str]:
    marks = [m for m in _own_marks(module) if m.name in OUTCOME_MARKS]
    if not marks or not classes:
        return []
    names = ", ".join(c.__name__ for c in classes)
    return [f"module {getattr(module, '__name__', module)} has a module-level pytestmark "
            f"{', '.join(m.name for m in marks)}, which would change the outcome of every standard test of {names}; "
            f"remove it, and for each standard test this backend fails, {HOW_TO_OVERRIDE}"]


def _is_fixture(obj: object) -> bool:
    return type(obj).__name__ == "FixtureFunctionDefinition" or hasattr(obj, "_pytestfixturefunction")


# -- items ---------------------------------------------------------------------------------


def standard_name(item: pytest.Item) -> str | None:
    """The standard test an item runs (overridden or not), or None for any other item."""
    cls = getattr(item, "cls", None)
    if cls is None or not is_suite_class(cls):
        return None
    name = getattr(item, "originalname", None) or item.name.split("[")[0]
    return name if name in standard_tests() else None


def is_overridden(item: pytest.Item, name: str) -> bool:
    return not _defined_by_suite(item.cls, name)  # type: ignore[attr-defined]


def _suite_fixture_names() -> set[str]:
    names = {"store"}
    names.update(n for n in protected_names() if _is_fixture(getattr(_suite(), n, None)))
    return names - OVERRIDABLE_FIXTURES


def item_problems(item: pytest.Item) -> Iterator[str]:
    """Marks and fixtures that would change a standard test: see the module's docstring."""
    name = standard_name(item)
    if name is None:
        return
    overridden = is_overridden(item, name)
    allowed = 1 if overridden else 0  # (the override's own strict xfail, checked with its class)
    outcome = [(node, mark) for node, mark in item.iter_markers_with_node() if mark.name in OUTCOME_MARKS]
    if len(outcome) > allowed:
        extra = ", ".join(f"{mark.name} (from {node.nodeid or node.name})" for node, mark in outcome)
        yield (f"{item.nodeid} is a standard conformance test but carries {extra}; a skip or xfail may reach a "
               f"standard test only as its override's own mark: {HOW_TO_OVERRIDE}")
    info = getattr(item, "_fixtureinfo", None)
    definitions = getattr(info, "name2fixturedefs", {}) or {}
    for fixture in sorted(_suite_fixture_names() & set(getattr(item, "fixturenames", ()))):
        chain = definitions.get(fixture)
        if not chain:
            continue
        module = getattr(inspect.unwrap(chain[-1].func), "__module__", "") or ""
        if not module.startswith("vectorstore_conformance"):
            yield (f"{item.nodeid} uses the fixture {fixture!r} from {module}, which overrides the conformance "
                   f"suite's own; remove that fixture (a backend configures the suite only through store_url)")


def runtime_problem(item: pytest.Item, report: pytest.TestReport, excinfo: Any) -> str | None:
    """Why a standard test's skipped or xfailed report is not acceptable (None if it is)."""
    name = standard_name(item)
    if name is None or is_overridden(item, name):
        return None
    if hasattr(report, "wasxfail"):
        return (f"{item.nodeid} is a standard conformance test and was turned into an xfail at run time "
                f"({report.wasxfail}); only an override marked with a strict xfail may fail expectedly")
    if report.skipped and not (excinfo is not None and isinstance(excinfo.value, CapabilityNotDeclared)):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        return (f"{item.nodeid} is a standard conformance test and was skipped from outside the suite ({reason}); "
                "a standard test may skip only for a capability the backend does not declare. Remove the skip "
                f"(from a fixture, conftest or hook); if this backend fails the test, {HOW_TO_OVERRIDE}")
    return None
