"""`integ-bot serve`: one process with the HTTP server, the scheduler and Socket Mode."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn
from slack_sdk.errors import SlackApiError

from bot.runtime import Runtime, StartupError, build_runtime
from bot.settings import Settings

log = logging.getLogger("integ-bot")


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
    try:
        check_token(runtime)
        if settings.local_mode:
            log.warning(
                "local mode: SLACK_BOT_TOKEN is not set. Slack requests are refused and "
                "messages meant for Slack are printed here; `integ-bot shell` answers /integ."
            )
        if runtime.bolt is not None and settings.slack_app_token:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            socket_handler = SocketModeHandler(runtime.bolt, settings.slack_app_token)
            socket_handler.connect()
            log.info("Socket Mode connected")
        runtime.start_scheduler()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
        log.info("serving on http://%s:%d (catalog %s)", host, port, settings.catalog_path)
        uvicorn.run(
            runtime.http_app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if socket_handler is not None:
            socket_handler.close()
        runtime.close()
    return 0
