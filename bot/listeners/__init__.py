"""Bolt listeners, grouped by kind; each module exposes `register(app, deps)`."""

from __future__ import annotations

from slack_bolt import App

from bot.deps import Deps
from bot.listeners import slash_commands


def register_all(app: App, deps: Deps) -> None:
    slash_commands.register(app, deps)
