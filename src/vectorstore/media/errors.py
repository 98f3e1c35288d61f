"""Typed errors of the media gateway model. Every one is a subclass of
:class:`vectorstore.errors.InvalidInput`: the call was refused and nothing was written."""

from __future__ import annotations

from vectorstore.errors import InvalidInput
from vectorstore.memory.errors import PatternNotFound


class InvalidMediaInput(InvalidInput):
    """An argument of a media-gateway call (id, reward, alpha, rating, date range...) is not acceptable."""


class InvalidWeights(InvalidMediaInput):
    """Hybrid re-rank weights are not finite numbers in [0, 1] that add up to 1."""


class ContentNotFound(InvalidMediaInput, LookupError):
    """No content item has the given ``(content_id, media_type)``."""


class AmbiguousContent(InvalidMediaInput):
    """A ``content_id`` exists under several media types; pass ``media_type=`` to choose one."""


class UnknownPattern(InvalidMediaInput, PatternNotFound):
    """A watch event names a reasoning pattern id that does not exist (also a
    :class:`vectorstore.memory.PatternNotFound`)."""
