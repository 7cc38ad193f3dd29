"""Whose Home shows which integrations: those a person answers for by name or by team.

Admins answer for everything, but a Home listing every integration as theirs would bury
what is really theirs: the Home lists an integration for its owner, backups and team, and
the overview at its foot shows the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
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
    person: Person,
    directory: Directory,
    integrations: Sequence[Integration],
    previously: AbstractSet[str] = frozenset(),
) -> list[Mine]:
    """Those of `integrations` that `person` is owner, backup or team member of. A team
    Slack cannot list just now counts as it did at the last render (`previously`: the
    integrations that Home showed), rather than as one they left."""
    found: list[Mine] = []
    for integ in integrations:
        spec = integration_spec(integ)
        # No admins: being one makes nothing anyone's own (see above), and asking Slack
        # for the admins' group would cost a lookup for nothing.
        held = set(
            Roles(integ.owner, tuple(spec.backups), None, Admins()).held_by(person, directory)
        )
        if spec.team is not None:
            members = directory.group_members(spec.team)
            if members is None:
                if integ.id in previously:
                    held.add(Role.TEAM)
            elif person.user_id in members:
                held.add(Role.TEAM)
        if held:
            found.append(Mine(integ, frozenset(held)))
    return found
