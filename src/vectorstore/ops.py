"""The operations endpoint (the ``ops`` extra: Starlette, uvicorn, prometheus-client): an ASGI app
with ``/health``, ``/ready`` and ``/metrics`` for one store.

``vectorstore serve --url URL --port P`` runs it with uvicorn; an application mounts it in its own
ASGI app::

    store = await vectorstore.open_store(url, metrics=True)
    app.mount("/ops", vectorstore.ops.create_app(store))

- ``GET /health``: runs the checks (a round trip to the database) and answers 200 when every one
  passes, 503 otherwise, with a JSON body detailing each check::

      {"status": "ok", "backend": "postgres", "version": "0.1.0",
       "checks": {"database": {"ok": true, "latency_ms": 0.9, ...},
                  "circuit_breaker": {"ok": true, "state": "closed", "consecutive_failures": 0}}}

- ``GET /ready``: 200 once the store is open, its circuit is not open and the database answers;
  503 otherwise (a load balancer's readiness probe).
- ``GET /metrics``: the Prometheus text format of the process's registry (the store is opened
  with ``metrics=true`` by ``vectorstore serve``; see :mod:`vectorstore.metrics`).

Nothing in the answers holds a secret: the store's URL is never shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vectorstore import __version__
from vectorstore.errors import VectorStoreError
from vectorstore.store import AsyncStore

#: A /health answer is reused for this long (seconds): probes every second need not each cost a
#: round trip to the database.
HEALTH_TTL = 0.5


class Opening:
    """A store being opened in the background (``vectorstore serve`` starts answering before the
    database does): ``store`` is None until it opens, ``error`` says why it has not yet."""

    def __init__(self) -> None:
        self.store: AsyncStore | None = None
        self.error = "the store is being opened"


class _Checks:
    def __init__(self, target: AsyncStore | Opening) -> None:
        self.target = target
        self._last: tuple[float, bool, dict[str, Any]] | None = None

    @property
    def store(self) -> AsyncStore | None:
        return self.target.store if isinstance(self.target, Opening) else self.target

    async def run(self) -> tuple[bool, dict[str, Any]]:
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < HEALTH_TTL:
            return self._last[1], self._last[2]
        store = self.store
        checks: dict[str, Any] = {}
        if store is None:
            assert isinstance(self.target, Opening)
            body = {"status": "unavailable", "backend": "unknown", "version": __version__,
                    "checks": {"database": {"ok": False, "error": self.target.error}}}
            self._last = (now, False, body)
            return False, body
        try:
            health = await store.health()
        except VectorStoreError as exc:
            checks["database"] = {"ok": False, "error": str(exc)}
            backend = "unknown"
            breaker: dict[str, Any] = {"ok": False, "state": "unknown"}
        else:
            details = dict(health.details)
            state = details.pop("breaker", "closed")
            failures = details.pop("consecutive_failures", 0)
            checks["database"] = {"ok": health.ok, "latency_ms": round(health.latency_ms, 3), **_plain(details)}
            breaker = {"ok": state != "open", "state": state, "consecutive_failures": failures}
            backend = health.backend
        checks["circuit_breaker"] = breaker
        ok = all(check["ok"] for check in checks.values())
        body = {"status": "ok" if ok else "unavailable", "backend": backend, "version": __version__,
                "checks": checks}
        self._last = (now, ok, body)
        return ok, body


def _plain(details: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready detail values (anything else as text)."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
    return out


def create_app(store: AsyncStore | Opening) -> Starlette:
    """The ops ASGI app for ``store`` (which the caller keeps open and closes), or for a store
    :class:`Opening` in the background."""
    checks = _Checks(store)

    async def health(request: Request) -> Response:
        ok, body = await checks.run()
        return JSONResponse(body, status_code=200 if ok else 503)

    async def ready(request: Request) -> Response:
        current = checks.store
        if current is not None and current.closed:
            return JSONResponse({"ready": False, "reason": "the store is closed"}, status_code=503)
        ok, body = await checks.run()
        reason = "" if ok else "; ".join(name for name, check in body["checks"].items() if not check["ok"])
        return JSONResponse({"ready": ok, **({"reason": f"failing: {reason}"} if reason else {})},
                            status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        from vectorstore.metrics import available, exposition

        if not available():
            return Response("prometheus-client is not installed: pip install 'vectorstore[ops]'\n",
                            status_code=501, media_type="text/plain")
        payload, content_type = exposition()
        return Response(payload, media_type=content_type)

    return Starlette(routes=[Route("/health", health), Route("/ready", ready), Route("/metrics", metrics)])


def _serving(opening: Opening, opener: asyncio.Future[None]) -> Starlette:
    """``serve``'s app: on the server's shutdown (Ctrl-C, SIGTERM) the opener stops and the store
    closes. In the lifespan, because uvicorn raises a caught signal again once it has stopped,
    so code after ``Server.serve()`` never runs on SIGTERM."""
    app = create_app(opening)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            opener.cancel()
            with contextlib.suppress(BaseException):
                await opener
            if opening.store is not None:
                await opening.store.aclose()

    app.router.lifespan_context = lifespan
    return app


def serve(url: str | None, host: str, port: int, log_json: bool = True) -> int:
    """``vectorstore serve``: open the store (metrics on) and run the ops app until interrupted."""
    import uvicorn

    from vectorstore.logs import configure

    if log_json:
        configure()

    async def main() -> None:
        opening = Opening()
        opener = asyncio.ensure_future(_open_until_open(url, opening))
        config = uvicorn.Config(_serving(opening, opener), host=host, port=port, log_config=None,
                                access_log=False, lifespan="on")
        await uvicorn.Server(config).serve()

    asyncio.run(main())
    return 0


#: Seconds between attempts to open the store while its database does not answer.
OPEN_RETRY = 1.0


async def _open_until_open(url: str | None, opening: Opening) -> None:
    """Open the store, trying again every :data:`OPEN_RETRY` seconds while the database is
    unreachable (a configuration error is final: it is reported and nothing is retried)."""
    from vectorstore.errors import BackendUnavailable
    from vectorstore.store import open_store

    while True:
        try:
            opening.store = await open_store(url, metrics=True)
            return
        except BackendUnavailable as exc:
            opening.error = f"cannot open the store yet (retrying every {OPEN_RETRY:g}s): {exc}"
        except VectorStoreError as exc:
            opening.error = f"cannot open the store: {exc}"
            return
        await asyncio.sleep(OPEN_RETRY)
