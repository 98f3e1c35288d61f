"""Collected by ``pytest --pyargs vectorstore_conformance``: the suite against the chosen targets."""

from vectorstore_conformance import ConformanceSuite


class TestConformance(ConformanceSuite):
    """Runs on every installed backend, or on --vectorstore-backend / --vectorstore-url targets."""
