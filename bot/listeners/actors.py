"""Who sent a Slack request, as the rules see them."""

from __future__ import annotations

from typing import Any

from bot.deps import Deps
from commands.permissions.people import Actor, Surface


def actor_of(deps: Deps, body: dict[str, Any], surface: Surface) -> Actor:
    """Who clicked or submitted, and in which channel (a modal has none)."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    user = str((body.get("user") or {}).get("id") or "")
    return Actor(user, str(channel) if channel else None, surface, deps.directory)
