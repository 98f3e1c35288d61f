"""The vectorstore conformance suite: one executable specification for every backend.

Run it against installed backends or a URL::

    pytest --pyargs vectorstore_conformance --vectorstore-backend=sqlite
    pytest --pyargs vectorstore_conformance --vectorstore-url=postgresql://me@localhost/test

Or from a third-party backend's own tests::

    import pytest
    from vectorstore_conformance import ConformanceSuite

    class TestMyBackend(ConformanceSuite):
        @pytest.fixture
        def store_url(self, tmp_path):
            return f"mydb:///{tmp_path}/store"   # a NEW, EMPTY store for each test

A standard test may be overridden only by marking the override
``@pytest.mark.xfail(reason=..., strict=True)``; nothing else the suite defines (helpers,
fixtures other than ``store_url``) may be. The plugin enforces it at collection time
(:mod:`vectorstore_conformance.guard`): the run fails naming the override.
"""

from __future__ import annotations

from vectorstore_conformance.domain.agent_memory import AgentMemoryConformance
from vectorstore_conformance.domain.media import MediaConformance
from vectorstore_conformance.domain.ruvector import RuVectorConformance
from vectorstore_conformance.suite.bulk import BulkConformance
from vectorstore_conformance.suite.concurrency import ConcurrencyConformance
from vectorstore_conformance.suite.errors import BadInputConformance, MalformedCallConformance
from vectorstore_conformance.suite.filters import FilterConformance
from vectorstore_conformance.suite.fuzz import FuzzConformance
from vectorstore_conformance.suite.lifecycle import LifecycleConformance
from vectorstore_conformance.suite.persistence import PersistenceConformance
from vectorstore_conformance.suite.recall import RecallConformance
from vectorstore_conformance.suite.records import RecordConformance
from vectorstore_conformance.suite.search import SearchConformance
from vectorstore_conformance.suite.transactions import TransactionConformance
from vectorstore_conformance.suite.vectorless import VectorlessConformance


class ConformanceSuite(
    LifecycleConformance,
    RecordConformance,
    SearchConformance,
    RecallConformance,
    FilterConformance,
    FuzzConformance,
    BadInputConformance,
    MalformedCallConformance,
    TransactionConformance,
    PersistenceConformance,
    ConcurrencyConformance,
    BulkConformance,
    VectorlessConformance,
    AgentMemoryConformance,
    MediaConformance,
    RuVectorConformance,
):
    """Every standard test. Subclass it and provide a ``store_url`` fixture."""


def shadowed_tests() -> dict[str, list[str]]:
    """Test names defined by more than one part of the suite (in the combined class, only one would run)."""
    owners: dict[str, list[str]] = {}
    for part in ConformanceSuite.__mro__[1:]:
        for name in vars(part):
            if name.startswith("test_"):
                owners.setdefault(name, []).append(part.__name__)
    return {name: parts for name, parts in owners.items() if len(parts) > 1}


__all__ = ["ConformanceSuite", "shadowed_tests"]
