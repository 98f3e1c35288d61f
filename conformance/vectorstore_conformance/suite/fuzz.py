"""The fuzzers of the suite (:mod:`vectorstore_conformance.suite.fuzzers`), which need hypothesis
(the ``test`` extra). Without it the same standard tests exist and each fails saying what to
install, so a pytest run that merely loads this plugin never breaks on the missing package."""

from __future__ import annotations

from typing import Any

import pytest

try:
    import hypothesis  # noqa: F401
except ImportError:  # pragma: no cover - exercised where hypothesis is not installed

    def _needs_hypothesis(self: Any, *args: Any, **kwargs: Any) -> None:
        """Fails: the fuzzers need hypothesis.

        Troubleshooting: pip install 'vectorstore[test]' (or pip install hypothesis).
        """
        pytest.fail("the conformance suite's fuzzers need hypothesis: pip install 'vectorstore[test]' "
                    "(or pip install hypothesis)", pytrace=False)

    class FuzzConformance:
        """The fuzzers (hypothesis is not installed: each fails, saying so)."""

        test_fuzzed_dict_filters_answer_as_the_reference_or_raise_a_typed_error = _needs_hypothesis
        test_fuzzed_typed_trees_answer_as_the_reference_or_raise_a_typed_error = _needs_hypothesis
        test_fuzzed_records_are_stored_exactly_or_refused_with_nothing_written = _needs_hypothesis
        test_fuzzed_search_arguments_answer_or_raise_a_typed_error = _needs_hypothesis

else:
    from vectorstore_conformance.suite.fuzzers import FuzzConformance  # type: ignore[assignment]

__all__ = ["FuzzConformance"]
