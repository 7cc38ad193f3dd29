"""The outbox's renderer for Home publishes: who the Home is for, what it shows now."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from commands.home.audience import responsible_for
from commands.home.content import gather
from commands.home.queue import rendering, shown_before, user_of
from commands.home.view import HomeActions, home_view
from commands.outbox.calls import Call, Job, Later, Renderer, Unsendable
from commands.permissions.people import Directory, Person, UserKind
from storage import queries
from storage.models import HomeView

# How long the answer to a click in the Home stays at its top.
NOTICE_SHOWN = timedelta(minutes=10)
# A person Slack cannot tell about for this long (user_not_found, a revoked token) is given
# up on: the row fails rather than being retried for ever; opening the Home asks anew.
GIVE_UP = timedelta(hours=1)


def home_renderer(directory: Directory, actions: HomeActions) -> Renderer:
    """Renders a HOME row as views.publish of that person's Home as it is now. Its claim
    cleared the Home's mark (commands/home/queue.py), so everything read here is at least
    as new as the changes that asked for it."""

    def render(session: Session, job: Job, now: datetime) -> Call:
        user = user_of(job.channel)
        if not user:
            raise Unsendable(f"{job.channel!r} is not a person's Home")
        person = _person(directory, user, now - job.created_at > GIVE_UP)
        if session.get(HomeView, user) is None:
            raise Unsendable(f"the Home of {user} was forgotten (not opened for long)")
        everything = queries.integrations(session)
        mine = responsible_for(person, directory, everything, shown_before(session, user))
        view_row = session.get_one(HomeView, user)
        fresh = view_row.notice_at is not None and now - view_row.notice_at < NOTICE_SHOWN
        notice = view_row.notice if fresh else None
        content = gather(session, everything, mine, now, view_row.system_filter, notice)
        view = home_view(content, actions, buttons=person.is_member, member=person.is_member)
        # Written last, so that SQLite's write lock is held for this alone: what it shows,
        # which changes to ask for it again on.
        shown = [m.integ.id for m in mine] + [row[0].id for row in content.overview.rows]
        rendering(session, user, shown, now)
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


def _person(directory: Directory, user: str, give_up: bool = False) -> Person:
    person = directory.person(user)
    if person is None:
        reason = f"Slack could not say who {user} is"
        if give_up:
            raise Unsendable(f"{reason} for an hour")
        raise Later(f"{reason} just now")
    if person.kind == UserKind.DEACTIVATED:
        raise Unsendable(f"{user} is deactivated")
    return person
