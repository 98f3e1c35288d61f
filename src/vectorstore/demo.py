"""The main job, ``vectorstore demo``: load a sample media catalogue and search it.

Works offline on a fresh machine with the embedded default (a SQLite file under
``./data/``), or on any store URL. The sample set is synthetic but shaped like
the media gateway's content: titles, genres, release years, ratings, and
vectors clustered by genre so that nearest neighbours share genres.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import vectorstore as vs

GENRES = ["action", "comedy", "drama", "horror", "sci-fi", "romance", "documentary", "animation"]
ADJECTIVES = ["Silent", "Crimson", "Last", "Hidden", "Electric", "Golden", "Broken", "Midnight", "Distant", "Wild"]
NOUNS = ["Harbor", "Signal", "Garden", "Empire", "River", "Machine", "Summer", "Kingdom", "Echo", "Frontier"]
COLLECTION = "demo_media"


def sample_catalogue(n: int, dim: int, seed: int = 7) -> tuple[list[dict[str, Any]], np.ndarray]:
    """``n`` synthetic media items and their vectors (genre clusters plus noise)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, (len(GENRES), dim))
    items: list[dict[str, Any]] = []
    vectors = np.empty((n, dim), dtype=np.float32)
    for i in range(n):
        primary = int(rng.integers(len(GENRES)))
        extra = [int(g) for g in rng.choice(len(GENRES), size=int(rng.integers(0, 2)), replace=False)]
        genre_ids = sorted({primary, *extra})
        mix = centers[genre_ids].mean(axis=0)
        vectors[i] = mix + rng.normal(0.0, 0.6, dim)
        title = f"{ADJECTIVES[i % 10]} {NOUNS[(i // 10) % 10]} {i // 100 + 1}"
        items.append({
            "id": f"movie-{i:05d}",
            "fields": {"title": title, "media_type": "movie" if i % 4 else "tv",
                       "genre_ids": genre_ids, "year": int(rng.integers(1960, 2025)),
                       "rating": round(float(rng.uniform(3.0, 9.5)), 1)},
            "metadata": {"genres": [GENRES[g] for g in genre_ids]},
        })
    return items, vectors


def _hits_table(title: str, hits: Sequence[vs.Hit], elapsed_ms: float) -> Table:
    table = Table(title=f"{title}  ({len(hits)} hits, {elapsed_ms:.1f} ms)", title_justify="left")
    for column in ("id", "title", "genres", "year", "rating", "distance", "similarity"):
        table.add_column(column, justify="right" if column in ("year", "rating", "distance", "similarity") else "left")
    for h in hits:
        table.add_row(str(h.id), h.fields["title"], ", ".join(h.metadata.get("genres", [])), str(h.fields["year"]),
                      f"{h.fields['rating']:.1f}", f"{h.distance:.4f}", f"{h.similarity:.4f}")
    return table


def run(url: str | None, n: int = 2000, dim: int = 384, batch: int = 500, console: Console | None = None) -> int:
    console = console or Console()
    store = vs.connect(url)
    try:
        console.print(f"[bold]vectorstore demo[/bold] on [cyan]{store.url}[/cyan] "
                      f"({store.async_store.backend.name} backend)")
        store.drop_collection(COLLECTION)
        col = store.create_collection(
            COLLECTION, dim=dim, metric="cosine",
            fields={"title": "text", "media_type": "text", "genre_ids": "int[]", "year": "int", "rating": "float"})
        items, vectors = sample_catalogue(n, dim)
        start = time.perf_counter()
        columns = (TextColumn("loading {task.fields[what]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=not console.is_terminal) as progress:
            task = progress.add_task("load", total=n, what=COLLECTION, rate="")
            for lo in range(0, n, batch):
                chunk = [vs.Record(it["id"], vectors[lo + j], it["fields"], it["metadata"])
                         for j, it in enumerate(items[lo:lo + batch])]
                col.upsert(chunk)
                done = lo + len(chunk)
                progress.update(task, completed=done, rate=f"{done / (time.perf_counter() - start):,.0f} rec/s")
        load_s = time.perf_counter() - start
        console.print(f"loaded {col.count():,} records ({dim}-d) in {load_s:.2f} s ({n / load_s:,.0f} records/s)")

        query_item = items[42]
        query = vectors[42]
        console.print(f"\nquery: the vector of [bold]{query_item['fields']['title']}[/bold] "
                      f"({', '.join(query_item['metadata']['genres'])})")
        searches: list[tuple[str, dict[str, Any]]] = [
            ("plain search, k=5", {"k": 5}),
            ("filtered: rating >= 7 and a shared genre, not TV", {
                "k": 5, "where": {"rating": {"$gte": 7.0}, "genre_ids": {"$overlap": query_item["fields"]["genre_ids"]},
                                  "media_type": {"$ne": "tv"}}}),
            ("thresholded: similarity >= 0.55, k=10", {"k": 10, "threshold": 0.55}),
        ]
        for title, kwargs in searches:
            start = time.perf_counter()
            hits = col.search(query, **kwargs)
            console.print(_hits_table(title, hits, (time.perf_counter() - start) * 1000))
        console.print(
            "\nTo run the same on PostgreSQL (pgvector), pass a URL or set VECTORSTORE_URL:\n"
            "  vectorstore demo --url postgresql://user:password@localhost:5432/app\n"
            "  VECTORSTORE_URL=postgresql://user@db/app vectorstore demo\n"
            "`vectorstore doctor URL` checks a server first.")
        return 0
    finally:
        store.close()
