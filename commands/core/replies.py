"""What a command returns: text for notifications and the console, blocks for Slack."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from commands.core.render.blocks import Block
from commands.permissions.people import UNKNOWN, Actor, Directory, Surface


@dataclass(frozen=True)
class Invocation:
    """One `/integ …` as typed, with who typed it, where, and when."""

    text: str
    user_id: str
    channel_id: str | None
    now: datetime
    # Where the bot is reachable from outside (INTEG_PUBLIC_URL), for URLs it shows.
    public_url: str | None = None
    # The domain of the integrations' e-mail addresses (INTEG_MAIL_DOMAIN), when mail is taken.
    mail_domain: str | None = None
    # Who the person is, as the workspace says; knowing nobody, it refuses what needs a role.
    directory: Directory = UNKNOWN
    surface: Surface = Surface.SLASH

    @property
    def actor(self) -> Actor:
        return Actor(self.user_id, self.channel_id, self.surface, self.directory)


@dataclass(frozen=True)
class Reply:
    text: str
    blocks: list[Block] = field(default_factory=list)
    # Answers are only for the person who asked unless the verb posts for the channel.
    ephemeral: bool = True
