"""A third-party backend, registered the way a plugin would be, runs the whole conformance suite;
and the suite cannot be passed without running it (the plugin's guard, tried route by route on
the same toy backend in a separate pytest run)."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import vectorstore as vs
from fixtures.toy_backend import toy_registered
from vectorstore_conformance import ConformanceSuite


@pytest.fixture(scope="module", autouse=True)
def toy_plugin() -> Iterator[None]:
    with toy_registered():
        yield


class TestToyBackendConformance(ConformanceSuite):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return "toy://"


def test_undeclared_transactions_raise_not_supported() -> None:
    store = vs.connect("toy://")
    try:
        with pytest.raises(vs.NotSupported, match="does not support transactions"):
            store.transaction()
    finally:
        store.close()


def test_no_suite_part_shadows_another() -> None:
    """Every part of the suite has its own test names, so none is silently dropped when combined."""
    from vectorstore_conformance import shadowed_tests

    assert shadowed_tests() == {}


# -- the guard -----------------------------------------------------------------------------

HEADER = '''
import pytest
import vectorstore as vs
from fixtures.toy_backend import toy_registered
from vectorstore_conformance import ConformanceSuite

@pytest.fixture(scope="module", autouse=True)
def toy_plugin():
    with toy_registered():
        yield
'''

STORE_URL = '''
    @pytest.fixture
    def store_url(self, tmp_path):
        return "toy://"
'''


def run_suite(pytester: pytest.Pytester, body: str, *args: str, conftest: str = "",
              module_prelude: str = "") -> pytest.RunResult:
    """Run ``class TestToy(ConformanceSuite)`` with ``body`` in a fresh pytest session."""
    if conftest:
        pytester.makeconftest(textwrap.dedent(conftest))
    source = HEADER + textwrap.dedent(module_prelude) + "\n\nclass TestToy(ConformanceSuite):\n" + STORE_URL + \
        textwrap.indent(textwrap.dedent(body), "    ")
    pytester.makepyfile(test_toy=source)
    return pytester.runpytest("-p", "no:cacheprovider", *args)


def refused(result: pytest.RunResult, *fragments: str) -> str:
    """The run failed, before running any test, with a message holding every fragment."""
    out = result.stdout.str() + result.stderr.str()
    assert result.ret != pytest.ExitCode.OK, out
    assert "cannot run as written" in out, out
    assert not [line for line in result.stdout.lines if " PASSED" in line or line.endswith(" passed")], out
    for fragment in fragments:
        assert fragment in out, (fragment, out)
    assert "strict=True" in out or "store_url" in out, out  # (says what to do)
    return out


def test_a_correct_override_runs_and_must_fail(pytester: pytest.Pytester) -> None:
    """The one allowed override: a strict xfail with a reason. It runs; an override that fails is
    XFAIL, one that passes (does nothing) fails the run as XPASS(strict)."""
    ok = run_suite(pytester, '''
        @pytest.mark.xfail(reason="counts are estimates here", strict=True)
        def test_count(self, store):
            raise AssertionError("estimate")
    ''', "-k", "test_count or test_delete_by_ids")
    ok.assert_outcomes(passed=1, xfailed=1)
    hollow = run_suite(pytester, '''
        @pytest.mark.xfail(reason="counts are estimates here", strict=True)
        def test_count(self, store):
            pass
    ''', "-k", "test_count")
    hollow.assert_outcomes(failed=1)
    assert "XPASS(strict)" in hollow.stdout.str()


def test_an_override_without_xfail_is_refused(pytester: pytest.Pytester) -> None:
    refused(run_suite(pytester, '''
        def test_count(self, store):
            pass
    '''), "TestToy.test_count", "without a strict xfail")


def test_xfail_false_is_refused(pytester: pytest.Pytester) -> None:
    """xfail(False, reason=...) is a mark that does nothing: the gutted test would pass."""
    refused(run_suite(pytester, '''
        @pytest.mark.xfail(False, reason="never", strict=True)
        def test_count(self, store):
            pass
    '''), "TestToy.test_count", "condition")


def test_a_non_strict_xfail_is_refused(pytester: pytest.Pytester) -> None:
    """A non-strict xfail would let an override that does nothing pass as XPASS."""
    refused(run_suite(pytester, '''
        @pytest.mark.xfail(reason="flaky here")
        def test_count(self, store):
            pass
    '''), "TestToy.test_count", "not strict")


@pytest.mark.parametrize(("mark", "says"), [
    ('@pytest.mark.xfail(reason="", strict=True)', "no reason"),
    ('@pytest.mark.xfail(reason="hangs", strict=True, run=False)', "run=False"),
    ('@pytest.mark.skip(reason="not for us")', "without a strict xfail"),
    ('@pytest.mark.xfail(reason="x", strict=True)\n@pytest.mark.skip(reason="and skip")', "without a strict xfail"),
])
def test_other_weak_override_marks_are_refused(pytester: pytest.Pytester, mark: str, says: str) -> None:
    refused(run_suite(pytester, f'''
        {textwrap.indent(mark, "        ").strip()}
        def test_count(self, store):
            pass
    '''), "TestToy.test_count", says)


def test_replacing_a_test_with_a_non_test_is_refused(pytester: pytest.Pytester) -> None:
    refused(run_suite(pytester, '''
        test_count = None
    '''), "TestToy.test_count", "does not run")
    refused(run_suite(pytester, '''
        def test_count(self, store):
            pass
        test_count.__test__ = False
    '''), "TestToy.test_count", "does not run")


def test_overriding_a_helper_the_standard_tests_call_is_refused(pytester: pytest.Pytester) -> None:
    """_check_search (bulk tests) would gut several tests at once."""
    refused(run_suite(pytester, '''
        def _check_search(self, *args, **kwargs):
            pass
    '''), "TestToy._check_search", "BulkConformance")


def test_overriding_a_fixture_of_the_suite_is_refused(pytester: pytest.Pytester) -> None:
    refused(run_suite(pytester, '''
        @pytest.fixture
        def clock(self):
            return None
    '''), "TestToy.clock", "fixture")


def test_overriding_the_plugins_store_fixture_from_a_conftest_is_refused(pytester: pytest.Pytester) -> None:
    refused(run_suite(pytester, "", "-k", "test_count", conftest='''
        import pytest
        import vectorstore as vs

        @pytest.fixture
        def store():
            yield vs.connect("memory://")
    '''), "test_count", "'store'")


def test_a_class_level_xfail_is_refused(pytester: pytest.Pytester) -> None:
    refused(run_suite(pytester, '''
        pytestmark = pytest.mark.xfail(reason="whole suite")
    '''), "TestToy", "class-level pytestmark xfail")


def test_a_module_level_skip_is_refused(pytester: pytest.Pytester) -> None:
    refused(run_suite(pytester, "", module_prelude='''
        pytestmark = pytest.mark.skip(reason="not today")
    '''), "module-level pytestmark skip")


def test_a_skip_mark_added_by_a_conftest_hook_is_refused(pytester: pytest.Pytester) -> None:
    refused(run_suite(pytester, "", "-k", "test_count", conftest='''
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.skip(reason="added by a hook"))
    '''), "test_count", "skip (from")


def test_a_skip_or_xfail_at_run_time_fails_the_test(pytester: pytest.Pytester) -> None:
    """pytest.skip() / pytest.xfail() in the store_url fixture would turn every test into a skip."""
    for call in ("pytest.skip('no server')", "pytest.xfail('no server')"):
        result = run_suite(pytester, f'''
            @pytest.fixture
            def store_url(self, tmp_path):
                {call}
        ''', "-k", "test_count or test_delete_by_ids")
        outcomes = result.parseoutcomes()
        assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 2, outcomes  # (errors: in set-up)
        assert not {"passed", "skipped", "xfailed"} & set(outcomes), outcomes
        assert "skip only for a capability" in result.stdout.str() or "xfail at run time" in result.stdout.str()


def test_the_suites_own_capability_skips_name_the_capability(pytester: pytest.Pytester) -> None:
    """The toy backend declares no transactions: the transaction tests are reported skipped,
    naming the capability, after checking that store.transaction() refuses with NotSupported."""
    result = run_suite(pytester, "", "-rs", "-k", "test_nested_transaction_is_a_savepoint")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*does not declare the 'transactions' capability*NotSupported*"])


def test_the_suite_does_not_run_without_its_plugin(pytester: pytest.Pytester) -> None:
    """Disabling the plugin (and so the guard) leaves the suite without its fixtures: nothing passes."""
    result = run_suite(pytester, "", "-p", "no:vectorstore_conformance", "-k", "test_count")
    result.assert_outcomes(errors=1)


def test_vectorstore_url_is_honoured_by_the_sqlite_backend(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """--vectorstore-url=sqlite:///...?options: each test gets a new file beside the one named, with
    the URL's options (a bad option fails the run), and the files are removed afterwards."""
    pytester.makepyfile(test_url="from vectorstore_conformance.test_conformance import TestConformance\n")
    bad = pytester.runpytest("-p", "no:cacheprovider", f"--vectorstore-url=sqlite:///{tmp_path}/x.db?readers=0",
                             "-k", "test_count and not allocat")
    bad.assert_outcomes(errors=1)
    assert "readers must be from 1 to 64" in bad.stdout.str()
    good = pytester.runpytest("-p", "no:cacheprovider", f"--vectorstore-url=sqlite:///{tmp_path}/sub/x.db?readers=3",
                              "-k", "test_count and not allocat")
    good.assert_outcomes(passed=1)
    assert list((tmp_path / "sub").iterdir()) == []
