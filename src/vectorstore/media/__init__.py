"""The media gateway's data model over any vectorstore backend.

- :class:`UserPreferences` / :class:`AsyncUserPreferences`: preference vectors learned from
  watch events (EMA), atomically with the agent memory's episode and pattern outcomes.
- :class:`ContentSearch` / :class:`AsyncContentSearch`: catalogue items, filtered search,
  similar items, hybrid re-rank with explanations.
- :class:`EmbeddingCache` / :class:`AsyncEmbeddingCache`: embeddings by model and text, kept
  in the store with a TTL.

Each class is built from a store: ``X(store)`` over the sync :class:`vectorstore.Store`,
``AsyncX(store)`` over :class:`vectorstore.AsyncStore`, with the same method names. The
product spec's tables map to collections as :data:`SPEC_TABLES` says.
"""

from vectorstore.media.cache import AsyncEmbeddingCache, CacheStats, EmbeddingCache
from vectorstore.media.content import (
    AsyncContentSearch,
    ContentHit,
    ContentItem,
    ContentSearch,
    HybridHit,
    HybridWeights,
)
from vectorstore.media.errors import (
    AmbiguousContent,
    ContentNotFound,
    InvalidMediaInput,
    InvalidWeights,
    UnknownPattern,
)
from vectorstore.media.preferences import (
    AsyncUserPreferences,
    UserMatch,
    UserPreference,
    UserPreferences,
    WatchEventResult,
)
from vectorstore.media.schema import SPEC_TABLES

__all__ = [
    "AmbiguousContent", "AsyncContentSearch", "AsyncEmbeddingCache", "AsyncUserPreferences", "CacheStats",
    "ContentHit", "ContentItem", "ContentNotFound", "ContentSearch", "EmbeddingCache", "HybridHit", "HybridWeights",
    "InvalidMediaInput", "InvalidWeights", "SPEC_TABLES", "UnknownPattern", "UserMatch", "UserPreference",
    "UserPreferences", "WatchEventResult",
]
