"""What listeners and jobs need, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from bot.settings import Settings
from bot.workers.database_health import DatabaseHealth
from commands.permissions.people import UNKNOWN, Directory
from storage.leases import LeaseClock, database_clock


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    settings: Settings
    sessions: sessionmaker[Session]
    # Injected so tests can drive time instead of sleeping.
    clock: Callable[[], datetime] = utcnow
    # The clock claims are leased on: the database's, shared by every replica. Tests that
    # drive `clock` by hand drive this one with it.
    lease_clock: LeaseClock = database_clock
    # Who people are, as the workspace says (Slack's users and user groups, cached). Knowing
    # nobody, every action that needs a role is refused.
    directory: Directory = UNKNOWN
    # Whether the database answers, as this process last found; made from the two above.
    database: DatabaseHealth = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "database", DatabaseHealth(self.sessions, self.clock))
