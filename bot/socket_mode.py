"""Socket Mode: one WebSocket connection to Slack, replaced by itself when Slack refreshes
it, closes it, or the network drops it; and kept trying while Slack cannot be reached."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Final

from slack_bolt.adapter.socket_mode.websocket_client import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.websocket_client import SocketModeClient
from websocket import WebSocketApp

from bot.runtime import StartupError

if TYPE_CHECKING:
    from slack_bolt import App

log = logging.getLogger("integ-bot")


# apps.connections.open answers no retry will change.
_APP_TOKEN_REFUSED: Final = (
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "not_allowed_token_type",
)


def _slack_error(exc: Exception) -> str:
    """Slack's error code for a failed call (`invalid_auth`), or what went wrong otherwise."""
    if isinstance(exc, SlackApiError) and exc.response is not None:
        return str(exc.response.get("error"))
    return f"{type(exc).__name__}: {exc}"


def _app_token_refused(exc: Exception) -> str | None:
    error = _slack_error(exc)
    return error if error in _APP_TOKEN_REFUSED else None


# Socket Mode runs on slack_sdk's websocket-client based client, with the changes below. Its
# built-in client reads a new connection only about 3 s after a refresh (past the 3 s Slack
# allows for an acknowledgement), notices a close frame only at its next ping, and spins a CPU
# core for about a minute on a connection that ends without a close frame.
#
# The client pings every SOCKET_MODE_PING_INTERVAL seconds, and a connection whose pong has not
# come SOCKET_MODE_PONG_TIMEOUT seconds after a ping is taken for dead and replaced: so is one
# that the network drops without a trace (no close frame, no FIN), in 13 s at most (3 of them
# spent waiting for an answer to the close frame).
# websocket-client looks for the pong whenever its read loop wakes, at least every timeout, so
# the interval must be more than twice the timeout for a missing pong to be seen after the
# first ping that goes unanswered. The timeout also bounds how long the reader of a replaced
# connection takes to let go (the gap in a refresh) and how long closing takes at shutdown.
SOCKET_MODE_PING_INTERVAL: Final = 5.0
SOCKET_MODE_PONG_TIMEOUT: Final = 2.0
# A reconnect that fails (apps.connections.open refused or unreachable) is tried again after
# this long, then twice as long each time, up to a minute.
SOCKET_MODE_RETRY_SECONDS: Final = SOCKET_MODE_PING_INTERVAL


def _ping_at_once(ws: WebSocketApp) -> None:
    """Ping a new connection at once, as slack_sdk's built-in client does: its pong is due
    within the pong timeout, so a connection that opens but carries nothing is replaced
    within seconds instead of after the first regular ping."""
    ws.last_ping_tm = time.time()
    if ws.sock is not None:
        ws.sock.ping(ws.ping_payload)


class _SocketModeClient(SocketModeClient):
    """slack_sdk's websocket-client based Socket Mode client, with three changes.

    - Its reader passes websocket-client a pong timeout (slack_sdk passes none): without it,
      a connection that dies without a trace is never noticed, and the reader of a replaced
      connection holds the next one back for up to 10 s.
    - A connection counts as connected from when it is made until its reader ends. slack_sdk
      looks at the socket alone, so in the half second before the reader opens a new
      connection its checker and the old connection's close handler each take it for down
      and replace it again: a new URL each, and connections nobody reads.
    - A connection is read once: slack_sdk's reader runs a finished one again, on its used URL.
    """

    def __init__(self, app_token: str, web_client: WebClient, logger: logging.Logger) -> None:
        self._started: WebSocketApp | None = None  # the last connection the reader ran
        self._retry_delay = SOCKET_MODE_RETRY_SECONDS
        self._retry_at = 0.0  # time.monotonic() before which the checker does not reconnect
        super().__init__(
            app_token=app_token,
            logger=logger,
            web_client=web_client,
            ping_interval=SOCKET_MODE_PING_INTERVAL,
            on_open_listeners=[_ping_at_once],
        )

    def is_connected(self) -> bool:
        session = self.current_session
        # keep_running turns false when the reader tears the connection down, before its
        # close handler runs, or when the connection is closed.
        return session is not None and (session is not self._started or session.keep_running)

    def _run_current_session(self) -> None:
        # slack_sdk's reader thread calls this every 0.5 s, from before __init__ ends (when
        # there is no connection yet); an exception would end the thread.
        if self.current_session is None:
            return
        try:
            with self.connect_operation_lock:  # not while connect() replaces the connection
                session = self.current_session
                if session is None or session is self._started or self.closed:
                    return
                session.keep_running = True  # first, so that is_connected() stays true
                self._started = session
            try:
                session.run_forever(
                    ping_interval=self.ping_interval, ping_timeout=SOCKET_MODE_PONG_TIMEOUT
                )
            finally:
                session.keep_running = False
        except Exception as exc:
            log.error("Socket Mode: the connection failed (%s)", _slack_error(exc))

    def _monitor_current_session(self) -> None:
        # slack_sdk's checker thread calls this every ping interval. A connection the reader
        # gave up on is replaced at once by its close handler; this catches the rest, such as
        # a replacement that failed because apps.connections.open did.
        try:
            if not self.auto_reconnect_enabled or self.is_connected():
                return
            if time.monotonic() < self._retry_at:
                return
            self.connect_to_new_endpoint()
        except Exception as exc:
            log.warning(
                "Socket Mode cannot reconnect yet (%s); trying again in %.0f s",
                _slack_error(exc),
                self._retry_delay,
            )
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, 60.0)
        else:
            self._retry_delay = SOCKET_MODE_RETRY_SECONDS


class _SocketModeHandler(SocketModeHandler):
    """Bolt's adapter for the websocket-client based client, on the client above."""

    def __init__(self, app: App, app_token: str) -> None:
        # Not SocketModeHandler.__init__: it would start the threads of a client to drop.
        self.app = app
        self.app_token = app_token
        self.client = _SocketModeClient(app_token, app.client, app.logger)
        self.client.socket_mode_request_listeners.append(self.handle)  # type: ignore[arg-type]


def connect_socket_mode(bolt: App, app_token: str, stopping: threading.Event) -> SocketModeHandler:
    """Open Socket Mode. An app token Slack refuses stops start-up, like a refused bot
    token; while Slack is down (apps.connections.open fails or cannot be reached), this
    keeps trying in the background, so that hooks and pings are served meanwhile. Once
    connected, the client reconnects by itself (see _SocketModeClient)."""
    handler = _SocketModeHandler(bolt, app_token)
    try:
        handler.connect()
    except Exception as exc:
        refused = _app_token_refused(exc)
        if refused is not None:
            handler.close()
            raise StartupError(f"SLACK_APP_TOKEN: Slack refused the token ({refused})") from None
        log.warning(
            "Socket Mode cannot connect yet (%s); trying again in the background",
            _slack_error(exc),
        )
        threading.Thread(
            target=_keep_connecting, args=(handler, stopping), name="socket-mode", daemon=True
        ).start()
        return handler
    log.info("Socket Mode connected")
    return handler


def _keep_connecting(handler: SocketModeHandler, stopping: threading.Event) -> None:
    delay = 1.0
    while not stopping.wait(delay):
        try:
            handler.connect()
        except Exception as exc:
            refused = _app_token_refused(exc)
            if refused is not None:
                log.error("SLACK_APP_TOKEN: Slack refused the token (%s); no Socket Mode", refused)
                return
            log.warning("Socket Mode cannot connect yet (%s); trying again", _slack_error(exc))
            delay = min(delay * 2, 60.0)
            continue
        log.info("Socket Mode connected")
        return
