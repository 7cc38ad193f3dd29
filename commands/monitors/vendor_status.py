"""Vendor status pages: staying informed of vendor updates.

A system's `status_page` is a Statuspage-compatible site whose `/api/v2/summary.json` lists
the unresolved incidents and the upcoming or active maintenances. Each one becomes a
`vendor_notices` row and one message in the channel of every live integration touching the
system, posted through the outbox once and then edited in place as the page changes. The page
drops an incident from the summary once it is resolved, so disappearing is resolution.

The fetching is done in bot/ (`bot.workers.status_pages`); this module claims pages, reads what was
fetched and queues the messages, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from commands.catalog.views import system_spec
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, link, truncate
from commands.core.render.text import Mrkdwn, render
from commands.core.replies import Reply
from commands.outbox import queue as outbox
from storage import leases, queries
from storage.db import insert_for
from storage.models import (
    Integration,
    NoticeKind,
    StatusPage,
    System,
    VendorNotice,
    VendorNoticePost,
)
from storage.types import storable

INCIDENT = NoticeKind.INCIDENT.value
MAINTENANCE = NoticeKind.MAINTENANCE.value
# What a notice's status becomes when the page stops listing it.
GONE_STATUS = {INCIDENT: "resolved", MAINTENANCE: "completed"}
# Statuses the page itself uses for a notice that is over.
OVER_STATUSES = frozenset({"resolved", "postmortem", "completed"})

IMPACT_ICONS = {
    "critical": ":red_circle:",
    "major": ":large_orange_circle:",
    "minor": ":large_yellow_circle:",
}
# The latest update is the vendor's free text; the section holding it allows 3,000
# characters, and the escaping of `&`, `<`, `>` happens before the cut.
UPDATE_LIMIT = 2500
ERROR_LIMIT = 500
ID_LIMIT = 100  # vendor_notices.notice_id


class SummaryError(ValueError):
    """What was fetched is not a Statuspage summary."""


@dataclass(frozen=True)
class PageNotice:
    """One incident or maintenance as the page shows it now."""

    notice_id: str
    kind: str
    name: str
    status: str
    impact: str | None
    url: str | None
    updated_at: datetime | None
    resolved_at: datetime | None  # the page's own, when it says the notice is over
    over: bool
    detail: dict[str, Any]


@dataclass(frozen=True)
class Summary:
    indicator: str | None
    description: str | None
    notices: list[PageNotice]


@dataclass(frozen=True)
class PageClaim:
    """A status page this worker holds until `held_until`, claimed at `claimed_at`."""

    system_id: str
    url: str
    worker_id: str
    claimed_at: datetime
    held_until: datetime


# -- reading the page -----------------------------------------------------------------------


def summary_url(base: str) -> str:
    """The summary endpoint of a page given by its base URL (or already by that endpoint)."""
    base = base.strip()
    if base.rstrip("/").endswith(".json"):
        return base
    return base.rstrip("/") + "/api/v2/summary.json"


def parse_summary(data: Any) -> Summary:
    """Read a decoded summary.json. Raises SummaryError for anything else, so that an error
    page or an unrelated JSON document is never read as "no incidents" (which would mark
    every open notice resolved)."""
    if not isinstance(data, dict):
        raise SummaryError("not a JSON object")
    incidents = data.get("incidents")
    maintenances = data.get("scheduled_maintenances")
    if not isinstance(incidents, list) or not isinstance(maintenances, list):
        raise SummaryError("no incidents and scheduled_maintenances lists")
    status: dict[str, Any] = data["status"] if isinstance(data.get("status"), dict) else {}
    notices = [_notice(item, INCIDENT) for item in incidents]
    notices += [_notice(item, MAINTENANCE) for item in maintenances]
    return Summary(
        indicator=_text(status.get("indicator"), 20),
        description=_text(status.get("description"), 500),
        notices=notices,
    )


def _notice(item: Any, kind: str) -> PageNotice:
    if not isinstance(item, dict):
        raise SummaryError(f"an entry of {kind}s is not an object")
    notice_id = _text(item.get("id"), ID_LIMIT)
    if not notice_id:
        raise SummaryError(f"an entry of {kind}s has no id")
    status = _text(item.get("status"), 30) or "unknown"
    latest = _latest_update(item.get("incident_updates"))
    components = [
        str(c["name"])
        for c in item.get("components") or []
        if isinstance(c, dict) and isinstance(c.get("name"), str)
    ]
    url = _text(item.get("shortlink"), 2000)
    detail: dict[str, Any] = {
        "latest_update": storable(latest["body"]) if latest else None,
        "latest_update_at": _iso(_time(latest.get("created_at"))) if latest else None,
        "components": components[:20],
        "scheduled_for": _iso(_time(item.get("scheduled_for"))),
        "scheduled_until": _iso(_time(item.get("scheduled_until"))),
    }
    return PageNotice(
        notice_id=notice_id,
        kind=kind,
        name=_text(item.get("name"), 1000) or "(no name)",
        status=status,
        impact=_text(item.get("impact"), 20),
        # Only a web link is linked: the page is outside text, and a `javascript:` or
        # `slack://` target has no business in a message.
        url=url if url and url.startswith(("https://", "http://")) else None,
        updated_at=_time(item.get("updated_at")),
        resolved_at=_time(item.get("resolved_at")),
        over=status in OVER_STATUSES,
        detail=detail,
    )


def _latest_update(updates: Any) -> dict[str, Any] | None:
    """The newest update. The API lists them newest first, which also settles equal times."""
    found = [u for u in updates or [] if isinstance(u, dict) and isinstance(u.get("body"), str)]
    if not found:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)
    return max(found, key=lambda u: _time(u.get("created_at")) or epoch)


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = storable(str(value)).strip()
    return text[:limit] or None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


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


def due_pages(session: Session, now: datetime, limit: int = 100) -> list[str]:
    """Systems whose page is due and not held by a live claim, longest waiting first."""
    return list(
        session.scalars(
            select(StatusPage.system_id)
            .where(leases.claimable(StatusPage, now))
            .order_by(StatusPage.due_at, StatusPage.system_id)
            .limit(limit)
        )
    )


def claim_page(
    session: Session, system_id: str, now: datetime, worker_id: str, lease: timedelta
) -> PageClaim | None:
    """Hold the page for one poll, or None when it is not due or someone else holds it.

    due_at is moved only when the result is recorded: a process that dies mid-poll leaves a
    claim that runs out after `lease`, and the page is then polled by whoever looks next."""
    held_until = now + lease
    claimed = leases.claim(
        session,
        StatusPage,
        StatusPage.system_id == system_id,
        now=now,
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
    audience = _audience(queries.integrations_touching(session, system.id))
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
        queued += _publish(session, system, notice, audience, changed=changed, now=now)
    for notice in known.values():
        if notice.notice_id in listed or notice.resolved_at is not None:
            continue
        notice.status = GONE_STATUS.get(notice.kind, "resolved")
        notice.resolved_at = now
        notice.detail = {**notice.detail, "gone": True}
        queued += _publish(session, system, notice, audience, changed=True, now=now)
    return queued


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


def _audience(integrations: Sequence[Integration]) -> dict[str, list[Integration]]:
    """The integrations touching a system, by the channel their messages go to."""
    by_channel: dict[str, list[Integration]] = {}
    for integ in integrations:
        by_channel.setdefault(integ.channel, []).append(integ)
    return by_channel


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
    queued = 0
    for channel in sorted(set(audience) | set(posts)):
        post = posts.get(channel)
        if post is None:
            # A notice already over when first seen (or when an integration joined the
            # channel) is history, not news.
            if notice.resolved_at is not None:
                continue
            reply = render_notice(system, notice, audience[channel])
            outbox_id = outbox.queue_message(
                session, channel=channel, now=now, text=reply.text, blocks=reply.blocks
            )
            session.add(VendorNoticePost(notice_id=notice.id, channel=channel, outbox_id=outbox_id))
            queued += 1
        elif changed and post.outbox_id is not None:
            # A channel that no longer has an integration touching the system still hears
            # how the notice it was shown ended.
            reply = render_notice(system, notice, audience.get(channel, []))
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


# -- the message ----------------------------------------------------------------------------


def render_notice(
    system: System, notice: VendorNotice, integrations: Sequence[Integration]
) -> Reply:
    """A notice's message in one channel, naming the integrations there that it touches."""
    detail = notice.detail or {}
    over = notice.resolved_at is not None
    if over:
        icon = ":white_check_mark:"
    elif notice.kind == MAINTENANCE:
        icon = ":wrench:"
    else:
        icon = IMPACT_ICONS.get(notice.impact or "", ":information_source:")
    vendor = system.vendor or system.name
    title = render(
        "vendor_notice.j2",
        icon=icon,
        vendor=vendor,
        system_name=system.name,
        notice=notice,
        status_label=notice.status.replace("_", " ").capitalize(),
        # A maintenance's impact is "maintenance", and "none" says nothing either.
        impact=notice.impact if notice.impact not in (None, "none", "maintenance") else None,
        resolved_at=notice.resolved_at,
        on_page=not detail.get("gone"),
        window=_window(detail),
        integrations=integrations,
    )
    blocks: list[bk.Block] = [bk.section(title)]
    update_text = detail.get("latest_update")
    if isinstance(update_text, str) and update_text.strip():
        when = _time(detail.get("latest_update_at"))
        heading = f"_Latest update, {when:%Y-%m-%d %H:%M UTC}_" if when else "_Latest update_"
        body = truncate(escape(update_text.strip()), UPDATE_LIMIT)
        blocks.append(bk.section(f"{heading}\n{body}"))
    facts = []
    components = detail.get("components") or []
    if components:
        facts.append("Affects: " + escape(", ".join(str(c) for c in components)))
    if notice.url:
        facts.append(link(notice.url, "Details on the status page"))
    facts.append("Information from the vendor's status page; no action is asked of you.")
    blocks.append(bk.context(*facts))
    state = GONE_STATUS[notice.kind] if over and notice.kind in GONE_STATUS else notice.status
    fallback = f"{vendor} {notice.kind}: {notice.name} ({state.replace('_', ' ')})"
    return Reply(
        text=bk.truncate_text(escape(fallback)),
        blocks=bk.cap_blocks(blocks, "…"),
        ephemeral=False,
    )


def _window(detail: dict[str, Any]) -> Mrkdwn | None:
    start = _time(detail.get("scheduled_for"))
    end = _time(detail.get("scheduled_until"))
    if start is None:
        return None
    text = f"{start:%Y-%m-%d %H:%M}"
    if end is not None:
        text += f" to {end:%H:%M}" if end.date() == start.date() else f" to {end:%Y-%m-%d %H:%M}"
    return Mrkdwn(text + " UTC")
