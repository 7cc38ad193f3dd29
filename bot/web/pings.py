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
from commands.monitors.heartbeats import (
    FAIL,
    MAX_BODY,
    START,
    SUCCESS,
    PingResult,
    is_heartbeat_key,
    record_ping,
)
from storage.db import transaction

log = logging.getLogger(__name__)

# Pings are short writes; a few at a time keep SQLite's one writer busy without a queue of
# threads each holding a connection.
PING_WORKERS = 4


def _is_known(deps: Deps, key: str) -> bool:
    """Whether a heartbeat has this key; DatabaseUnavailable when the database cannot say."""
    with deps.database.guard(), deps.sessions() as session:
        return is_heartbeat_key(session, key)


def _refused(exc: DatabaseUnavailable) -> Response:
    # Nothing was stored; a job's `curl --retry` tries again after Retry-After, and the
    # missed-run check waits for that retry (heartbeats.raise_missed). The body may be unread.
    return PlainTextResponse(
        f"unavailable: the database does not answer ({exc}); try again later\n",
        status_code=503,
        headers={"Retry-After": str(exc.retry_after), **CLOSE},
    )


def make_ping_endpoint(
    deps: Deps, notify_outbox: Callable[[], None]
) -> Callable[[Request], Awaitable[Response]]:
    limiter = CapacityLimiter(PING_WORKERS)

    def store(
        key: str, kind: str, method: str, agent: str | None, addr: str | None, body: str | None
    ) -> PingResult | None:
        with transaction(deps.sessions) as session:
            return record_ping(
                session,
                key,
                kind,
                now=deps.clock(),
                method=method,
                user_agent=agent,
                remote_addr=addr,
                body=body,
            )

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
            return _refused(DatabaseUnavailable(reason))
        raw = b""
        if request.method == "POST" and request.headers.get("content-length") != "0":
            # The key first (one indexed row): a body posted to a wrong URL is never read.
            try:
                known = await deps.database.run(_is_known, deps, key, limiter=limiter)
            except DatabaseUnavailable as exc:
                return _refused(exc)
            if not known:
                metrics.PINGS.labels("unknown").inc()
                return PlainTextResponse(
                    "not found: no heartbeat has this key\n", status_code=404, headers=CLOSE
                )
            try:
                # A long log still counts as a ping, with its first MAX_BODY bytes kept; past
                # request_body.MAX_BODY (1 MiB) it is refused rather than read to the end.
                raw = await read_body(request, keep=MAX_BODY)
            except BodyRefused as exc:
                return PlainTextResponse(f"{exc.reason}\n", exc.status, headers=CLOSE)
        body = raw.decode("utf-8", errors="replace") if raw else None
        addr = request.client.host if request.client else None
        try:
            # Refused at once while the database does not answer, and bounded when it hangs.
            result = await deps.database.run(
                store, key, kind, request.method, agent, addr, body, limiter=limiter
            )
        except DatabaseUnavailable as exc:
            return _refused(exc)
        if result is None:
            metrics.PINGS.labels("unknown").inc()
            return PlainTextResponse("not found: no heartbeat has this key\n", status_code=404)
        metrics.PINGS.labels(kind).inc()
        if result.alert is not None:
            notify_outbox()
        return PlainTextResponse("OK\n" if kind != START else "OK: started\n")

    return endpoint
