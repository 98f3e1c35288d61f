"""Agent memory compatible with AgentDB: ReflexionMemory, SkillLibrary, ReasoningBank, NightlyLearner.

Each class is built from a store, psycopg-style: ``ReflexionMemory(store)`` over a sync
:class:`vectorstore.Store`, ``AsyncReflexionMemory(store)`` over an :class:`vectorstore.AsyncStore`,
with the same method names. The data lives in AgentDB's tables as collections (``episodes``,
``skills``, ``skill_links``, ``reasoning_patterns``, ``causal_edges``); see
:mod:`vectorstore.memory.schema` and ``docs/agent-memory.md``.
"""

from .errors import (
    DuplicateSkill,
    IncompatibleCollection,
    InvalidMemoryInput,
    PatternNotFound,
    SkillNotFound,
    UnknownRelationship,
)
from .learner import AsyncNightlyLearner, NightlyLearner
from .reasoning import AsyncReasoningBank, ReasoningBank
from .records import (
    ConsolidatedPattern,
    ConsolidationResult,
    Episode,
    LearnedTask,
    LearnerReport,
    PatternStats,
    ReasoningPattern,
    Skill,
    SkillLink,
    SkillPlan,
    TaskStats,
    TaskTypeCount,
)
from .reflexion import AsyncReflexionMemory, ReflexionMemory
from .schema import COLLECTIONS, Collections, ensure_collections
from .skills import RELATIONSHIPS, AsyncSkillLibrary, SkillLibrary

__all__ = [
    "COLLECTIONS", "RELATIONSHIPS", "AsyncNightlyLearner", "AsyncReasoningBank", "AsyncReflexionMemory",
    "AsyncSkillLibrary", "Collections", "ConsolidatedPattern", "ConsolidationResult", "DuplicateSkill", "Episode",
    "IncompatibleCollection", "InvalidMemoryInput", "LearnedTask", "LearnerReport", "NightlyLearner",
    "PatternNotFound", "PatternStats", "ReasoningBank", "ReasoningPattern", "ReflexionMemory", "Skill",
    "SkillLibrary", "SkillLink", "SkillNotFound", "SkillPlan", "TaskStats", "TaskTypeCount", "UnknownRelationship",
    "ensure_collections",
]
