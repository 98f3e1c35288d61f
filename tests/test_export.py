"""``vectorstore export``: a real PostgreSQL store (embedded server, fresh schema) copied into a new
SQLite file, reopened and compared field by field; refusal; checksum mismatch detection."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vectorstore as vs
from vectorstore.cli import main
from vectorstore.transfer import (
    ExportConflict,
    ExportMismatch,
    collection_summary,
    export_store,
    export_urls,
    record_digest,
    validate_export,
)

FIELDS = {"title": "text", "year": "int", "rating": "float", "adult": "bool", "day": "date", "seen": "timestamp",
          "extra": "json", "genre_ids": "int[]", "tags": "text[]"}


def _media_records() -> list[dict[str, Any]]:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, 6)).astype(np.float32)
    vectors[3] = np.array([1e-30, -0.0, 3.4e38, 0.1, -1.0, 2.0], dtype=np.float32)  # odd bit patterns
    out: list[dict[str, Any]] = []
    for i in range(40):
        full = i % 3 != 0
        fields: dict[str, Any] = {"title": f"Tïtle “{i}” \t ✓ 😀" if i != 5 else ""}
        if full:
            fields.update(year=1950 + i if i != 7 else -(2**63), rating=0.1 + 0.2 * i if i != 8 else 2.0**-1074,
                          adult=i % 2 == 0, day=dt.date(1999, 12, 31) + dt.timedelta(days=i),
                          seen=dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.UTC) + dt.timedelta(hours=i),
                          extra={"k": [1, 2.5, None, {"z": True}], "n": i}, genre_ids=[i, -i, 2**62],
                          tags=["a", "ß", ""] if i % 4 else [])
        out.append({"id": f"m{i:03d}" if i != 9 else "ünïcode-id", "vector": None if i % 10 == 4 else vectors[i],
                    "fields": fields, "metadata": {"i": i, "nested": {"x": [i, "y"]}, "f": 0.30000000000000004}
                    if i % 5 else {}})
    return out


async def _fill(store: vs.AsyncStore) -> None:
    media = await store.create_collection("media", dim=6, metric="l2", fields=FIELDS,
                                          index=vs.HNSW(m=8, ef_construction=40))
    await media.upsert(_media_records())
    memories = await store.create_collection("memories", dim=4, fields={"n": "int", "note": "text"}, id_type="int")
    ids = await memories.upsert([{"vector": [1, 2, 3, float(i + 1)], "fields": {"n": i}} for i in range(25)])
    assert ids == list(range(1, 26))
    await memories.upsert([{"id": 500, "vector": None, "fields": {"note": "no vector"}}])
    await memories.allocate_ids(0, after=1000)  # the sequence is ahead of every stored id
    await memories.delete([3, 4])
    await store.create_collection("empty", dim=3, metric="inner_product", fields={"b": "bool"}, id_type="int")


@pytest.fixture
def pg_url() -> Iterator[str]:
    from vectorstore_postgres.testing import isolated_url

    url = isolated_url()

    async def setup() -> None:
        store = await vs.open_store(url)
        try:
            await _fill(store)
        finally:
            await store.aclose()

    asyncio.run(setup())
    yield url


def _all(store: vs.Store, name: str) -> list[vs.Record]:
    return list(store.collection(name).scan(batch_size=7))


def _same_records(a: list[vs.Record], b: list[vs.Record]) -> None:
    assert [r.id for r in a] == [r.id for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.fields == y.fields and type(x.fields) is type(y.fields), x.id
        for name in x.fields:  # types too: 1 vs 1.0 vs True
            assert type(x.fields[name]) is type(y.fields[name]), (x.id, name)
        assert x.metadata == y.metadata, x.id
        if x.vector is None:
            assert y.vector is None, x.id
        else:
            assert y.vector is not None and x.vector.dtype == y.vector.dtype == np.float32
            assert x.vector.tobytes() == y.vector.tobytes(), x.id


@pytest.mark.postgres
def test_export_postgres_to_sqlite_copies_everything(pg_url: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    target = f"sqlite:///{tmp_path}/backup.db"
    assert main(["export", pg_url, target]) == 0
    out = " ".join(capsys.readouterr().out.split())  # unwrapped
    # Not a TTY: plain progress lines, then the verified summary.
    assert "media: copying 40 record(s)" in out and "media: 40 record(s) verified" in out
    assert "3 collection(s), 64 record(s) exported and verified" in out
    assert "id sequence at 1000" in out

    source, copy = vs.connect(pg_url), vs.connect(target)
    try:
        assert copy.list_collections() == source.list_collections()
        assert [s.name for s in copy.list_collections()] == ["empty", "media", "memories"]
        assert list(copy.collection("media").spec.fields) == list(FIELDS)  # field order kept
        for name in ("media", "memories", "empty"):
            _same_records(_all(source, name), _all(copy, name))
        got = {r.id: r for r in _all(copy, "media")}
        assert got["m000"].fields["year"] is None and got["m000"].fields["tags"] is None  # NULLs stay NULL
        assert got["m004"].vector is None and got["m001"].fields["seen"].tzinfo is not None
        assert got["m007"].fields["year"] == -(2**63) and got["m008"].fields["rating"] == 2.0**-1074
        # The sequence continues where the source's would: above 1000, not above 500.
        assert copy.collection("memories").last_id() == 1000
        assert copy.collection("memories").allocate_ids(1) == [1001]
        hits = copy.collection("media").search(_media_records()[1]["vector"], k=1)
        assert hits[0].id == "m001"
        # Checksums are computed the same way on both sides.
        for name in ("media", "memories"):
            a = source.run(collection_summary(source.run(source.async_store.collection(name))))
            b = copy.run(collection_summary(copy.run(copy.async_store.collection(name))))
            assert a.checksum == b.checksum and a.records == b.records
    finally:
        source.close()
        copy.close()


@pytest.mark.postgres
def test_export_refuses_existing_collections_and_writes_nothing(pg_url: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    target = f"sqlite:///{tmp_path}/backup.db"
    asyncio.run(export_urls(pg_url, target))
    source = vs.connect(pg_url)
    try:
        source.create_collection("newer", dim=2).upsert([{"id": "n", "vector": [1, 0]}])
        source.collection("media").upsert([{"id": "added", "vector": [0.5] * 6}])
    finally:
        source.close()

    with pytest.raises(ExportConflict) as info:
        asyncio.run(export_urls(pg_url, target))
    assert info.value.names == ["media", "memories", "empty"] or sorted(info.value.names) == [
        "empty", "media", "memories"]
    assert isinstance(info.value, vs.CollectionExists) and "--overwrite" in str(info.value)
    assert main(["export", pg_url, target]) == 2
    assert "already has collection(s)" in " ".join(capsys.readouterr().out.split())
    copy = vs.connect(target)
    try:  # nothing written: not even the collection that did not collide
        assert [s.name for s in copy.list_collections()] == ["empty", "media", "memories"]
        assert copy.collection("media").count() == 40
    finally:
        copy.close()

    report = asyncio.run(export_urls(pg_url, target, overwrite=True, batch_size=16))
    assert {c.name: c.records for c in report.collections} == {"empty": 0, "media": 41, "memories": 24, "newer": 1}
    copy = vs.connect(target)
    try:
        assert copy.collection("media").get(["added"])[0].vector.tolist() == [0.5] * 6
    finally:
        copy.close()


@pytest.mark.postgres
def test_validation_names_the_collection_and_first_differing_id(pg_url: str, tmp_path: Path) -> None:
    target = f"sqlite:///{tmp_path}/backup.db"
    asyncio.run(export_urls(pg_url, target))

    def validate() -> ExportMismatch:
        async def go() -> None:
            source, copy = await vs.open_store(pg_url), await vs.open_store(target)
            try:
                await validate_export(source, copy)
            finally:
                await source.aclose()
                await copy.aclose()

        with pytest.raises(ExportMismatch) as info:
            asyncio.run(go())
        return info.value

    copy = vs.connect(target)
    media = copy.collection("media")
    original = media.get(["m011", "m020"])
    try:
        # One bit of one vector.
        bits = original[1].vector.copy()
        bits.view(np.uint32)[2] ^= 1
        media.upsert([vs.Record("m020", bits, original[1].fields, original[1].metadata)])
        found = validate()
        assert (found.collection, found.first_id) == ("media", "m020") and "m020" in str(found)
        # A field changed to an equal-looking value of another type is a difference too (1 vs 1.0 is
        # not possible in a typed field; use metadata).
        media.upsert([vs.Record("m011", original[0].vector, original[0].fields, {**original[0].metadata, "i": 11.5})])
        found = validate()
        assert (found.collection, found.first_id) == ("media", "m011")
        media.upsert(original)
        # A missing record: the count and the first id differ.
        copy.collection("memories").delete([17])
        found = validate()
        assert (found.collection, found.first_id) == ("memories", 17) and "record(s)" in str(found)
    finally:
        copy.close()


def test_digest_encodes_every_field_type_canonically() -> None:
    spec = vs.CollectionSpec(name="c", dim=2, fields={"t": "timestamp", "f": "float", "j": "json"})
    base = vs.Record("a", np.array([1, 2], dtype=np.float32),
                     {"t": dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))), "f": 0.1,
                      "j": {"b": 1, "a": [1.0]}}, {"m": 1})
    same = vs.Record("a", [1.0, 2.0], {"t": dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC), "f": 0.1,
                                       "j": {"a": [1], "b": 1.0}}, {"m": 1.0})
    assert record_digest(spec, base) == record_digest(spec, same)
    for changed in ({"f": 0.1 + 1e-17}, {"f": 0.30000000000000004}, {"t": None}):
        other = vs.Record("a", base.vector, {**base.fields, **changed}, base.metadata)
        if other.fields != base.fields:
            assert record_digest(spec, other) != record_digest(spec, base)
    assert record_digest(spec, vs.Record("a", None, base.fields, base.metadata)) != record_digest(spec, base)


def test_export_between_memory_stores_and_same_store_refused(tmp_path: Path) -> None:
    async def go() -> None:
        source, target = await vs.open_store("memory://"), await vs.open_store("memory://")
        await _fill(source)
        report = await export_store(source, target)
        assert [c.name for c in report.collections] == ["empty", "media", "memories"]
        assert (await (await target.collection("memories")).allocate_ids(1)) == [1001]
        url = f"sqlite:///{tmp_path}/same.db"
        a, b = await vs.open_store(url), await vs.open_store(url)
        with pytest.raises(vs.ConfigError, match="same store"):
            await export_store(a, b)
        for store in (source, target, a, b):
            await store.aclose()

    asyncio.run(go())


# -- collections without vectors -----------------------------------------------------------


async def _fill_vectorless(store: vs.AsyncStore) -> None:
    notes = await store.create_collection("notes", dim=None, fields={"title": "text", "extra": "json"}, id_type="int")
    await notes.upsert([{"fields": {"title": f"n{i}", "extra": {"i": i}}, "metadata": {"i": i}} for i in range(30)])
    await notes.allocate_ids(0, after=100)
    # A holding collection as the migration tool made them before collections could lack vectors.
    legacy = await store.create_collection("legacy", dim=1, fields={"value": "json"}, id_type="int")
    await legacy.upsert([{"id": i, "vector": None, "fields": {"value": [i]}} for i in range(1, 6)])


@pytest.mark.parametrize("source_kind", ["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_export_copies_collections_without_vectors_as_such(tmp_path: Path, source_kind: str) -> None:
    target = f"sqlite:///{tmp_path}/backup.db"

    async def go() -> None:
        if source_kind == "memory":
            source = await vs.open_store("memory://")
        else:
            from vectorstore_postgres.testing import isolated_url

            source = await vs.open_store(isolated_url())
        destination = await vs.open_store(target)
        try:
            await _fill_vectorless(source)
            report = await export_store(source, destination)
            assert {c.name: c.records for c in report.collections} == {"legacy": 5, "notes": 30}
            specs = {s.name: s for s in await destination.list_collections()}
            assert specs == {s.name: s for s in await source.list_collections()}
            assert (specs["notes"].dim, specs["legacy"].dim) == (None, 1)  # the legacy one is copied as it is
            notes = await destination.collection("notes")
            got = await notes.get([1, 30])
            assert [(r.vector, r.fields, r.metadata) for r in got] == [
                (None, {"title": "n0", "extra": {"i": 0}}, {"i": 0}),
                (None, {"title": "n29", "extra": {"i": 29}}, {"i": 29})]
            assert await notes.last_id() == 100
            with pytest.raises(vs.InvalidInput, match="has no vectors"):
                await notes.search([1.0], k=1)
        finally:
            await source.aclose()
            await destination.aclose()

    asyncio.run(go())


def test_export_bad_arguments_exit_2_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    with vs.connect(source) as store:
        store.create_collection("docs", dim=2).upsert([{"id": "a", "vector": [1, 0]}])
    dest = tmp_path / "dest.db"
    missing = tmp_path / "missing.db"
    cases = [
        ([source, f"sqlite:///{dest}", "--batch-size", "0"], "--batch-size (batch_size) must be a whole number from 1 "
                                                             "to 100,000 (records per batch), got 0"),
        ([source, f"sqlite:///{dest}", "--overwrite", "--batch-size", "100001"], "got 100001"),
        ([f"sqlite:///{missing}", f"sqlite:///{dest}"], "there is no vectorstore store at the source"),
        ([source, source], "the source and the destination are the same store"),
        ([source, f"sqlite:///{tmp_path}/./source.db"], "the source and the destination are the same store"),
        ([source, "no-scheme"], "has no scheme"),
        ([source, "mongodb://localhost/db"], "installed schemes"),
        ([source, f"sqlite:///{dest}?readers=0"], "readers"),
        (["nowhere", f"sqlite:///{dest}"], "has no scheme"),
    ]
    for args, message in cases:
        assert main(["export", *args]) == 2, args
        out = " ".join(capsys.readouterr().out.split())
        assert message in out, (args, out)
    with pytest.raises(SystemExit) as info:
        main(["export", source, f"sqlite:///{dest}", "--batch-size", "lots"])
    assert info.value.code == 2 and "invalid int value: 'lots'" in capsys.readouterr().err
    assert not dest.exists() and not missing.exists()
    with vs.connect(source) as store:
        assert [s.name for s in store.list_collections()] == ["docs"] and store.collection("docs").count() == 1
