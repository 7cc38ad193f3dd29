"""POST /hooks/generic, /hooks/alertmanager, /hooks/grafana.

A 202 is a promise: it is sent only after the raw body and what it means are committed
(by the intake writer, which commits requests in batches). Malformed input gets 400 and a
reason, and nothing is stored for it.
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
from bot.web.request_body import CLOSE, BodyRefused, read_body
from bot.workers.intake_writer import Busy, IntakeWriter, StoreFailed
from commands.alerts.payloads import PARSERS, IntakeError, TooManyAlerts

log = logging.getLogger(__name__)

# Parsing a 1 MiB body is tens of milliseconds of Python, so it runs in a worker thread, off
# the event loop; two at a time per hook, as more only take turns on the GIL. A body of a few
# alerts parses in less time than the hand-off to a thread takes, so it is parsed in place.
HOOK_PARSERS = 2
PARSE_INLINE_BYTES = 8 * 1024


def make_hook_endpoint(
    deps: Deps, source: str, writer: IntakeWriter
) -> Callable[[Request], Awaitable[Response]]:
    parse = PARSERS[source]
    events_received = metrics.HOOK_EVENTS.labels(source)
    parse_limiter = CapacityLimiter(HOOK_PARSERS)

    async def endpoint(request: Request) -> Response:
        expected = deps.settings.integ_webhook_token
        if expected is None:
            return JSONResponse(
                {"error": "INTEG_WEBHOOK_TOKEN is not set on the bot, so hooks are closed"},
                status_code=503,
            )
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            return JSONResponse(
                {"error": "missing or wrong bearer token"}, status_code=401, headers=CLOSE
            )
        try:
            body = await read_body(request)
        except BodyRefused as exc:
            return JSONResponse({"error": exc.reason}, status_code=exc.status, headers=CLOSE)
        try:
            if len(body) <= PARSE_INLINE_BYTES:
                events = parse(body)
            else:
                events = await anyio.to_thread.run_sync(parse, body, limiter=parse_limiter)
        except TooManyAlerts as exc:
            return JSONResponse({"error": str(exc), "max_alerts": exc.limit}, status_code=413)
        except IntakeError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            event_id, result = await writer.stored(source, body, events)
        except Busy as exc:
            # The queue is full or the database does not answer: nothing was stored, and the
            # sender is told when to try again rather than kept waiting.
            return JSONResponse(
                {"error": str(exc)},
                status_code=503,
                headers={"Retry-After": str(exc.retry_after)},
            )
        except StoreFailed as exc:
            # No 2xx: the sender keeps the event and retries, so nothing is lost.
            return JSONResponse({"error": str(exc)}, status_code=500)
        events_received.inc(len(events))
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
