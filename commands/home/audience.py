"""Whose Home shows which integrations: those a person answers for by name or by team.

Admins answer for everything, but a Home listing every integration as theirs would bury
what is really theirs: the Home lists an integration for its owner, backups and team, and
the overview at its foot shows the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from commands.catalog.spec import Admins
from commands.catalog.views import integration_spec
from commands.permissions.people import Directory, Person
from commands.permissions.roles import Role, Roles
from storage.models import Integration

# The order a person's roles are named in, most responsible first.
ROLE_ORDER = (Role.OWNER, Role.BACKUP, Role.TEAM)


@dataclass(frozen=True)
class Mine:
    """An integration the person answers for, and how."""

    integ: Integration
    roles: frozenset[Role]

    @property
    def role_text(self) -> str:
        return ", ".join(role.value for role in ROLE_ORDER if role in self.roles)


def responsible_for(
    person: Person, directory: Directory, integrations: Sequence[Integration]
) -> list[Mine]:
    """Those of `integrations` that `person` is owner, backup or team member of."""
    found: list[Mine] = []
    for integ in integrations:
        spec = integration_spec(integ)
        # No admins: being one makes nothing anyone's own (see above), and asking Slack
        # for the admins' group would cost a lookup for nothing.
        roles = Roles(integ.owner, tuple(spec.backups), spec.team, Admins())
        held = roles.held_by(person, directory)
        if held:
            found.append(Mine(integ, frozenset(held)))
    return found
