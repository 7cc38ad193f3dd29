"""The outbox's renderer for Home publishes: who the Home is for, what it shows now."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from commands.home.audience import responsible_for
from commands.home.content import gather
from commands.home.queue import rendering, user_of
from commands.home.view import HomeActions, home_view
from commands.outbox.calls import Call, Job, Later, Renderer, Unsendable
from commands.permissions.people import Directory, Person, UserKind
from storage import queries

# How long the answer to a click in the Home stays at its top.
NOTICE_SHOWN = timedelta(minutes=10)


def home_renderer(directory: Directory, actions: HomeActions) -> Renderer:
    """Renders a HOME row as views.publish of that person's Home as it is now."""

    def render(session: Session, job: Job, now: datetime) -> Call:
        user = user_of(job.channel)
        if not user:
            raise Unsendable(f"{job.channel!r} is not a person's Home")
        person = _person(directory, user)
        everything = queries.integrations(session)
        mine = responsible_for(person, directory, everything)
        # Written before anything is read for the view: a change committed from here on
        # asks for a publish of its own, and one committed before is in what is read below.
        view_row = rendering(session, user, [m.integ.id for m in mine])
        if view_row is None:
            raise Unsendable(f"the Home of {user} was forgotten (not opened for long)")
        fresh = view_row.notice_at is not None and now - view_row.notice_at < NOTICE_SHOWN
        notice = view_row.notice if fresh else None
        content = gather(session, everything, mine, now, view_row.system_filter, notice)
        view = home_view(content, actions, buttons=person.is_member, member=person.is_member)
        return Call(channel=job.channel, text="", home_of=user, view=view)

    return render


def preview(
    session: Session, user: str, directory: Directory, now: datetime, actions: HomeActions
) -> dict[str, Any]:
    """The Home `user` would see now, remembering nothing (the console's `home`)."""
    person = _person(directory, user)
    everything = queries.integrations(session)
    content = gather(session, everything, responsible_for(person, directory, everything), now)
    return home_view(content, actions, buttons=person.is_member, member=person.is_member)


def _person(directory: Directory, user: str) -> Person:
    # Asked before anything is written: Slack may take a moment to answer.
    person = directory.person(user)
    if person is None:
        raise Later(f"Slack could not say who {user} is just now")
    if person.kind == UserKind.DEACTIVATED:
        raise Unsendable(f"{user} is deactivated")
    return person
