"""The one place a permission is decided: `permit` answers None (go ahead) or the refusal
to show, and records every refusal in the audit trail."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from commands.core.render.mrkdwn import escape
from commands.permissions.audit import record
from commands.permissions.people import Actor, Person
from commands.permissions.roles import Role, Roles
from commands.permissions.rules import DOING, NEEDS, Action, Need
from storage.models import Integration

UNKNOWN_PERSON = (
    ":hourglass: I could not check with Slack who you are just now, so I did nothing. "
    "Try again in a minute."
)
NOT_MEMBER = (
    ":no_entry: Guests and people from other organisations can use `/integ help` and "
    "`/integ status`; everything else is for full members of this workspace."
)


@dataclass(frozen=True)
class Refusal:
    message: str  # mrkdwn, shown only to the person refused


def permit(
    session: Session,
    actor: Actor,
    action: Action,
    integ: Integration | None,
    now: datetime,
    subject: str | None = None,
) -> Refusal | None:
    """None when `actor` may do `action` (to `integ`); otherwise the refusal, recorded."""
    need = NEEDS[action]
    if need == Need.ANYONE:
        return None
    person = actor.directory.person(actor.user_id)
    refusal = _refusal(session, person, actor, need, action, integ)
    if refusal is not None:
        record(
            session,
            actor,
            action,
            integ.id if integ is not None else None,
            subject,
            now,
            allowed=False,
            detail=_detail(person),
        )
    return refusal


def is_responder(session: Session, actor: Actor, integ: Integration) -> bool:
    """Whether `actor` answers for `integ`; asks nothing of the audit trail."""
    person = actor.directory.person(actor.user_id)
    if person is None or not person.is_member:
        return False
    return person.console or bool(Roles.of(session, integ).held_by(person, actor.directory))


def may_see(session: Session, actor: Actor, integ: Integration) -> bool:
    """Whether the alerts and changes of `integ` may be shown to `actor` where they asked:
    anywhere for a public channel's integration; for a private one, in that channel or to
    its responders. A channel Slack cannot tell about counts as private."""
    return Visibility(session, actor, [integ])(integ)


def _refusal(
    session: Session,
    person: Person | None,
    actor: Actor,
    need: Need,
    action: Action,
    integ: Integration | None,
) -> Refusal | None:
    if person is None:
        return Refusal(UNKNOWN_PERSON)
    if person.console:
        return None
    if not person.is_member:
        return Refusal(NOT_MEMBER)
    if need == Need.MEMBER:
        return None
    roles = Roles.of(session, integ)
    held = roles.held_by(person, actor.directory)
    if need == Need.RESPONDER and held:
        return None
    if need == Need.OWNER_OR_ADMIN and held & {Role.OWNER, Role.ADMIN}:
        return None
    name = f"*{escape(integ.name)}*" if integ is not None else "this"
    if need == Need.OWNER_OR_ADMIN:
        who = f"the owner or an admin of {name}: {roles.owner_or_admin_text()}"
    else:
        who = f"the responders of {name}: {roles.responders_text()}"
    return Refusal(f":no_entry: Only {who} may {DOING[action]}.")


def _detail(person: Person | None) -> str:
    if person is None:
        return "refused: Slack could not say who this is"
    if not person.is_member:
        return f"refused: {person.kind.value}"
    return "refused: not a responder"


def permit_on(
    session: Session,
    actor: Actor,
    action: Action,
    integ: Integration | None,
    now: datetime,
    subject: str,
) -> Refusal | None:
    """`permit`, for something of `integ` the person named by id (an alert, a review): if
    it belongs to a private channel they cannot see, the refusal names nobody, so an id
    guessed from elsewhere tells nothing about the private integration."""
    if integ is not None and not may_see(session, actor, integ):
        refusal = permit(session, actor, Action.SEE_PRIVATE, integ, now, subject)
        if refusal is not None:
            if refusal.message in (UNKNOWN_PERSON, NOT_MEMBER):
                return refusal
            return Refusal(
                f":no_entry: {escape(subject[:1].upper() + subject[1:])} can be seen and acted "
                "on only in its integration's channel, which is private, or by that "
                "integration's responders."
            )
    return permit(session, actor, action, integ, now, subject)


class Visibility:
    """`may_see` for many integrations in one answer, each asked once, and the privacy of
    their channels asked of the directory all at once."""

    def __init__(
        self, session: Session, actor: Actor, integrations: Sequence[Integration] = ()
    ) -> None:
        self._session = session
        self._actor = actor
        self._seen: dict[str, bool] = {}
        self._private = actor.directory.channels_private(
            sorted({i.channel for i in integrations if i.channel != actor.channel_id})
        )

    def __call__(self, integ: Integration | None) -> bool:
        if integ is None:
            return True  # an unknown integration's alert goes to the fallback channel
        if integ.id not in self._seen:
            private = self._private.get(integ.channel, True)
            self._seen[integ.id] = (
                integ.channel == self._actor.channel_id
                or private is False
                or is_responder(self._session, self._actor, integ)
            )
        return self._seen[integ.id]


def private_refusal(
    session: Session, actor: Actor, integ: Integration, now: datetime, what: str
) -> Refusal | None:
    """A refusal when `what` of `integ` (its alerts, its changes) may not be shown here."""
    return permit_on(session, actor, Action.READ, integ, now, what)
