"""GET, HEAD or POST /ping/<key>, /ping/<key>/start, /ping/<key>/fail: heartbeats from jobs.

Batch jobs call these with curl or wget at the end of a run, so the answers are plain text
and any method works. A 200 means the ping is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from anyio import CapacityLimiter
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot import metrics
from bot.deps import Deps
from bot.web.request_body import CLOSE, BodyRefused, read_body
from bot.workers.database_health import DatabaseUnavailable
from bot.workers.intake_writer import Busy, IntakeWriter, StoreFailed
from commands.monitors.heartbeats import FAIL, MAX_BODY, START, SUCCESS
from commands.monitors.ping_batches import Ping

log = logging.getLogger(__name__)

# Looking up a key that is not in memory reads one indexed row; a few at a time are plenty.
LOOKUP_WORKERS = 4


def _refused(reason: str, retry_after: int) -> Response:
    # Nothing was stored; a job's `curl --retry` tries again after Retry-After, and the
    # missed-run check waits for that retry (heartbeats.raise_missed). The body may be unread.
    return PlainTextResponse(
        f"unavailable: {reason}; try again later\n",
        status_code=503,
        headers={"Retry-After": str(retry_after), **CLOSE},
    )


def _not_found(headers: dict[str, str] | None = None) -> Response:
    metrics.PINGS.labels("unknown").inc()
    return PlainTextResponse("not found: no heartbeat has this key\n", 404, headers=headers)


def make_ping_endpoint(
    deps: Deps, writer: IntakeWriter, notify_outbox: Callable[[], None]
) -> Callable[[Request], Awaitable[Response]]:
    limiter = CapacityLimiter(LOOKUP_WORKERS)

    def is_known(key: str) -> bool:
        """Whether a heartbeat has this key; DatabaseUnavailable when the database cannot
        say."""
        with deps.database.guard(), deps.sessions() as session:
            return writer.heartbeats.lookup(session, key) is not None

    async def endpoint(request: Request) -> Response:
        key = request.path_params["key"]
        kind = request.path_params.get("kind", SUCCESS)
        if kind not in (START, FAIL, SUCCESS) or kind == SUCCESS and "kind" in request.path_params:
            return PlainTextResponse("not found: use /ping/<key>, /start or /fail\n", 404)
        agent = request.headers.get("user-agent")
        if agent and "slackbot" in agent.lower():
            # Slack's link expander fetching a pasted ping URL is not the job reporting; if
            # it counted, a dead job would look alive whenever someone shared its URL.
            metrics.PINGS.labels("ignored").inc()
            return PlainTextResponse("ignored: requests from Slackbot do not count\n")
        if (reason := deps.database.reason) is not None:
            # Known to be down: answered at once, before the body or a worker thread.
            exc = DatabaseUnavailable(reason)
            return _refused(f"the database does not answer ({exc})", exc.retry_after)
        raw = b""
        if request.method == "POST" and request.headers.get("content-length") != "0":
            # The key first (from memory, or one indexed row): a body posted to a wrong URL
            # is never read.
            if not writer.heartbeats.remembers(key):
                try:
                    known = await deps.database.run(is_known, key, limiter=limiter)
                except DatabaseUnavailable as exc:
                    return _refused(f"the database does not answer ({exc})", exc.retry_after)
                if not known:
                    return _not_found(CLOSE)  # its body is left unread
            try:
                # A long log still counts as a ping, with its first MAX_BODY bytes kept; past
                # request_body.MAX_BODY (1 MiB) it is refused rather than read to the end.
                raw = await read_body(request, keep=MAX_BODY)
            except BodyRefused as exc:
                return PlainTextResponse(f"{exc.reason}\n", exc.status, headers=CLOSE)
        ping = Ping(
            key=key,
            kind=kind,
            method=request.method,
            user_agent=agent,
            remote_addr=request.client.host if request.client else None,
            body=raw.decode("utf-8", errors="replace") if raw else None,
        )
        try:
            # Committed with whatever else is waiting (the intake writer's group commit).
            result = await writer.pinged(ping)
        except Busy as exc:
            return _refused(str(exc).removeprefix("not stored: "), exc.retry_after)
        except StoreFailed as exc:
            return PlainTextResponse(f"{exc}; try again\n", status_code=500)
        if result is None:
            return _not_found()
        metrics.PINGS.labels(kind).inc()
        if result.alert is not None:
            notify_outbox()
        return PlainTextResponse("OK\n" if kind != START else "OK: started\n")

    return endpoint
