"""The conformance suite documents itself: every standard test says what it checks and how to
troubleshoot a failure (the README promises it)."""

from __future__ import annotations

import inspect

import pytest

from vectorstore_conformance import ConformanceSuite

STANDARD = sorted(name for name in dir(ConformanceSuite) if name.startswith("test_"))


@pytest.mark.parametrize("name", STANDARD)
def test_every_standard_test_has_a_troubleshooting_docstring(name: str) -> None:
    """A docstring whose first paragraph says what is checked, and a "Troubleshooting:" paragraph
    with what an implementer should look at when the test fails."""
    doc = inspect.getdoc(getattr(ConformanceSuite, name)) or ""
    summary, _, rest = doc.partition("\n\n")
    assert summary.strip() and not summary.startswith("Troubleshooting"), f"{name} has no summary"
    assert "\nTroubleshooting:" in "\n" + rest or rest.startswith("Troubleshooting:"), (
        f"{name}'s docstring has no 'Troubleshooting:' paragraph")
    advice = rest[rest.index("Troubleshooting:") + len("Troubleshooting:"):].strip()
    assert len(advice.split()) >= 6, f"{name}'s troubleshooting advice is too short to help: {advice!r}"
