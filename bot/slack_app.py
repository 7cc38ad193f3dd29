"""Builds the Bolt app and its Web API client."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from bot.deps import Deps
from bot.listeners import register_all


def build_web_client(token: str, base_url: str) -> WebClient:
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=10,
        retry_handlers=[
            ConnectionErrorRetryHandler(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
        ],
    )


def build_bolt_app(deps: Deps, notify_outbox: Callable[[], None] = lambda: None) -> App:
    settings = deps.settings
    if settings.slack_bot_token is None:
        raise ValueError("a Bolt app needs SLACK_BOT_TOKEN")
    client = build_web_client(settings.slack_bot_token, settings.slack_api_url)
    app = App(
        client=client,
        # In Socket Mode alone there is no signing secret; /slack/events is then closed.
        signing_secret=settings.slack_signing_secret or "socket-mode-only",
        # auth.test at construction would make start-up fail whenever Slack is slow;
        # the token is checked by `serve` with a clear message instead.
        token_verification_enabled=False,
        # Listeners do their (short) work before ack(). Without this, Bolt runs each one on
        # a second thread pool and polls for the ack every 10 ms, which doubled the latency
        # of `/integ status` (bench/README.md, findings).
        process_before_response=True,
        logger=logging.getLogger("slack_bolt"),
    )
    register_all(app, deps, notify_outbox)
    return app
