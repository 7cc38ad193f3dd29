"""POST /hooks/generic, /hooks/alertmanager, /hooks/grafana.

A 202 is a promise: it is sent only after the raw body and what it means are committed.
Malformed input gets 400 and a reason, and nothing is stored for it.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot import metrics
from bot.deps import Deps
from bot.request_body import BodyTooLarge, read_body
from commands.alerts import IngestResult, ingest
from commands.intake import PARSERS, AlertEvent, IntakeError
from storage.db import transaction
from storage.models import ReceivedEvent

log = logging.getLogger(__name__)

# Writers wait on the database, not the CPU; a few at a time keep SQLite's single writer
# busy without a queue of threads holding connections.
HOOK_WORKERS = 4


def make_hook_endpoint(
    deps: Deps, source: str, notify: Callable[[], None]
) -> Callable[[Request], Awaitable[Response]]:
    limiter = CapacityLimiter(HOOK_WORKERS)
    parse = PARSERS[source]

    def store(body: bytes, events: list[AlertEvent]) -> tuple[int, IngestResult]:
        now = deps.clock()
        with transaction(deps.sessions) as session:
            received = ReceivedEvent(received_at=now, source=source, body=body, alerts=len(events))
            session.add(received)
            session.flush()  # the first write takes SQLite's write lock before any read
            result = ingest(session, events, now, deps.settings.integ_fallback_channel)
            return received.id, result

    async def endpoint(request: Request) -> Response:
        expected = deps.settings.integ_webhook_token
        if expected is None:
            return JSONResponse(
                {"error": "INTEG_WEBHOOK_TOKEN is not set on the bot, so hooks are closed"},
                status_code=503,
            )
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return JSONResponse({"error": "body over 1 MiB"}, status_code=413)
        try:
            events = parse(body)
        except IntakeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        event_id, result = await anyio.to_thread.run_sync(store, body, events, limiter=limiter)
        metrics.HOOK_EVENTS.labels(source).inc(len(events))
        notify()
        answer: dict[str, object] = {
            "event_id": event_id,
            "alerts": len(events),
            "opened": result.opened,
            "repeated": result.repeated,
            "reopened": result.reopened,
            "resolved": result.resolved,
        }
        if result.unknown_integrations:
            answer["unknown_integrations"] = sorted(result.unknown_integrations)
        return JSONResponse(answer, status_code=202)

    return endpoint
