"""Bolt listeners, grouped by kind; each module exposes `register(app, deps, …)`."""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import App

from bot.deps import Deps
from bot.listeners import alerts as alert_buttons
from bot.listeners import changes as change_log
from bot.listeners import changes_pages as change_pages
from bot.listeners import home, slash_commands
from bot.listeners import outages as outage_buttons
from bot.listeners import reviews as review_buttons


def register_all(app: App, deps: Deps, notify_outbox: Callable[[], None]) -> None:
    """`notify_outbox` wakes the outbox worker after a listener queued a Slack write."""
    # First: its `/integ review i` listener must be tried before the general `/integ` one.
    review_buttons.register(app, deps, notify_outbox)
    change_pages.register(app, deps, notify_outbox)  # before `/integ`, like the above
    slash_commands.register(app, deps, notify_outbox)
    alert_buttons.register(app, deps, notify_outbox)
    outage_buttons.register(app, deps, notify_outbox)
    change_log.register(app, deps, notify_outbox)
    home.register(app, deps, notify_outbox)
