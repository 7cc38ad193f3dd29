"""`integ-bot serve`: one process with the HTTP server, the scheduler and Socket Mode."""

from __future__ import annotations

import gc
import logging
import signal
import threading
from types import FrameType
from typing import Any, Final

import uvicorn
from slack_sdk.errors import SlackApiError

from bot.runtime import Runtime, StartupError, build_runtime
from bot.settings import Settings
from bot.socket_mode import connect_socket_mode
from bot.web.http_protocol import GuardedHttpToolsProtocol

log = logging.getLogger("integ-bot")

# Connections open at once, and requests in progress at once; past either, uvicorn answers
# 503 at once instead of queueing. Requests hold a body of up to 1 MiB each while they are
# read and parsed, so this also bounds that memory. It counts idle connections too, which is
# why they are closed: a request's head must come within HEAD_SECONDS
# (bot/web/http_protocol.py), and a kept-alive connection that stays silent for
# KEEP_ALIVE_SECONDS is closed. Far above what Slack, jobs and alerting servers need at once.
LIMIT_CONCURRENCY: Final = 500
# How long a connection may stay open, silent, after an answer, for the client's next
# request. A proxy in front that keeps connections to the bot open must close them sooner
# (nginx: `keepalive_timeout 4s;` in the upstream block), or it may send a request on one
# the bot is closing and answer 502.
KEEP_ALIVE_SECONDS: Final = 5


# Requests in flight get this long after SIGTERM; the workers' own stops follow, and all of
# it must fit in the 10 s Docker allows before it kills the process.
GRACEFUL_SECONDS = 3


def http_server_options() -> dict[str, Any]:
    """uvicorn's settings against hostile or broken clients; the tests' server uses them too.

    The parser is always httptools (a dependency), in the protocol that bounds a request's
    head in time and size; uvicorn's `h11_max_incomplete_event_size` would bound the size for
    h11 alone, so it is not set.
    """
    return {
        "http": GuardedHttpToolsProtocol,
        "limit_concurrency": LIMIT_CONCURRENCY,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }


def check_token(runtime: Runtime) -> None:
    """Fail fast on a token Slack refuses; carry on if Slack is only unreachable."""
    if runtime.bolt is None:
        return
    try:
        identity = runtime.bolt.client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else str(exc)
        if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
            raise StartupError(f"SLACK_BOT_TOKEN: Slack refused the token ({error})") from None
        log.warning("auth.test failed (%s); starting anyway", error)
        return
    except Exception as exc:  # network trouble must not keep hooks and pings down
        log.warning(
            "Slack is unreachable at %s (%s); starting anyway",
            runtime.deps.settings.slack_api_url,
            exc,
        )
        return
    log.info("connected to Slack workspace %s as %s", identity.get("team"), identity.get("user"))


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again; with the
    # default handler that kills the process before `finally` below closes the scheduler,
    # Socket Mode and the database. Exiting normally lets it run (`docker stop` sends this).
    raise SystemExit(0)


def serve(settings: Settings, host: str, port: int) -> int:
    runtime = build_runtime(settings)
    socket_handler = None
    stop_connecting = threading.Event()
    try:
        check_token(runtime)
        if settings.local_mode:
            log.warning(
                "local mode: SLACK_BOT_TOKEN is not set. Slack requests are refused and "
                "messages meant for Slack are printed here; `integ-bot shell` answers /integ."
            )
        if runtime.bolt is not None and settings.slack_app_token:
            socket_handler = connect_socket_mode(
                runtime.bolt, settings.slack_app_token, stop_connecting
            )
        runtime.start_scheduler()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        log.info("serving on http://%s:%d (catalog %s)", host, port, settings.catalog_path)
        # What start-up built (the catalog, SQLAlchemy's and Slack's modules) lives as long
        # as the process: frozen, the collector stops scanning it on every full collection,
        # each of which otherwise held every request up for tens of milliseconds.
        gc.collect()
        gc.freeze()
        uvicorn.run(
            runtime.http_app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SECONDS,
            **http_server_options(),
        )
    finally:
        stop_connecting.set()
        if socket_handler is not None:
            socket_handler.close()
        runtime.close()
    return 0
