"""vectorstore.bench.corpus: the sentence corpus that ships with Python, and the MiniLM data set's cache.

The MiniLM model itself never runs here (it is slow): the data-set test uses a stand-in embedder.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from vectorstore.bench import corpus
from vectorstore.bench.corpus import MAX_CHARS, MIN_CHARS, corpus_info, minilm_available, python_corpus


def test_corpus_reaches_100000_distinct_texts_deterministically() -> None:
    texts = python_corpus(100_000)
    assert len(texts) == 100_000
    assert len(set(texts)) == 100_000
    assert all(isinstance(t, str) and MIN_CHARS <= len(t) <= MAX_CHARS for t in texts)
    assert all(t == " ".join(t.split()) for t in texts)  # whitespace normalised
    corpus._originals.cache_clear()  # build it again from scratch
    assert python_corpus(100_000) == texts


def test_corpus_is_the_same_in_a_fresh_interpreter() -> None:
    digest = hashlib.sha256("\n".join(python_corpus(20_000)).encode()).hexdigest()
    code = ("import hashlib; from vectorstore.bench.corpus import python_corpus; "
            "print(hashlib.sha256('\\n'.join(python_corpus(20_000)).encode()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == digest
    assert out.stderr == ""  # importing the standard library printed nothing


def test_shorter_corpus_is_a_prefix() -> None:
    small, large = python_corpus(50), python_corpus(500)
    assert len(small) == 50 and len(large) == 500
    assert large[:50] == small
    beyond = python_corpus(corpus_info().sentences + 100)
    assert beyond[:500] == large
    assert python_corpus(0) == []


def test_corpus_is_english_prose_from_python() -> None:
    info = corpus_info()
    assert info.sentences > 2000
    assert 0 < info.from_topics < info.sentences
    assert info.modules > 100
    originals = python_corpus(info.sentences)
    assert all(t[0].isupper() and t[-1] in ".!?" for t in originals)
    assert not any(">>>" in t for t in originals)
    assert all(t.isascii() for t in originals)
    # the help topics come first: the first texts are about Python itself
    assert any("assert" in t for t in originals[:50])
    # after the originals, texts are pairs of them
    sentences = set(originals)
    extra = python_corpus(info.sentences + 200)[info.sentences:]
    assert len(extra) == 200
    assert all(t not in sentences for t in extra)
    assert all(any(t.startswith(s + " ") and t[len(s) + 1:] in sentences for s in originals[:300]) for t in extra)


def test_minilm_available_is_a_bool_and_loads_nothing() -> None:
    before = set(sys.modules)
    assert isinstance(minilm_available(), bool)
    assert "sentence_transformers" not in set(sys.modules) - before
    assert "torch" not in set(sys.modules) - before


class _FakeEmbedder:
    """Deterministic stand-in for MiniLM: 384-d, counts its calls."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        self.calls: list[int] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            out[row] = np.random.default_rng(seed).standard_normal(self.dim)
        result: npt.NDArray[np.float32] = out / np.linalg.norm(out, axis=1, keepdims=True)
        return result


def test_sentence_dataset_splits_embeds_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeEmbedder()
    import vectorstore.embedding

    def get_embedder(name: str | None = None, dim: int | None = None) -> _FakeEmbedder:
        assert name == "minilm"
        return fake

    monkeypatch.setattr(vectorstore.embedding, "get_embedder", get_embedder)
    seen: list[int] = []
    data = corpus.sentence_dataset(1500, queries=30, seed=3, batch_size=256, progress=seen.append, cache_dir=tmp_path)
    assert data.name == "minilm-1k-384d"
    assert data.vectors.shape == (1500, 384) and data.queries.shape == (30, 384)
    assert data.vectors.dtype == np.float32
    assert fake.calls == [256] * 5 + [1530 - 5 * 256]
    assert sum(seen) == 1530
    # every vector is its text's: rows in corpus order without the queries, queries not among the rows
    texts = python_corpus(1530)
    expected = fake.embed(texts)
    row_of = {tuple(v): i for i, v in enumerate(expected)}
    rows = [row_of[tuple(v)] for v in data.vectors]
    queries = [row_of[tuple(v)] for v in data.queries]
    assert rows == sorted(rows)
    assert not set(rows) & set(queries)
    assert sorted(rows + queries) == list(range(1530))
    assert queries != sorted(queries)  # a random subset, not the tail
    # a second run reads the cache and does not embed
    fake.calls.clear()
    again = corpus.sentence_dataset(1500, queries=30, seed=3, cache_dir=tmp_path)
    assert fake.calls == []
    assert np.array_equal(again.vectors, data.vectors) and np.array_equal(again.queries, data.queries)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    # another seed picks other queries and is cached separately
    other = corpus.sentence_dataset(1500, queries=30, seed=4, cache_dir=tmp_path)
    assert fake.calls and not np.array_equal(other.queries, data.queries)
    assert len(list(tmp_path.glob("*.npy"))) == 2
