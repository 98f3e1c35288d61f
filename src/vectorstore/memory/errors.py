"""Typed errors of the agent memory. Each is a subclass of :class:`vectorstore.errors.InvalidInput`
(the call was refused before anything was written), except :class:`IncompatibleCollection`, a
configuration problem."""

from __future__ import annotations

from vectorstore.errors import ConfigError, InvalidInput


class InvalidMemoryInput(InvalidInput):
    """An argument (task, reward, k, time window, tags, ...) is not acceptable."""


class UnknownRelationship(InvalidMemoryInput):
    """A skill link names a relationship other than prerequisite, alternative, refinement, composition."""


class SkillNotFound(InvalidMemoryInput, LookupError):
    """No skill has the given id."""


class PatternNotFound(InvalidMemoryInput, LookupError):
    """No reasoning pattern has the given id."""


class DuplicateSkill(InvalidMemoryInput):
    """A skill of that name exists already (names are unique, as in AgentDB)."""


class IncompatibleCollection(ConfigError):
    """An existing collection named like an AgentDB table lacks a field (or has another dimension)
    the agent memory needs."""
