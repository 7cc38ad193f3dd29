"""What listeners and jobs need, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.settings import Settings
from commands.permissions.people import UNKNOWN, Directory


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    settings: Settings
    sessions: sessionmaker[Session]
    # Injected so tests can drive time instead of sleeping.
    clock: Callable[[], datetime] = utcnow
    # Who people are, as the workspace says (Slack's users and user groups, cached). Knowing
    # nobody, every action that needs a role is refused.
    directory: Directory = UNKNOWN
