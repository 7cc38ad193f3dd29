"""The ASGI app: /slack/events, /healthz, /metrics.

Bolt here is the synchronous App, and the database driver is synchronous too, so every
call into them runs in the thread pool: a blocking call on the event loop would stall
every other request, including Slack's, which gives up after 3 seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from urllib.parse import parse_qsl

import anyio.to_thread
from anyio import CapacityLimiter
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.context import BoltContext
from slack_bolt.request.internals import build_context
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot import metrics
from bot.deps import Deps
from bot.web.hooks import make_hook_endpoint
from bot.web.pings import make_ping_endpoint
from bot.web.request_body import CLOSE, BodyRefused, read_body
from bot.web.slack_request import (
    MalformedBody,
    checked_body,
    signature_is_valid,
    timestamp_is_fresh,
)
from bot.workers.intake_writer import IntakeWriter

log = logging.getLogger(__name__)

# Python runs one thread at a time; twenty handlers taking turns on the GIL each finish
# later than if a few run and the rest wait, so Slack work gets a small pool of its own.
SLACK_WORKERS = 2

Endpoint = Callable[[Request], Awaitable[Response]]


def _measured(name: str, endpoint: Endpoint) -> Endpoint:
    # The labelled series are looked up once, not per request: `labels()` takes a lock and
    # builds a key each time, a few percent of a hook's time on the event loop.
    latency = metrics.HTTP_LATENCY.labels(name)
    answered: dict[int, Counter] = {}

    async def wrapper(request: Request) -> Response:
        started = time.perf_counter()
        response = await endpoint(request)
        latency.observe(time.perf_counter() - started)
        status = response.status_code
        counter = answered.get(status)
        if counter is None:
            counter = answered[status] = metrics.HTTP_REQUESTS.labels(name, str(status))
        counter.inc()
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


def _dispatch(
    bolt: App, body: bytes, query: str, headers: Mapping[str, Sequence[str]]
) -> BoltResponse:
    """A signed request, in a worker thread: checked, then handed to Bolt. Parsing a body
    of up to 1 MiB takes long enough that it must not happen on the event loop."""
    content_type = next(iter(headers.get("content-type", ())), None)
    try:
        text = checked_body(body, content_type)
    except MalformedBody as exc:
        return BoltResponse(status=400, body={"error": str(exc)})
    return bolt.dispatch(_bolt_request(text, query=query, headers=dict(headers)))


def build_http_app(
    deps: Deps,
    bolt: App | None,
    *,
    intake: IntakeWriter,
    socket_mode_only: bool = False,
    notify_outbox: Callable[[], None] = lambda: None,
    warnings: Callable[[], list[str]] = list,
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
        secret = deps.settings.slack_signing_secret
        timestamp = request.headers.get("x-slack-request-timestamp")
        signature = request.headers.get("x-slack-signature")
        # Cheap checks first: a request without a fresh timestamp or any signature is
        # refused before its body is read, and nothing unsigned is ever parsed.
        if secret is None or timestamp is None or signature is None:
            return JSONResponse({"error": "not signed by Slack"}, status_code=401, headers=CLOSE)
        if not timestamp_is_fresh(timestamp, time.time()):
            return JSONResponse(
                {"error": "X-Slack-Request-Timestamp is not a time within 5 minutes of now"},
                status_code=401,
                headers=CLOSE,
            )
        try:
            body = await read_body(request)
        except BodyRefused as exc:
            return JSONResponse({"error": exc.reason}, status_code=exc.status, headers=CLOSE)
        if not signature_is_valid(secret, timestamp, signature, body):
            return JSONResponse({"error": "bad Slack signature"}, status_code=401)
        headers = {k: request.headers.getlist(k) for k in request.headers.keys()}
        bolt_response = await anyio.to_thread.run_sync(
            _dispatch, bolt, body, request.url.query, headers, limiter=slack_limiter
        )
        return Response(
            content=bolt_response.body,
            status_code=bolt_response.status,
            headers={k: v[0] for k, v in bolt_response.headers.items() if v},
        )

    async def healthz(request: Request) -> Response:
        # A bounded check: a database that hangs is a 503 within CHECK_SECONDS, and checks
        # at the same time share one (bot.workers.database_health).
        reason = await run_in_threadpool(deps.database.check)
        ok = reason is None
        mode = "local" if bolt is None else ("socket" if deps.settings.slack_app_token else "http")
        body: dict[str, object] = {
            "status": "ok" if ok else "unavailable",
            "database": ok,
            "mode": mode,
        }
        if reason is not None:
            body["reason"] = f"the database does not answer: {reason}"
        # Worth a look but not a reason to take the process out of rotation: it still
        # serves hooks, pings and Slack (a replica with an older catalog file, say).
        noted = warnings()
        if noted:
            body["warnings"] = noted
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
    ping = _measured("ping", make_ping_endpoint(deps, intake, notify_outbox))
    routes.append(Route("/ping/{key}", ping, methods=["GET", "HEAD", "POST"]))
    routes.append(Route("/ping/{key}/{kind}", ping, methods=["GET", "HEAD", "POST"]))
    return Starlette(routes=routes)
