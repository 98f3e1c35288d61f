"""Persistence across close and reopen (declared by the ``persistent`` capability)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

import vectorstore as vs
from vectorstore import registry
from vectorstore.config import resolve
from vectorstore_conformance.helpers import reopened


class PersistenceConformance:
    def test_data_survives_reopen(self, store: vs.Store, store_url: str) -> None:
        """A persistent backend shows the same collections, definitions and records after reopening;
        a non-persistent one (memory) starts empty, as it declares.

        Troubleshooting: commit before close; store the full collection definition in the catalog.
        """
        col = store.create_collection("keep", dim=3, metric="l2", fields={"day": "date", "n": "int"},
                                      index=vs.HNSW(m=12, ef_construction=40), id_type="int")
        col.upsert([{"id": i, "vector": [i, 0.5, -i], "fields": {"day": dt.date(2020, 1, i + 1), "n": i},
                     "metadata": {"i": i}} for i in range(20)])
        spec = col.spec
        with reopened(store, store_url) as again:
            if again is None:
                return
            assert again.list_collections() == [spec]
            kept = again.collection("keep")
            assert kept.count() == 20
            recs = kept.get([0, 19])
            assert [(r.id, r.fields, r.metadata, r.vector.tolist()) for r in recs] == [
                (0, {"day": dt.date(2020, 1, 1), "n": 0}, {"i": 0}, [0.0, 0.5, 0.0]),
                (19, {"day": dt.date(2020, 1, 20), "n": 19}, {"i": 19}, [19.0, 0.5, -19.0]),
            ]
            assert [h.id for h in kept.search([5, 0.5, -5], k=3)] == [5, 4, 6]

    def test_store_exists_without_creating_anything(self, store: vs.Store, store_url: str, tmp_path: Path) -> None:
        """store_exists(url) (sync) and store_exists_async(url) tell whether a store is there without
        creating one: true for this (opened, persistent) store, false for a URL never opened — and
        asking creates nothing. The sync one returns a bool, never a coroutine (which is always true).

        Troubleshooting: check for the backend's catalog read-only; never run its migrations.
        """
        spec = registry.backend_for_scheme(resolve(store_url).scheme)
        if spec.exists is None:
            with pytest.raises(vs.NotSupported):
                vs.store_exists(store_url)
            with pytest.raises(vs.NotSupported):
                asyncio.run(vs.store_exists_async(store_url))
            return
        assert vs.store_exists(store_url) is store.capabilities.persistent
        assert asyncio.run(vs.store_exists_async(store_url)) is store.capabilities.persistent
        if spec.test_url is None:
            return
        fresh = spec.test_url(None, tmp_path / "never-opened")
        assert vs.store_exists(fresh) is False
        assert asyncio.run(vs.store_exists_async(fresh)) is False
        assert not (tmp_path / "never-opened").exists()
