"""The ASGI app: /slack/events, /healthz, /metrics.

Bolt here is the synchronous App, and the database driver is synchronous too, so every
call into them runs in the thread pool: a blocking call on the event loop would stall
every other request, including Slack's, which gives up after 3 seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qsl

import anyio.to_thread
from anyio import CapacityLimiter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt import App, BoltRequest
from slack_bolt.context import BoltContext
from slack_bolt.request.internals import build_context
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import metrics
from bot.deps import Deps
from bot.web.hooks import make_hook_endpoint
from bot.web.pings import make_ping_endpoint
from bot.web.request_body import BodyTooLarge, read_body
from bot.workers.intake_writer import IntakeWriter

log = logging.getLogger(__name__)

# Python runs one thread at a time; twenty handlers taking turns on the GIL each finish
# later than if a few run and the rest wait, so Slack work gets a small pool of its own.
SLACK_WORKERS = 2

Endpoint = Callable[[Request], Awaitable[Response]]


def _measured(name: str, endpoint: Endpoint) -> Endpoint:
    async def wrapper(request: Request) -> Response:
        started = time.perf_counter()
        response = await endpoint(request)
        metrics.HTTP_LATENCY.labels(name).observe(time.perf_counter() - started)
        metrics.HTTP_REQUESTS.labels(name, str(response.status_code)).inc()
        return response

    return wrapper


def _bolt_request(body: str, *, query: str, headers: dict[str, str | Sequence[str]]) -> BoltRequest:
    request = BoltRequest(body=body, query=query, headers=headers)
    # Bolt takes any form body containing the text "payload" for an interactivity payload
    # and, finding no `payload` field, reads it as empty: a slash command whose text says
    # "payload" would vanish (404). Only a real `payload` field makes it one.
    if request.content_type == "application/x-www-form-urlencoded" and not request.body:
        fields = dict(parse_qsl(body, keep_blank_values=True))
        if "payload" not in fields:
            request.body = fields
            request.context = build_context(BoltContext({}), fields)
    return request


def build_http_app(
    deps: Deps,
    bolt: App | None,
    *,
    intake: IntakeWriter,
    socket_mode_only: bool = False,
    notify_outbox: Callable[[], None] = lambda: None,
) -> Starlette:
    slack_limiter = CapacityLimiter(SLACK_WORKERS)

    async def slack_events(request: Request) -> Response:
        if bolt is None:
            return JSONResponse(
                {"error": "local mode: SLACK_BOT_TOKEN is not set, Slack requests are not served"},
                status_code=503,
            )
        if socket_mode_only:
            return JSONResponse(
                {
                    "error": "Socket Mode without SLACK_SIGNING_SECRET: HTTP requests from Slack "
                    "are not accepted"
                },
                status_code=503,
            )
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return JSONResponse({"error": "body over 1 MiB"}, status_code=413)
        bolt_request = _bolt_request(
            body.decode("utf-8", errors="replace"),
            query=request.url.query,
            headers={k: request.headers.getlist(k) for k in request.headers.keys()},
        )
        bolt_response = await anyio.to_thread.run_sync(
            bolt.dispatch, bolt_request, limiter=slack_limiter
        )
        return Response(
            content=bolt_response.body,
            status_code=bolt_response.status,
            headers={k: v[0] for k, v in bolt_response.headers.items() if v},
        )

    def database_answers() -> bool:
        try:
            with deps.sessions() as session:
                session.execute(text("SELECT 1"))
            return True
        except Exception:
            log.exception("health check: the database does not answer")
            return False

    async def healthz(request: Request) -> Response:
        ok = await run_in_threadpool(database_answers)
        mode = "local" if bolt is None else ("socket" if deps.settings.slack_app_token else "http")
        body = {"status": "ok" if ok else "unavailable", "database": ok, "mode": mode}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/slack/events", _measured("slack_events", slack_events), methods=["POST"]),
        Route("/healthz", _measured("healthz", healthz), methods=["GET", "HEAD"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    for source in ("generic", "alertmanager", "grafana"):
        endpoint = make_hook_endpoint(deps, source, intake)
        routes.append(
            Route(f"/hooks/{source}", _measured(f"hooks_{source}", endpoint), methods=["POST"])
        )
    ping = _measured("ping", make_ping_endpoint(deps, notify_outbox))
    routes.append(Route("/ping/{key}", ping, methods=["GET", "HEAD", "POST"]))
    routes.append(Route("/ping/{key}/{kind}", ping, methods=["GET", "HEAD", "POST"]))
    return Starlette(routes=routes)
