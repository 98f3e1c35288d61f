"""Content vectors: store catalogue items, search them with filters, find similar items, and
re-rank by a hybrid of vector similarity and a metadata boost (rating and recency).

Each item is one record of ``content_vectors`` with the id ``"<media_type>:<content_id>"``, so
``(content_id, media_type)`` is unique and storing an item again replaces it.

Hybrid score (weights configurable and validated, defaults in brackets)::

    rating_score  = clamp(rating / rating_scale [10], 0, 1)           (0 without a rating)
    recency_score = 0.5 ** (age_days / recency_half_life_days [1826.25, five years])
                    (1 for future dates, 0 without a release date)
    boost         = rating [0.5] * rating_score + recency [0.5] * recency_score
    score         = vector [0.7] * similarity + metadata [0.3] * boost
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from vectorstore.embedding import Embedder, aembed
from vectorstore.errors import ConfigError, InvalidRecord
from vectorstore.media._util import Clock, check_int, check_ints, check_number, check_text_id, utc_now
from vectorstore.media.errors import AmbiguousContent, ContentNotFound, InvalidMediaInput, InvalidWeights
from vectorstore.media.schema import content_table, ensure_collection
from vectorstore.records import Hit, Record, Vector, coerce_date, coerce_metadata
from vectorstore.store import AsyncCollection, AsyncStore

if TYPE_CHECKING:
    from vectorstore.sync import Store

MEDIA_TYPE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

#: TMDB's genre ids (movies and TV), for readable explanations.
TMDB_GENRES: Mapping[int, str] = {
    28: "Action", 12: "Adventure", 16: "Animation", 35: "Comedy", 80: "Crime", 99: "Documentary",
    18: "Drama", 10751: "Family", 14: "Fantasy", 36: "History", 27: "Horror", 10402: "Music",
    9648: "Mystery", 10749: "Romance", 878: "Science Fiction", 10770: "TV Movie", 53: "Thriller",
    10752: "War", 37: "Western", 10759: "Action & Adventure", 10762: "Kids", 10763: "News",
    10764: "Reality", 10765: "Sci-Fi & Fantasy", 10766: "Soap", 10767: "Talk", 10768: "War & Politics",
}

ITEM_KEYS = frozenset({"content_id", "media_type", "embedding", "title", "overview", "genre_ids", "rating",
                       "popularity", "release_date", "metadata"})


def content_key(content_id: str, media_type: str) -> str:
    """The record id of an item: ``"<media_type>:<content_id>"`` (media types never hold ':')."""
    return f"{media_type}:{content_id}"


def check_media_type(value: object) -> str:
    if not isinstance(value, str) or not MEDIA_TYPE.fullmatch(value):
        raise InvalidMediaInput(
            f"media_type must be a short lower-case name such as 'movie' or 'tv' (a-z, 0-9, _ and -), got {value!r}"
        )
    return value


def _vector_eq(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


# -- values ------------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class ContentItem:
    """One catalogue item. ``embedding`` is None on reads that did not ask for vectors."""

    content_id: str
    media_type: str
    embedding: Vector | None = attrs.field(default=None, eq=attrs.cmp_using(eq=_vector_eq), repr=False)
    title: str | None = None
    overview: str | None = None
    genre_ids: tuple[int, ...] = ()
    rating: float | None = None
    popularity: float | None = None
    release_date: dt.date | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def key(self) -> str:
        return content_key(self.content_id, self.media_type)

    @classmethod
    def from_record(cls, record: Record | Hit) -> ContentItem:
        f = record.fields
        return cls(
            content_id=f["content_id"], media_type=f["media_type"], embedding=record.vector,
            title=f.get("title"), overview=f.get("overview"), genre_ids=tuple(f.get("genre_ids") or ()),
            rating=f.get("rating"), popularity=f.get("popularity"), release_date=f.get("release_date"),
            metadata=record.metadata, created_at=f.get("created_at"), updated_at=f.get("updated_at"),
        )


@attrs.frozen(slots=True)
class ContentHit:
    """A search result: the item (with its embedding when asked) and its scores."""

    item: ContentItem
    distance: float
    similarity: float


def _weight(name: str) -> Any:
    def check(_inst: object, _attr: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0.0 <= value <= 1.0:
            raise InvalidWeights(f"hybrid weight {name} must be a number in [0, 1], got {value!r}")

    return check


def _positive(name: str) -> Any:
    def check(_inst: object, _attr: object, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value <= 0:
            raise InvalidWeights(f"{name} must be a positive number, got {value!r}")

    return check


@attrs.frozen(slots=True)
class HybridWeights:
    """Weights of the hybrid re-rank: ``vector + metadata == 1`` and ``rating + recency == 1``."""

    vector: float = attrs.field(default=0.7, validator=_weight("vector"))
    metadata: float = attrs.field(default=0.3, validator=_weight("metadata"))
    rating: float = attrs.field(default=0.5, validator=_weight("rating"))
    recency: float = attrs.field(default=0.5, validator=_weight("recency"))
    rating_scale: float = attrs.field(default=10.0, validator=_positive("rating_scale"))
    recency_half_life_days: float = attrs.field(default=1826.25, validator=_positive("recency_half_life_days"))

    def __attrs_post_init__(self) -> None:
        if abs(self.vector + self.metadata - 1.0) > 1e-9:
            raise InvalidWeights(f"hybrid weights vector ({self.vector}) and metadata ({self.metadata}) must add "
                                 "up to 1, for example vector=0.7, metadata=0.3")
        if abs(self.rating + self.recency - 1.0) > 1e-9:
            raise InvalidWeights(f"boost weights rating ({self.rating}) and recency ({self.recency}) must add up "
                                 "to 1, for example rating=0.5, recency=0.5")

    @classmethod
    def coerce(cls, value: HybridWeights | Mapping[str, float] | None) -> HybridWeights:
        if value is None:
            return cls()
        if isinstance(value, HybridWeights):
            return value
        if not isinstance(value, Mapping):
            raise InvalidWeights(f"weights must be HybridWeights(...) or a dict, got {value!r}")
        unknown = set(value) - {f.name for f in attrs.fields(cls)}
        if unknown:
            raise InvalidWeights(f"unknown hybrid weight(s) {sorted(unknown)}; use vector, metadata, rating, "
                                 "recency, rating_scale, recency_half_life_days")
        args = dict(value)
        # Giving one of a pair implies the other.
        if "vector" in args and "metadata" not in args and isinstance(args["vector"], (int, float)):
            args["metadata"] = 1.0 - args["vector"]
        if "metadata" in args and "vector" not in args and isinstance(args["metadata"], (int, float)):
            args["vector"] = 1.0 - args["metadata"]
        if "rating" in args and "recency" not in args and isinstance(args["rating"], (int, float)):
            args["recency"] = 1.0 - args["rating"]
        if "recency" in args and "rating" not in args and isinstance(args["recency"], (int, float)):
            args["rating"] = 1.0 - args["recency"]
        return cls(**args)


@attrs.frozen(slots=True)
class HybridHit:
    """A hybrid re-rank result: the combined ``score``, its parts and a short explanation."""

    item: ContentItem
    score: float
    similarity: float
    boost: float
    rating_score: float
    recency_score: float
    matched_genres: tuple[int, ...]
    explanation: str


# -- scoring (pure; unit-tested) ---------------------------------------------------------------


def rating_score(rating: float | None, weights: HybridWeights) -> float:
    if rating is None:
        return 0.0
    return min(1.0, max(0.0, rating / weights.rating_scale))


def recency_score(release_date: dt.date | None, today: dt.date, weights: HybridWeights) -> float:
    if release_date is None:
        return 0.0
    age = (today - release_date).days
    return 1.0 if age <= 0 else float(0.5 ** (age / weights.recency_half_life_days))


def genre_label(genre_id: int) -> str:
    name = TMDB_GENRES.get(genre_id)
    return f"{name} ({genre_id})" if name else str(genre_id)


def explain(similarity: float, rscore: float, cscore: float, item: ContentItem, matched: Sequence[int],
            wanted: Sequence[int], weights: HybridWeights) -> str:
    """One line: the similarity, what boosted the item (or not) and which genres matched."""
    parts = [f"similarity {similarity:.2f}"]
    reasons = []
    if item.rating is not None and rscore >= 0.7:
        reasons.append(f"high rating {item.rating:g}/{weights.rating_scale:g}")
    if item.release_date is not None and cscore >= 0.7:
        reasons.append(f"recent release ({item.release_date.isoformat()})")
    boost = weights.rating * rscore + weights.recency * cscore
    if reasons:
        parts.append(f"boosted {boost:.2f} by " + " and ".join(reasons))
    elif boost > 0:
        details = []
        if item.rating is not None:
            details.append(f"rating {item.rating:g}/{weights.rating_scale:g}")
        if item.release_date is not None:
            details.append(f"released {item.release_date.isoformat()}")
        parts.append(f"small boost {boost:.2f} ({', '.join(details)})")
    else:
        parts.append("no boost (no rating or release date)")
    if matched:
        parts.append("genres matched: " + ", ".join(genre_label(g) for g in matched))
    elif wanted:
        parts.append("no requested genre matched")
    return "; ".join(parts)


def hybrid_rank(hits: Sequence[ContentHit], n: int, weights: HybridWeights, today: dt.date,
                wanted_genres: Sequence[int] = ()) -> list[HybridHit]:
    """Score, sort (score descending, ties by key) and keep the top ``n``."""
    out = []
    for hit in hits:
        item = hit.item
        rs = rating_score(item.rating, weights)
        cs = recency_score(item.release_date, today, weights)
        boost = weights.rating * rs + weights.recency * cs
        score = weights.vector * hit.similarity + weights.metadata * boost
        matched = tuple(g for g in item.genre_ids if g in set(wanted_genres))
        out.append(HybridHit(item, score, hit.similarity, boost, rs, cs, matched,
                             explain(hit.similarity, rs, cs, item, matched, wanted_genres, weights)))
    out.sort(key=lambda h: (-h.score, h.item.key))
    return out[:n]


# -- input -------------------------------------------------------------------------------------


def _opt_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMediaInput(f"{name} must be a string, got {type(value).__name__} {value!r}")
    return value


def _opt_number(value: object, name: str) -> float | None:
    return None if value is None else check_number(value, name, 0.0)


def _date(value: object, name: str) -> dt.date:
    try:
        return coerce_date(value, name)
    except InvalidRecord as exc:
        raise InvalidMediaInput(str(exc)) from None


def coerce_item(value: ContentItem | Mapping[str, Any], where: str) -> ContentItem:
    """Check one item given as a ContentItem or a dict with :data:`ITEM_KEYS`."""
    if isinstance(value, ContentItem):
        data: dict[str, Any] = {f.name: getattr(value, f.name) for f in attrs.fields(ContentItem)
                                if f.name in ITEM_KEYS}
    elif isinstance(value, Mapping):
        data = dict(value)
        if "vector" in data and "embedding" not in data:
            data["embedding"] = data.pop("vector")
        unknown = set(data) - ITEM_KEYS
        if unknown:
            raise InvalidMediaInput(f"{where} has unknown key(s) {sorted(unknown)}; an item has "
                                    f"{', '.join(sorted(ITEM_KEYS))} (put anything else in metadata)")
    else:
        raise InvalidMediaInput(f"{where} must be a ContentItem or a dict, got {type(value).__name__}")
    if "content_id" not in data or "media_type" not in data:
        raise InvalidMediaInput(f"{where} needs content_id and media_type")
    try:
        metadata = coerce_metadata(data.get("metadata"), where)
    except InvalidRecord as exc:
        raise InvalidMediaInput(str(exc)) from None
    release = data.get("release_date")
    return ContentItem(
        content_id=check_text_id(data["content_id"], f"{where}: content_id"),
        media_type=check_media_type(data["media_type"]),
        embedding=data.get("embedding"),
        title=_opt_text(data.get("title"), f"{where}: title"),
        overview=_opt_text(data.get("overview"), f"{where}: overview"),
        genre_ids=check_ints(data.get("genre_ids"), f"{where}: genre_ids"),
        rating=_opt_number(data.get("rating"), f"{where}: rating"),
        popularity=_opt_number(data.get("popularity"), f"{where}: popularity"),
        release_date=None if release is None else _date(release, f"{where}: release_date"),
        metadata=metadata,
    )


def content_filter(*, media_type: str | Sequence[str] | None = None, genre_ids: Sequence[int] | None = None,
                   min_rating: float | None = None,
                   release_date_range: Sequence[dt.date | str | None] | None = None,
                   where: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The store filter for the content search options (None when there is none)."""
    parts: list[dict[str, Any]] = []
    if media_type is not None:
        if isinstance(media_type, str):
            parts.append({"media_type": check_media_type(media_type)})
        else:
            types = [check_media_type(m) for m in media_type]
            if not types:
                raise InvalidMediaInput("media_type=[] matches nothing; pass None for every media type")
            parts.append({"media_type": {"$in": types}})
    if genre_ids is not None:
        genres = check_ints(genre_ids, "genre_ids")
        if not genres:
            raise InvalidMediaInput("genre_ids=[] matches nothing; pass None for every genre")
        parts.append({"genre_ids": {"$overlap": list(genres)}})
    if min_rating is not None:
        parts.append({"rating": {"$gte": check_number(min_rating, "min_rating")}})
    if release_date_range is not None:
        if isinstance(release_date_range, (str, bytes)) or len(release_date_range) != 2:
            raise InvalidMediaInput(f"release_date_range must be (start, end); either may be None, got "
                                    f"{release_date_range!r}")
        start, end = (None if v is None else _date(v, f"release_date_range[{i}]")
                      for i, v in enumerate(release_date_range))
        if start is not None and end is not None:
            if start > end:
                raise InvalidMediaInput(f"release_date_range starts ({start}) after it ends ({end})")
            parts.append({"release_date": {"$between": [start, end]}})
        elif start is not None:
            parts.append({"release_date": {"$gte": start}})
        elif end is not None:
            parts.append({"release_date": {"$lte": end}})
    if where:
        parts.append(dict(where))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


# -- the async class ---------------------------------------------------------------------------


class AsyncContentSearch:
    """Catalogue items in the ``content_vectors`` collection (``dim`` defaults to
    ``RUVECTOR_VECTOR_DIM``, 768). With an ``embedder``, items without an embedding are embedded
    from ``title`` and ``overview`` and text queries are accepted."""

    def __init__(self, store: AsyncStore, *, dim: int | None = None, embedder: Embedder | None = None,
                 weights: HybridWeights | Mapping[str, float] | None = None, clock: Clock | None = None) -> None:
        self.store = store
        self.table = content_table(dim)
        self._dim_given = dim is not None
        self.embedder = embedder
        self.weights = HybridWeights.coerce(weights)
        self._clock = clock or utc_now
        self._col: AsyncCollection | None = None

    @property
    def dim(self) -> int:
        dim = self._col.spec.dim if self._col is not None else self.table.dim
        assert dim is not None  # (the media collections always hold vectors)
        return dim

    async def collection(self) -> AsyncCollection:
        """The ``content_vectors`` collection (created on first use)."""
        if self._col is None:
            col = await ensure_collection(self.store, self.table, dim_given=self._dim_given)
            if self.embedder is not None and self.embedder.dim != col.spec.dim:
                raise ConfigError(f"the {self.embedder.name} embedder makes {self.embedder.dim}-d vectors but "
                                  f"content_vectors is {col.spec.dim}-d; use a matching embedder or dim")
            self._col = col
        return self._col

    async def _embed(self, texts: list[str]) -> Vector:
        if self.embedder is None:
            raise InvalidMediaInput("this item or query has no embedding; pass one, or create the content search "
                                    "with embedder=vectorstore.embedding.get_embedder(dim=...)")
        return await aembed(self.embedder, texts)

    async def upsert_content(self, item: ContentItem | Mapping[str, Any]) -> ContentItem:
        """Store one item (replacing the one with the same content_id and media_type)."""
        return (await self.upsert_batch([item]))[0]

    async def upsert_batch(self, items: Iterable[ContentItem | Mapping[str, Any]]) -> list[ContentItem]:
        """Store a batch of items, all or nothing; every item is checked before anything is written."""
        if isinstance(items, (ContentItem, Mapping)):
            raise InvalidMediaInput("upsert_batch() takes a list of items; use upsert_content() for one")
        checked = [coerce_item(item, f"items[{i}]") for i, item in enumerate(items)]
        keys = [c.key for c in checked]
        if len(set(keys)) != len(keys):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            raise InvalidMediaInput(f"items {dupes[:10]} appear more than once in this batch")
        col = await self.collection()
        missing = [i for i, c in enumerate(checked) if c.embedding is None]
        if missing:
            vectors = await self._embed(["\n".join(t for t in (checked[i].title, checked[i].overview) if t)
                                         or checked[i].content_id for i in missing])
            for row, i in enumerate(missing):
                checked[i] = attrs.evolve(checked[i], embedding=vectors[row])
        if not checked:
            return []
        now = self._clock()
        async with contextlib.AsyncExitStack() as stack:
            if self.store.capabilities.transactions:
                await stack.enter_async_context(self.store.transaction())
            created = {r.id: r.fields.get("created_at") for r in await col.get(keys)}
            records = [Record(c.key, c.embedding, {
                "content_id": c.content_id, "media_type": c.media_type, "title": c.title, "overview": c.overview,
                "genre_ids": list(c.genre_ids), "rating": c.rating, "popularity": c.popularity,
                "release_date": c.release_date, "created_at": created.get(c.key) or now, "updated_at": now,
            }, dict(c.metadata)) for c in checked]
            await col.upsert(records)
        return [attrs.evolve(c, embedding=np.asarray(c.embedding, dtype=np.float32),
                             created_at=created.get(c.key) or now, updated_at=now) for c in checked]

    async def get_content(self, content_id: str, media_type: str) -> ContentItem | None:
        key = content_key(check_text_id(content_id, "content_id"), check_media_type(media_type))
        found = await (await self.collection()).get([key])
        return ContentItem.from_record(found[0]) if found else None

    async def delete_content(self, content_id: str, media_type: str) -> bool:
        key = content_key(check_text_id(content_id, "content_id"), check_media_type(media_type))
        return await (await self.collection()).delete([key]) > 0

    async def count(self, media_type: str | None = None) -> int:
        where = None if media_type is None else {"media_type": check_media_type(media_type)}
        return await (await self.collection()).count(where)

    async def _query(self, vector: Sequence[float] | str | Any) -> Any:
        if isinstance(vector, str):
            return (await self._embed([vector]))[0]
        return vector

    async def search_content(self, vector: Sequence[float] | str | Any, k: int = 10, *,
                             threshold: float | None = None, media_type: str | Sequence[str] | None = None,
                             genre_ids: Sequence[int] | None = None, min_rating: float | None = None,
                             release_date_range: Sequence[dt.date | str | None] | None = None,
                             where: Mapping[str, Any] | None = None,
                             include_vector: bool = False) -> list[ContentHit]:
        """The ``k`` items nearest to ``vector`` (or to a text, with an embedder), nearest first.

        ``threshold`` is a minimum cosine similarity; ``genre_ids`` matches items sharing at least
        one genre; ``min_rating`` is inclusive; ``release_date_range`` is ``(start, end)``, inclusive,
        either end may be None; ``where`` adds any filter on the content fields.
        """
        col = await self.collection()
        flt = content_filter(media_type=media_type, genre_ids=genre_ids, min_rating=min_rating,
                             release_date_range=release_date_range, where=where)
        hits = await col.search(await self._query(vector), k, where=flt, threshold=threshold,
                                include_vector=include_vector)
        return [ContentHit(ContentItem.from_record(h), h.distance, h.similarity) for h in hits]

    async def _find(self, col: AsyncCollection, content_id: str, media_type: str | None) -> Record:
        cid = check_text_id(content_id, "content_id")
        if media_type is not None:
            found = await col.get([content_key(cid, check_media_type(media_type))])
            if not found:
                raise ContentNotFound(f"no content item {media_type}:{cid}; store it with upsert_content() first")
            return found[0]
        found = await col.page(None, 3, where={"content_id": cid})
        if not found:
            raise ContentNotFound(f"no content item has content_id {cid!r}; store it with upsert_content() first")
        if len(found) > 1:
            types = sorted(str(r.fields["media_type"]) for r in found)
            raise AmbiguousContent(f"content_id {cid!r} exists as {', '.join(types)}; pass media_type= to choose")
        return found[0]

    async def similar_content(self, content_id: str, k: int = 10, *, media_type: str | None = None,
                              threshold: float | None = None, same_media_type: bool = False,
                              genre_ids: Sequence[int] | None = None, min_rating: float | None = None,
                              release_date_range: Sequence[dt.date | str | None] | None = None,
                              include_vector: bool = False) -> list[ContentHit]:
        """The ``k`` items nearest to a stored item, the item itself excluded (so ``k`` hits come back
        when ``k`` other items match). ``media_type`` picks the item when its content_id is shared
        by several media types; ``same_media_type=True`` limits the results to its media type."""
        col = await self.collection()
        record = await self._find(col, content_id, media_type)
        myself = {"$not": {"content_id": record.fields["content_id"], "media_type": record.fields["media_type"]}}
        flt = content_filter(media_type=record.fields["media_type"] if same_media_type else None,
                             genre_ids=genre_ids, min_rating=min_rating, release_date_range=release_date_range,
                             where=myself)
        hits = await col.search(record.vector, k, where=flt, threshold=threshold, include_vector=include_vector)
        return [ContentHit(ContentItem.from_record(h), h.distance, h.similarity) for h in hits]

    async def hybrid_search(self, vector: Sequence[float] | str | Any, n: int = 10, *,
                            candidates: int | None = None,
                            weights: HybridWeights | Mapping[str, float] | None = None,
                            preferred_genres: Sequence[int] | None = None, today: dt.date | None = None,
                            threshold: float | None = None, media_type: str | Sequence[str] | None = None,
                            genre_ids: Sequence[int] | None = None, min_rating: float | None = None,
                            release_date_range: Sequence[dt.date | str | None] | None = None,
                            where: Mapping[str, Any] | None = None) -> list[HybridHit]:
        """Take the ``candidates`` nearest items (default ``max(5 * n, 50)``), re-rank them by
        ``vector * similarity + metadata * boost`` (see the module docs) and return the top ``n``
        with their scores and an explanation. Genres matched are those of ``preferred_genres``
        (default: the ``genre_ids`` filter)."""
        w = self.weights if weights is None else HybridWeights.coerce(weights)
        n = check_int(n, "n")
        if not 1 <= n <= 10_000:
            raise InvalidMediaInput(f"n must be an integer from 1 to 10000, got {n!r}")
        pool = max(5 * n, 50) if candidates is None else check_int(candidates, "candidates")
        if not n <= pool <= 10_000:
            raise InvalidMediaInput(f"candidates must be an integer from n ({n}) to 10000, got {candidates!r}")
        wanted = check_ints(preferred_genres if preferred_genres is not None else genre_ids, "preferred_genres")
        day = today if today is not None else self._clock().date()
        hits = await self.search_content(vector, pool, threshold=threshold, media_type=media_type,
                                         genre_ids=genre_ids, min_rating=min_rating,
                                         release_date_range=release_date_range, where=where)
        return hybrid_rank(hits, n, w, day, wanted)


# -- the sync twin -----------------------------------------------------------------------------


class ContentSearch:
    """Synchronous twin of :class:`AsyncContentSearch` over a :class:`vectorstore.Store`."""

    def __init__(self, store: Store, *, dim: int | None = None, embedder: Embedder | None = None,
                 weights: HybridWeights | Mapping[str, float] | None = None, clock: Clock | None = None) -> None:
        self._store = store
        self.inner = AsyncContentSearch(store.async_store, dim=dim, embedder=embedder, weights=weights, clock=clock)

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def weights(self) -> HybridWeights:
        return self.inner.weights

    def upsert_content(self, item: ContentItem | Mapping[str, Any]) -> ContentItem:
        return self._store.run(self.inner.upsert_content(item))

    def upsert_batch(self, items: Iterable[ContentItem | Mapping[str, Any]]) -> list[ContentItem]:
        return self._store.run(self.inner.upsert_batch(items))

    def get_content(self, content_id: str, media_type: str) -> ContentItem | None:
        return self._store.run(self.inner.get_content(content_id, media_type))

    def delete_content(self, content_id: str, media_type: str) -> bool:
        return self._store.run(self.inner.delete_content(content_id, media_type))

    def count(self, media_type: str | None = None) -> int:
        return self._store.run(self.inner.count(media_type))

    def search_content(self, vector: Sequence[float] | str | Any, k: int = 10, *, threshold: float | None = None,
                       media_type: str | Sequence[str] | None = None, genre_ids: Sequence[int] | None = None,
                       min_rating: float | None = None,
                       release_date_range: Sequence[dt.date | str | None] | None = None,
                       where: Mapping[str, Any] | None = None, include_vector: bool = False) -> list[ContentHit]:
        return self._store.run(self.inner.search_content(
            vector, k, threshold=threshold, media_type=media_type, genre_ids=genre_ids, min_rating=min_rating,
            release_date_range=release_date_range, where=where, include_vector=include_vector))

    def similar_content(self, content_id: str, k: int = 10, *, media_type: str | None = None,
                        threshold: float | None = None, same_media_type: bool = False,
                        genre_ids: Sequence[int] | None = None, min_rating: float | None = None,
                        release_date_range: Sequence[dt.date | str | None] | None = None,
                        include_vector: bool = False) -> list[ContentHit]:
        return self._store.run(self.inner.similar_content(
            content_id, k, media_type=media_type, threshold=threshold, same_media_type=same_media_type,
            genre_ids=genre_ids, min_rating=min_rating, release_date_range=release_date_range,
            include_vector=include_vector))

    def hybrid_search(self, vector: Sequence[float] | str | Any, n: int = 10, *, candidates: int | None = None,
                      weights: HybridWeights | Mapping[str, float] | None = None,
                      preferred_genres: Sequence[int] | None = None, today: dt.date | None = None,
                      threshold: float | None = None, media_type: str | Sequence[str] | None = None,
                      genre_ids: Sequence[int] | None = None, min_rating: float | None = None,
                      release_date_range: Sequence[dt.date | str | None] | None = None,
                      where: Mapping[str, Any] | None = None) -> list[HybridHit]:
        return self._store.run(self.inner.hybrid_search(
            vector, n, candidates=candidates, weights=weights, preferred_genres=preferred_genres, today=today,
            threshold=threshold, media_type=media_type, genre_ids=genre_ids, min_rating=min_rating,
            release_date_range=release_date_range, where=where))
