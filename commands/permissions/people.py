"""Who is asking, as the workspace knows them, behind a port the bot fills from Slack.

Commands never ask Slack themselves: the bot hands them a `Directory`, which answers from
what it last heard and says `None` when it has never been able to find out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class UserKind(enum.StrEnum):
    MEMBER = "member"  # a full member of this workspace
    GUEST = "guest"  # a single- or multi-channel guest
    EXTERNAL = "external"  # someone from another organisation, through Slack Connect
    DEACTIVATED = "deactivated"


@dataclass(frozen=True)
class Person:
    user_id: str
    kind: UserKind
    email: str | None = None
    # The console (`integ-bot shell`) is run by whoever operates the bot: it acts as an admin.
    console: bool = False

    @property
    def is_member(self) -> bool:
        return self.kind == UserKind.MEMBER


class Directory(Protocol):
    """What the workspace says about people, groups and channels; `None` when unknown."""

    def person(self, user_id: str) -> Person | None: ...

    def group_members(self, group_id: str) -> frozenset[str] | None: ...

    def channel_is_private(self, channel_id: str) -> bool | None: ...

    def channels_private(self, channel_ids: list[str]) -> dict[str, bool | None]:
        """Many channels at once, in about the time of one."""
        ...


class UnknownDirectory:
    """Knows nobody: every check that needs to know who asks is refused."""

    def person(self, user_id: str) -> Person | None:
        return None

    def group_members(self, group_id: str) -> frozenset[str] | None:
        return None

    def channel_is_private(self, channel_id: str) -> bool | None:
        return None

    def channels_private(self, channel_ids: list[str]) -> dict[str, bool | None]:
        return dict.fromkeys(channel_ids)


class ConsoleDirectory:
    """The console's: whoever types there runs the bot, so they act as an admin."""

    def person(self, user_id: str) -> Person | None:
        return Person(user_id, UserKind.MEMBER, console=True)

    def group_members(self, group_id: str) -> frozenset[str] | None:
        return frozenset()

    def channel_is_private(self, channel_id: str) -> bool | None:
        return False

    def channels_private(self, channel_ids: list[str]) -> dict[str, bool | None]:
        return dict.fromkeys(channel_ids, False)


UNKNOWN = UnknownDirectory()
CONSOLE = ConsoleDirectory()


class Surface(enum.StrEnum):
    """Where an action came from, recorded in the audit trail."""

    SLASH = "slash"
    BUTTON = "button"
    HOME = "home"  # a button in the person's Home tab
    MODAL = "modal"
    SHORTCUT = "shortcut"
    REACTION = "reaction"
    SHELL = "shell"


@dataclass(frozen=True)
class Actor:
    """Who acts, from where, and the directory that says who they are."""

    user_id: str
    channel_id: str | None
    surface: Surface
    directory: Directory = UNKNOWN
