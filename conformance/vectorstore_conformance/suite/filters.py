"""The filter language: contract cases, errors, the typed tree."""

from __future__ import annotations

from typing import Any

import pytest

import vectorstore as vs
from vectorstore_conformance.helpers import load_contract

FILTERS = load_contract("filters.json")


def _load(store: vs.Store) -> vs.Collection:
    col = store.create_collection("films", dim=2, fields=FILTERS["fields"])
    col.upsert([{"id": r["id"], "vector": [1.0, float(i)], "fields": r["fields"], "metadata": r.get("metadata")}
                for i, r in enumerate(FILTERS["records"])])
    return col


class FilterConformance:
    @pytest.mark.parametrize("case", FILTERS["cases"], ids=[c["name"] for c in FILTERS["cases"]])
    def test_filter_contract(self, store: vs.Store, case: dict[str, Any]) -> None:
        """Each case of contracts/filters.json selects exactly the expected ids, in count(), search()
        and delete().

        Troubleshooting: read the case's name and the NULL rules in vectorstore/filters.py; compile every
        condition to a two-valued SQL expression (never NULL) so that $not is an exact complement. Metadata
        path keys may hold quotes, dots and backslashes: bind each key as a parameter (PostgreSQL: a text[]
        path for #>), never splice keys into a JSON path string.
        """
        col = _load(store)
        expect = sorted(case["expect"])
        where = case["where"] if "where" in case else vs.MetaComparison(
            tuple(case["meta"]["path"]), vs.Op(case["meta"]["op"]), case["meta"]["value"])
        assert col.count(where) == len(expect), case["name"]
        hits = col.search([1.0, 0.0], k=len(FILTERS["records"]), where=where)
        assert sorted(h.id for h in hits) == expect, case["name"]
        if where:
            assert col.delete(where=where) == len(expect)
            remaining = {r.id for r in col.scan()}
            assert remaining == {r["id"] for r in FILTERS["records"]} - set(expect)

    def test_long_condition_lists(self, store: vs.Store) -> None:
        """An $or of 1,000 equalities and an $and of 3,000 inequalities count and search like their
        short equivalents ($in / $nin) on every backend, and $in / $nin lists of 40,000 values of each
        scalar type (past every driver's parameter limit) answer as their short equivalents do.

        Troubleshooting: a chain of 1,000 ORs exceeds SQLite's maximum expression depth (1,000) and
        a statement's parameter limit may be near; nest long AND/OR lists in groups (see
        vectorstore.sqlfilter) and bind long lists as one array parameter.
        """
        col = _load(store)
        ids = {r["id"]: r["fields"].get("year") for r in FILTERS["records"]}
        years = sorted({y for y in ids.values() if y is not None})
        either = {"$or": [{"year": y} for y in range(1000, 2000)]}
        neither = {"$and": [{"year": {"$ne": y}} for y in range(0, 3000) if y != years[0]]}
        assert col.count(either) == col.count({"year": {"$in": list(range(1000, 2000))}}) == sum(
            1 for y in ids.values() if y is not None and 1000 <= y < 2000)
        assert col.count(neither) == col.count({"year": years[0]}) + sum(1 for y in ids.values() if y is None)
        hits = col.search([1.0, 0.0], k=len(ids), where=either)
        assert sorted(h.id for h in hits) == sorted(i for i, y in ids.items() if y is not None and 1000 <= y < 2000)
        # $in / $nin of 40,000 values (past PostgreSQL's 32,767 and SQLite's 32,766 parameters), of
        # every scalar type, as a long list is bound (one array parameter): same answers as short lists.
        for name, few, pad in (("year", [1979, 1942], lambda i: 100_000 + i),
                               ("title", ["Alien", "Fargo"], lambda i: f"no such title {i}"),
                               ("rating", [8.5], lambda i: 100.0 + i),
                               ("released", ["1979-05-25"], lambda i: f"{3000 + i % 6000:04d}-01-01"),
                               ("added", ["2020-01-01T00:00:00+00:00"],
                                lambda i: f"2100-01-01T00:00:{i % 60:02d}.{i:06d}+00:00")):
            many = few + [pad(i) for i in range(40_000)]
            assert col.count({name: {"$in": many}}) == col.count({name: {"$in": few}}), name
            assert col.count({name: {"$nin": many}}) == col.count({name: {"$nin": few}}), name

    @pytest.mark.parametrize(("where", "culprit"), [
        ({"nope": 1}, "nope"),
        ({"year": {"$gtt": 1}}, "$gtt"),
        ({"$xor": []}, "$xor"),
        ({"year": {"$gt": "1999"}}, "year"),
        ({"year": 1.5}, "year"),
        ({"rating": {"$gt": float("nan")}}, "rating"),
        ({"adult": {"$gt": True}}, "$gt"),
        ({"adult": 1}, "adult"),
        ({"genres": 27}, "$overlap"),
        ({"genres": {"$overlap": ["x"]}}, "genres"),
        ({"title": {"$contains": ["x"]}}, "$contains"),
        ({"title": {"$in": "abc"}}, "$in"),
        ({"title": {"$in": ["a", None]}}, "$exists"),
        ({"title": ["a", "b"]}, "$in"),
        ({"year": {"$between": [1]}}, "$between"),
        ({"year": {"$gt": None}}, "$exists"),
        ({"released": {"$gt": "yesterday"}}, "released"),
        ({"extra": {"k": 1}}, "extra"),
        ({"$and": []}, "$and"),
        ({"$or": {"year": 1}}, "$or"),
        ({"$not": [{"year": 1}]}, "$not"),
        ({"year": {"$exists": 1}}, "true or false"),
        ("year > 3", "dict"),
        ({"metadata.genre": {"$gt": "a"}}, "$gt"),
        ({"metadata.": 1}, "metadata"),
        ({"metadata.a b": 1}, "metadata"),
        ({"metadata.x": [1, 2]}, "scalars"),
        ({"metadata.x": {"k": 1}}, "scalars"),
        ({"metadata.x": {"$in": [None]}}, "scalars"),
        ({"metadata.x": float("inf")}, "scalars"),
        ({"metadata.x": 2.0**62}, "pass an int"),
    ])
    def test_invalid_filters_name_the_culprit(self, store: vs.Store, where: Any, culprit: str) -> None:
        """A bad filter raises InvalidFilter whose message names the field or operator at fault —
        in search, count and delete alike, and nothing is deleted.

        Troubleshooting: raised by the core's parser (vectorstore.filters.parse_filter) before search, count or
        delete reach the backend, so a backend's code cannot cause this failure; another error type, a message
        without the culprit or a deleted record means the backend was reached with the filter unparsed: install
        vectorstore and vectorstore_conformance from the same release, and make sure the store under test is opened
        through vectorstore (the store_url fixture).
        """
        col = _load(store)
        for call in (lambda: col.search([1, 0], where=where), lambda: col.count(where),
                     lambda: col.delete(where=where)):
            with pytest.raises(vs.InvalidFilter) as info:
                call()
            assert culprit in str(info.value)
        assert col.count() == len(FILTERS["records"])

    def test_typed_tree_equals_dict_form(self, store: vs.Store) -> None:
        """The typed filter tree (Or / And / Not / Comparison) and the equivalent dict select the same records: both
        count 3 of the contract's films (Alien, Casablanca, Fargo); a typed Comparison on an unknown field raises
        InvalidFilter.

        Troubleshooting: both forms parse to the same tree, so a count other than 3 comes from the backend's
        compiled filter: text equality and $in must be case-sensitive (the film titled 'alien' must not match
        'Alien': no NOCASE or case-insensitive collation), $not must be the exact complement of a two-valued
        condition, and a bool field must compare with its stored form (SQLite 0 / 1).
        """
        col = _load(store)
        tree = vs.Or((vs.And((vs.Comparison("year", vs.Op.GTE, 1990), vs.Not(vs.Comparison("adult", vs.Op.EQ, True)))),
                      vs.Comparison("title", vs.Op.IN, ("Alien", "Casablanca"))))
        as_dict = {"$or": [{"$and": [{"year": {"$gte": 1990}}, {"$not": {"adult": True}}]},
                           {"title": {"$in": ["Alien", "Casablanca"]}}]}
        assert col.count(tree) == col.count(as_dict) == 3
        with pytest.raises(vs.InvalidFilter):
            col.count(vs.Comparison("nope", vs.Op.EQ, 1))
