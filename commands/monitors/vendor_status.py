"""Vendor status pages: staying informed of vendor updates.

A system's `status_page` is a Statuspage-compatible site whose `/api/v2/summary.json` lists
the unresolved incidents and the upcoming or active maintenances. Each one becomes a
`vendor_notices` row and one message in the channel of every live integration touching the
system, posted through the outbox once and then edited in place as the page changes. The page
drops an incident from the summary once it is resolved, so disappearing is resolution.

The fetching is done in bot/ (`bot.workers.status_pages`), the parsing in `statuspage` and the
message in `vendor_messages`; this module claims pages, applies what was fetched and queues
the messages, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from commands.catalog.views import system_spec
from commands.core.render.mrkdwn import truncate
from commands.home import queue as home
from commands.monitors.statuspage import PageNotice, Summary
from commands.monitors.vendor_messages import GONE_STATUS, render_notice
from commands.outages.detect import on_incident, on_incident_over
from commands.outages.messages import outage_blocks
from commands.outages.state import channels_for
from commands.outbox import queue as outbox
from storage import leases, queries
from storage.db import insert_for
from storage.models import (
    Integration,
    StatusPage,
    System,
    SystemOutage,
    VendorNotice,
    VendorNoticePost,
)

ERROR_LIMIT = 500


@dataclass(frozen=True)
class PageClaim:
    """A status page this worker holds until `held_until`, claimed at `claimed_at`."""

    system_id: str
    url: str
    worker_id: str
    claimed_at: datetime
    held_until: datetime


# -- the due rows -----------------------------------------------------------------------------


def sync_status_pages(session: Session, now: datetime) -> None:
    """Make `status_pages` match the live systems' `status_page`: a new page is due at once,
    a changed URL is polled afresh, and a page no system names any more is dropped."""
    wanted = {s.id: page for s in queries.systems(session) if (page := system_spec(s).status_page)}
    have = {sid: url for sid, url in session.execute(select(StatusPage.system_id, StatusPage.url))}
    for system_id, url in wanted.items():
        if system_id not in have:
            # Two processes may add the same row at once; the second one's insert does
            # nothing rather than failing its whole transaction.
            session.execute(
                insert_for(session)(StatusPage)
                .values(system_id=system_id, url=url, due_at=now)
                .on_conflict_do_nothing(index_elements=["system_id"])
            )
        elif have[system_id] != url:
            session.execute(
                update(StatusPage)
                .where(StatusPage.system_id == system_id)
                .values(url=url, due_at=now, indicator=None, description=None, last_error=None)
                .execution_options(synchronize_session=False)
            )
    gone = sorted(set(have) - set(wanted))
    if gone:
        session.execute(
            delete(StatusPage)
            .where(StatusPage.system_id.in_(gone))
            .execution_options(synchronize_session=False)
        )


def due_pages(session: Session, now: datetime, lease_now: datetime, limit: int = 100) -> list[str]:
    """Systems whose page is due and not held by a live claim, longest waiting first."""
    return list(
        session.scalars(
            select(StatusPage.system_id)
            .where(leases.claimable(StatusPage, now, lease_now))
            .order_by(StatusPage.due_at, StatusPage.system_id)
            .limit(limit)
        )
    )


def claim_page(
    session: Session,
    system_id: str,
    now: datetime,
    lease_now: datetime,
    worker_id: str,
    lease: timedelta,
) -> PageClaim | None:
    """Hold the page for one poll, or None when it is not due or someone else holds it.

    due_at is moved only when the result is recorded: a process that dies mid-poll leaves a
    claim that runs out after `lease`, and the page is then polled by whoever looks next."""
    held_until = lease_now + lease
    claimed = leases.claim(
        session,
        StatusPage,
        StatusPage.system_id == system_id,
        now=now,
        lease_now=lease_now,
        worker=worker_id,
        until=held_until,
    )
    if not claimed:
        return None
    url = session.scalar(select(StatusPage.url).where(StatusPage.system_id == system_id))
    if url is None:
        return None
    return PageClaim(system_id, url, worker_id, now, held_until)


def _finish(
    session: Session, claim: PageClaim, now: datetime, every: timedelta, **values: Any
) -> bool:
    """Record a poll's result and release the page until its next period; False when the
    claim ran out and was taken over, in which case this result must not be applied (the
    other poller's is, and applying both would post twice)."""
    return leases.set_if(
        session,
        StatusPage,
        StatusPage.system_id == claim.system_id,
        StatusPage.claimed_by == claim.worker_id,
        StatusPage.claimed_until == claim.held_until,
        claimed_by=None,
        claimed_until=None,
        last_polled_at=now,
        # From the claim, so the period does not drift by the fetch time; never in the
        # past, so a slow or stalled poll cannot make the page due again at once.
        due_at=max(claim.claimed_at + every, now),
        **values,
    )


def record_error(
    session: Session, claim: PageClaim, error: str, now: datetime, every: timedelta
) -> bool:
    """A poll that failed (timeout, HTTP error, not a summary): kept on the page's row for
    `/integ status`, never posted, and tried again next period. What the page showed last
    (indicator, notices) stays as it was: a failed fetch says nothing about the vendor."""
    return _finish(session, claim, now, every, last_error=truncate(error, ERROR_LIMIT))


def apply_summary(
    session: Session, claim: PageClaim, summary: Summary, now: datetime, every: timedelta
) -> int:
    """Bring the notices and their messages up to date with the page; returns how many
    Slack writes were queued."""
    if not _finish(
        session,
        claim,
        now,
        every,
        indicator=summary.indicator,
        description=summary.description,
        last_error=None,
    ):
        return 0
    system = queries.system(session, claim.system_id)
    if system is None:
        return 0
    channels = channels_for(session, system)
    listed = {n.notice_id: n for n in summary.notices}
    known = {
        n.notice_id: n
        for n in session.scalars(
            select(VendorNotice).where(
                VendorNotice.system_id == system.id,
                or_(VendorNotice.notice_id.in_(sorted(listed)), VendorNotice.resolved_at.is_(None)),
            )
        )
    }
    queued = 0
    for page_notice in summary.notices:
        notice = known.get(page_notice.notice_id)
        if notice is None:
            notice = _new_notice(system.id, page_notice, now)
            session.add(notice)
            session.flush()
            changed = True
        else:
            changed = _refresh(notice, page_notice, now)
        _outage_of(session, notice, now)
        queued += _publish(session, system, notice, channels, changed=changed, now=now)
    for notice in known.values():
        if notice.notice_id in listed or notice.resolved_at is not None:
            continue
        notice.status = GONE_STATUS.get(notice.kind, "resolved")
        notice.resolved_at = now
        notice.detail = {**notice.detail, "gone": True}
        _outage_of(session, notice, now)
        queued += _publish(session, system, notice, channels, changed=True, now=now)
    if queued:  # a notice began, changed or ended: the Homes of what it touches show it
        touched = queries.integrations_touching(session, system.id)
        home.integrations_changed(session, [i.id for i in touched], now)
    return queued


def _outage_of(session: Session, notice: VendorNotice, now: datetime) -> None:
    """An open incident opens the system's outage (commands/outages); one over ends it."""
    if notice.resolved_at is None:
        on_incident(session, notice, now)
    else:
        on_incident_over(session, notice, now)


def _new_notice(system_id: str, page: PageNotice, now: datetime) -> VendorNotice:
    return VendorNotice(
        system_id=system_id,
        notice_id=page.notice_id,
        kind=page.kind,
        name=page.name,
        status=page.status,
        impact=page.impact,
        url=page.url,
        page_updated_at=page.updated_at,
        first_seen_at=now,
        resolved_at=(page.resolved_at or now) if page.over else None,
        detail=page.detail,
    )


def _refresh(notice: VendorNotice, page: PageNotice, now: datetime) -> bool:
    """Copy what the page shows now onto the notice; True when anything people see changed."""
    resolved_at = (notice.resolved_at or page.resolved_at or now) if page.over else None
    current = (
        notice.name,
        notice.status,
        notice.impact,
        notice.url,
        notice.page_updated_at,
        notice.detail,
        notice.resolved_at is None,
    )
    fresh = (
        page.name,
        page.status,
        page.impact,
        page.url,
        page.updated_at,
        page.detail,
        resolved_at is None,
    )
    if current == fresh:
        return False
    notice.name = page.name
    notice.status = page.status
    notice.impact = page.impact
    notice.url = page.url
    notice.page_updated_at = page.updated_at
    notice.detail = page.detail
    notice.resolved_at = resolved_at
    return True


def _publish(
    session: Session,
    system: System,
    notice: VendorNotice,
    audience: dict[str, list[Integration]],
    *,
    changed: bool,
    now: datetime,
) -> int:
    """Post the notice where it has no message yet (while it is open), and edit the
    messages it has when it changed. Returns how many writes were queued."""
    posts = {
        p.channel: p
        for p in session.scalars(
            select(VendorNoticePost).where(VendorNoticePost.notice_id == notice.id)
        )
    }
    outage = session.scalars(
        select(SystemOutage).where(SystemOutage.notice_id == notice.id).order_by(SystemOutage.id)
    ).first()
    # The alerts folded under the outage it opened, if it did.
    extra = outage_blocks(session, outage) if outage is not None else []
    queued = 0
    for channel in sorted(set(audience) | set(posts)):
        post = posts.get(channel)
        if post is None:
            # A notice already over when first seen (or when an integration joined the
            # channel) is history, not news.
            if notice.resolved_at is not None:
                continue
            reply = render_notice(system, notice, audience[channel], extra=extra)
            outbox_id = outbox.queue_message(
                session, channel=channel, now=now, text=reply.text, blocks=reply.blocks
            )
            session.add(VendorNoticePost(notice_id=notice.id, channel=channel, outbox_id=outbox_id))
            queued += 1
        elif changed and post.outbox_id is not None:
            # A channel that no longer has an integration touching the system still hears
            # how the notice it was shown ended.
            reply = render_notice(system, notice, audience.get(channel, []), extra=extra)
            edit = outbox.queue_edit(
                session, of=post.outbox_id, text=reply.text, blocks=reply.blocks, now=now
            )
            queued += edit is not None
    return queued


# -- for `/integ status` ---------------------------------------------------------------------


@dataclass(frozen=True)
class VendorState:
    """What is known of one system's status page: the last poll and its open notices."""

    system_id: str
    url: str
    indicator: str | None
    description: str | None
    last_polled_at: datetime | None
    last_error: str | None
    open_notices: list[VendorNotice]


def vendor_states(session: Session, system_ids: Sequence[str]) -> list[VendorState]:
    """The watched status pages among `system_ids` (say an integration's source and
    target), in that order, each with its open notices, oldest first."""
    pages = {
        p.system_id: p
        for p in session.scalars(select(StatusPage).where(StatusPage.system_id.in_(system_ids)))
    }
    if not pages:
        return []
    notices: dict[str, list[VendorNotice]] = {}
    for n in session.scalars(
        select(VendorNotice)
        .where(VendorNotice.system_id.in_(list(pages)), VendorNotice.resolved_at.is_(None))
        .order_by(VendorNotice.first_seen_at, VendorNotice.id)
    ):
        notices.setdefault(n.system_id, []).append(n)
    return [
        VendorState(
            system_id=p.system_id,
            url=p.url,
            indicator=p.indicator,
            description=p.description,
            last_polled_at=p.last_polled_at,
            last_error=p.last_error,
            open_notices=notices.get(p.system_id, []),
        )
        for system_id in dict.fromkeys(system_ids)
        if (p := pages.get(system_id)) is not None
    ]
