"""`/integ impact <system|integration>`: what else a change would touch.

For a system, every integration into and out of it; for an integration, every other one that
shares its source or its target. Each with what a person planning the change needs: how it
moves data, when it next runs, who owns it, and where the systems' test instances are, so
the change can be tried there first.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from cronsim import CronSimError
from sqlalchemy.orm import Session

from commands.catalog.lookups import not_found, resolve_integration, schedule_text
from commands.catalog.views import integration_spec, system_spec
from commands.core.matching import Candidate, find
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, link, mention
from commands.core.replies import Invocation, Reply
from commands.monitors.heartbeats import Schedule
from storage import queries
from storage.models import Heartbeat, Integration, System

VERB = "impact"
# Integrations named per system in `impact_lines`: a confirmation naming forty owners would
# bury what it confirms; the rest are one `/integ impact` away.
LINE_LIMIT = 10


# -- what shares a system -------------------------------------------------------------------


def affected_by(session: Session, integration_id: str) -> list[tuple[Integration, str]]:
    """The other live integrations that share a system with `integration_id`, each with the
    id of the system it shares: its source's first, then its target's, by id within each.

    One sharing both systems appears once for each. Empty for an unknown or removed id.
    """
    integ = queries.integration(session, integration_id)
    if integ is None:
        return []
    return [
        (other, system_id)
        for system_id in (system.id for system in integ.systems)
        for other in queries.integrations_touching(session, system_id)
        if other.id != integ.id
    ]


def impact_lines(session: Session, integration_id: str) -> list[str]:
    """One mrkdwn line per system of the integration that others share, naming them and
    their owners: "Also touches banner: `grades` (owner <@U0LMSADM1>), …". Empty when
    nothing else shares its systems.

    The owners are mentions: a change posted for the channel with these lines is meant to
    reach the people whose integrations it may break.
    """
    by_system: dict[str, list[Integration]] = {}
    for other, system_id in affected_by(session, integration_id):
        by_system.setdefault(system_id, []).append(other)
    lines = []
    for system_id, others in by_system.items():
        named = ", ".join(
            f"`{escape(o.id)}` (owner {mention(o.owner)})" for o in others[:LINE_LIMIT]
        )
        if len(others) > LINE_LIMIT:
            named += f" and {len(others) - LINE_LIMIT} more (`/integ impact {escape(system_id)}`)"
        lines.append(f"Also touches {escape(system_id)}: {named}")
    return lines


# -- when an integration next runs ----------------------------------------------------------


def next_run(session: Session, integ: Integration, now: datetime) -> str | None:
    """When the integration is next expected to run, as its people would say it, or None
    for a real-time integration that nothing watches on a schedule.

    A heartbeat's row knows best (the run it awaits, which a late run may have put in the
    past); otherwise the catalog's cron schedule, read in the integration's time zone."""
    beat = Schedule.of(integration_spec(integ))
    row = session.get(Heartbeat, integ.id) if beat is not None else None
    if beat is not None and row is not None and row.expected_at is not None:
        what = "next heartbeat expected" if integ.schedule == "realtime" else "next run expected"
        shown = f"{what} {beat.local(row.expected_at)}"
        if row.expected_at <= now:
            when = beat.local(row.due_at) if row.due_at is not None else "its grace ends"
            shown += f" (not reported yet; an alert if nothing by {when})"
        return shown
    if integ.schedule == "realtime":
        return None
    # The same cron arithmetic as heartbeat deadlines, so both agree about daylight saving.
    cron = Schedule(cron=integ.schedule, every=None, grace=timedelta(0), timezone=integ.timezone)
    try:
        return f"next run {cron.local(cron.next_after(now))}"
    # The catalog checks schedules when it loads; a row synced before a check existed, or a
    # date no month has ("0 0 30 2 *"), must still leave the rest of the answer standing.
    except (CronSimError, ValueError, KeyError, StopIteration):
        return None


# -- the reply ------------------------------------------------------------------------------


def _people(integ: Integration) -> str:
    backups = integration_spec(integ).backups
    line = f"owner {mention(integ.owner)}"
    return line + (", backups " + ", ".join(mention(b) for b in backups) if backups else "")


def _facts(session: Session, integ: Integration, now: datetime) -> str:
    parts = [escape(integ.mechanism), schedule_text(integ)]
    when = next_run(session, integ, now)
    if when is not None:
        parts.append(escape(when))
    return " · ".join(parts) + "\n      " + _people(integ)


def _entry(session: Session, integ: Integration, system: System | None, now: datetime) -> str:
    """One integration, its direction said relative to `system` when there is one."""
    head = f"• `{escape(integ.id)}` *{escape(integ.name)}*"
    if system is None:
        head += f": {escape(integ.source.name)} → {escape(integ.target.name)}"
    elif integ.source_id == integ.target_id:
        head += ", within it"
    elif integ.target_id == system.id:
        head += f", from {escape(integ.source.name)}"
    else:
        head += f", to {escape(integ.target.name)}"
    return f"{head}\n      {_facts(session, integ, now)}"


def _test_instance(system: System) -> str:
    test = system_spec(system).test_instance
    name = f"*{escape(system.name)}* (`{escape(system.id)}`)"
    if not test:
        return f"• {name}: none recorded"
    shown = link(test, test) if test.startswith(("http://", "https://")) else escape(test)
    return f"• {name}: {shown}"


def _direction_sections(
    session: Session, system: System, integrations: list[Integration], now: datetime
) -> list[bk.Block]:
    into = [i for i in integrations if i.target_id == system.id]
    out = [i for i in integrations if i.source_id == system.id and i.target_id != system.id]
    blocks: list[bk.Block] = []
    for title, group in ((f"Into {system.name}", into), (f"Out of {system.name}", out)):
        if group:
            blocks.append(bk.section(f"*{escape(title)}* ({len(group)})"))
            blocks.extend(bk.sections_for_lines([_entry(session, i, system, now) for i in group]))
    return blocks


def _test_sections(systems: list[System]) -> list[bk.Block]:
    unique = list({s.id: s for s in systems}.values())
    lines = ["*Test instances*", *(_test_instance(s) for s in unique)]
    return bk.sections_for_lines(lines)


def system_impact(session: Session, system: System, now: datetime) -> Reply:
    touching = list(queries.integrations_touching(session, system.id))
    name = f"*{escape(system.name)}* (`{escape(system.id)}`)"
    if not touching:
        text = f"No integration touches {name}: a change to it affects nothing in the catalog."
        return Reply(text=text, blocks=[bk.section(text), *_test_sections([system])])
    into = sum(1 for i in touching if i.target_id == system.id)
    count = len(touching)
    summary = (
        f"A change to {name} touches {count} integration{'s' if count != 1 else ''}: "
        f"{into} into it, {count - into} out of it."
    )
    others = [i.source if i.target_id == system.id else i.target for i in touching]
    blocks = [
        bk.header(f"Impact: {system.name}"),
        bk.section(summary),
        *_direction_sections(session, system, touching, now),
        *_test_sections([system, *others]),
    ]
    text = f"Impact of a change to {system.name}: {count} integrations"
    return Reply(
        text=bk.truncate_text(escape(text)), blocks=bk.cap_blocks(blocks, "More not shown.")
    )


def integration_impact(session: Session, integ: Integration, now: datetime) -> Reply:
    blocks: list[bk.Block] = [
        bk.header(f"Impact: {integ.name}"),
        bk.section(f"A change to\n{_entry(session, integ, None, now)}"),
    ]
    shared = 0
    systems = integ.systems
    for system in systems:
        role = "source" if system.id == integ.source_id else "target"
        others = [i for i in queries.integrations_touching(session, system.id) if i.id != integ.id]
        shared += len(others)
        title = f"*Also touching {escape(system.name)}* (`{escape(system.id)}`, its {role})"
        if not others:
            blocks.append(bk.section(f"{title}: nothing else."))
            continue
        blocks.append(bk.section(f"{title}: {len(others)}"))
        blocks.extend(bk.sections_for_lines([_entry(session, i, system, now) for i in others]))
    blocks.extend(_test_sections(systems))
    text = f"Impact of a change to {integ.name}: {shared} other integrations share its systems"
    return Reply(
        text=bk.truncate_text(escape(text)), blocks=bk.cap_blocks(blocks, "More not shown.")
    )


def impact_reply(session: Session, inv: Invocation, name: str) -> Reply:
    """`/integ impact <system|integration>`. A name that is both a system and an integration
    means the system: what a change to a system touches is the question the verb is for."""
    if not name:  # in an integration's own channel, that integration; else the usage
        resolved = resolve_integration(session, inv, name, VERB)
        if isinstance(resolved, Reply):
            return resolved
        return integration_impact(session, resolved, inv.now)
    system = queries.system(session, name.lower())
    if system is not None:
        return system_impact(session, system, inv.now)
    integ = queries.integration(session, name.lower())
    if integ is not None:
        return integration_impact(session, integ, inv.now)
    if re.fullmatch(r"[CG][A-Z0-9]{2,}", name):  # a channel: the integration posting there
        resolved = resolve_integration(session, inv, name, VERB)
        if isinstance(resolved, Reply):
            return resolved
        return integration_impact(session, resolved, inv.now)
    candidates = [Candidate(s.id, s.name) for s in queries.systems(session)]
    candidates += [Candidate(i.id, i.name) for i in queries.integrations(session)]
    match, suggestions = find(name, candidates)
    if match is not None:
        system = queries.system(session, match.id)
        if system is not None:
            return system_impact(session, system, inv.now)
        integ = queries.integration(session, match.id)
        if integ is not None:
            return integration_impact(session, integ, inv.now)
    return not_found("system or integration", name, VERB, suggestions)
