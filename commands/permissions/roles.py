"""Roles from the catalog: an integration's owner, backups and team, and the admins.

Catalog entries name people by Slack user id or by e-mail; a person matches either.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy.orm import Session

from commands.catalog.spec import Admins
from commands.catalog.views import integration_spec
from commands.core.render.mrkdwn import group_mention, mention
from commands.permissions.people import Directory, Person
from storage.models import CatalogSetting, Integration
from storage.models.catalog import ADMINS_SETTING


class Role(enum.StrEnum):
    OWNER = "owner"
    BACKUP = "backup"
    TEAM = "team member"
    ADMIN = "admin"


def admins(session: Session) -> Admins:
    row = session.get(CatalogSetting, ADMINS_SETTING)
    return Admins.from_json(row.value) if row is not None else Admins()


@dataclass(frozen=True)
class Roles:
    """Who answers for one integration (or, with no integration, for the bot as a whole)."""

    owner: str | None
    backups: tuple[str, ...]
    team: str | None
    admins: Admins

    @classmethod
    def of(cls, session: Session, integ: Integration | None) -> Roles:
        if integ is None:
            return cls(None, (), None, admins(session))
        spec = integration_spec(integ)
        return cls(integ.owner, tuple(spec.backups), spec.team, admins(session))

    def held_by(self, person: Person, directory: Directory) -> set[Role]:
        """Every role the person holds; a user group Slack cannot be asked about counts as
        one they are not in."""
        held: set[Role] = set()
        if self.owner is not None and _is(person, self.owner):
            held.add(Role.OWNER)
        if any(_is(person, backup) for backup in self.backups):
            held.add(Role.BACKUP)
        if self.team is not None and person.user_id in (directory.group_members(self.team) or ()):
            held.add(Role.TEAM)
        if any(_is(person, admin) for admin in self.admins.users) or (
            self.admins.group is not None
            and person.user_id in (directory.group_members(self.admins.group) or ())
        ):
            held.add(Role.ADMIN)
        return held

    def responders_text(self) -> str:
        """The responders, as mentions with their roles, for a refusal to name."""
        parts: list[str] = []
        if self.owner is not None:
            parts.append(f"{mention(self.owner)} (owner)")
        if self.backups:
            parts.append(", ".join(mention(b) for b in self.backups) + " (backups)")
        if self.team is not None:
            parts.append(f"members of {group_mention(self.team)} (team)")
        admins_text = self.admins_text()
        if admins_text:
            parts.append(f"{admins_text} (admins)")
        return _joined(parts) or "nobody: the catalog names no owner or admin"

    def owner_or_admin_text(self) -> str:
        parts = [f"{mention(self.owner)} (owner)"] if self.owner is not None else []
        admins_text = self.admins_text()
        if admins_text:
            parts.append(f"{admins_text} (admins)")
        return _joined(parts) or "nobody: the catalog names no owner or admin"

    def admins_text(self) -> str:
        if self.admins.group is not None:
            return f"members of {group_mention(self.admins.group)}"
        return ", ".join(mention(a) for a in self.admins.users)


def _is(person: Person, entry: str) -> bool:
    if entry == person.user_id:
        return True
    return person.email is not None and "@" in entry and entry.lower() == person.email.lower()


def _joined(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return "; ".join(parts[:-1]) + "; and " + parts[-1]
