"""Read-only verbs: help, list, status, owners, runbook, info, support."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from commands.catalog.spec import Support
from commands.catalog.state import HEALTH_EMOJI, health, review_due, state_of
from commands.catalog.views import integration_spec, system_spec
from commands.core.matching import Candidate, find
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, group_mention, link, mention, strip_broadcasts
from commands.core.render.text import render
from commands.core.replies import Invocation, Reply
from commands.hours.working import held_until
from commands.monitors.status_lines import monitor_lines
from commands.permissions.check import is_responder
from storage import queries
from storage.models import Integration, System

VERBS: list[tuple[str, str]] = [
    ("help", "this help"),
    ("list [system]", "every integration and its state"),
    ("status [integration]", "state, open alert, schedule and owner (all when none given)"),
    ("owners <integration>", "owner, backups and vendor support"),
    ("runbook <integration>", "the runbook link or text"),
    ("info <integration>", "everything the catalog knows"),
    ("support <integration|system>", "who to call: owners, vendor support, test instances"),
    ("alerts [integration]", "open alerts"),
    ("ack <alert id>", "acknowledge an alert"),
    ("resolve <alert id> <cause>", "resolve an alert with its root cause"),
    ("silence <integration> <duration> [reason]", "hold alerts back for a while"),
    ("unsilence <integration>", "end its silence now"),
    ("maintenance [<integration|system> <duration> [reason] | end <…>]", "planned work"),
    ("log <integration> [category] <text>", "log a change"),
    ("changes [integration] [Nd]", "changes logged"),
    ("reviews", "reviews due and overdue"),
    ("review <integration>", "review an integration now"),
    ("impact <system|integration>", "what else a change would touch"),
    ("diagram [system]", "a picture of the systems and integrations"),
    ("heartbeat <integration>", "last ping, next deadline, ping URL"),
    ("audit <integration>", "who resolved, silenced, reassigned, and what was refused"),
    ("report [integration|system] [30d|90d|month] [chart]", "MTTA, MTTR, time failing, causes"),
]

LIST_LIMIT = 200


def help_reply(session: Session, inv: Invocation) -> Reply:
    text = render("help.j2", verbs=VERBS, count=len(queries.integrations(session)))
    return Reply(text=text, blocks=bk.sections_for_lines(text.splitlines()))


def resolve_integration(
    session: Session, inv: Invocation, name: str, verb: str
) -> Integration | Reply:
    """The integration `name` means, or a reply saying what was meant instead."""
    if not name and inv.channel_id:
        here = queries.integrations_in_channel(session, inv.channel_id)
        if len(here) == 1:
            return here[0]
    if not name:
        return usage(verb)
    found = queries.integration(session, name.lower())
    if found is not None:
        return found
    if re.fullmatch(r"[CG][A-Z0-9]{2,}", name):
        # `/integ status #integ-crm`: the channel stands for the integration posting there.
        here = queries.integrations_in_channel(session, name)
        if len(here) == 1:
            return here[0]
        if here:  # several post there: each is what might have been meant
            return not_found("integration", name, verb, [i.id for i in here])
    candidates = [Candidate(i.id, i.name) for i in queries.integrations(session)]
    match, suggestions = find(name, candidates)
    if match is not None:
        found = queries.integration(session, match.id)
        if found is not None:
            return found
    return not_found("integration", name, verb, suggestions)


def not_found(kind: str, name: str, verb: str, suggestions: list[str]) -> Reply:
    if suggestions:
        tries = ", ".join(f"`/integ {verb} {escape(s)}`" for s in suggestions)
        text = f"No {kind} called `{escape(name)}`. Did you mean {tries}?"
    else:
        text = f"No {kind} called `{escape(name)}`. `/integ list` shows every integration."
    return Reply(text=text, blocks=[bk.section(text)])


def usage(verb: str) -> Reply:
    for usage_text, what in VERBS:
        if usage_text.split()[0] == verb:
            text = f"Usage: `/integ {usage_text}`: {what}."
            return Reply(text=text, blocks=[bk.section(text)])
    return Reply(text="See `/integ help`.", blocks=[bk.section("See `/integ help`.")])


def _arrow(integ: Integration) -> str:
    return f"{escape(integ.source.name)} → {escape(integ.target.name)}"


def schedule_text(integ: Integration) -> str:
    """Its schedule in mrkdwn: real-time, or the cron expression and its timezone."""
    if integ.schedule == "realtime":
        return "real-time"
    return f"`{escape(integ.schedule)}` ({escape(integ.timezone)})"


def _owners_line(integ: Integration) -> str:
    spec = integration_spec(integ)
    line = f"*Owner:* {mention(integ.owner)}"
    if spec.backups:
        line += "  *Backups:* " + ", ".join(mention(b) for b in spec.backups)
    if spec.team:
        line += f"  *Team:* {group_mention(spec.team)}"
    return line


def status_reply(session: Session, inv: Invocation, name: str) -> Reply:
    if not name:
        # In an integration's own channel, a bare `status` means that integration.
        here = queries.integrations_in_channel(session, inv.channel_id) if inv.channel_id else []
        if len(here) != 1:
            return overview_reply(session, inv, channel=inv.channel_id if here else None)
    resolved = resolve_integration(session, inv, name, "status")
    if isinstance(resolved, Reply):
        return resolved
    integ = resolved
    state = state_of(session, integ, inv.now)
    headline = render("status_one.j2", integ=integ, state=state, now=inv.now)
    fields = [
        f"*Flow:*\n{_arrow(integ)}",
        f"*Mechanism:*\n{escape(integ.mechanism)}",
        f"*Schedule:*\n{schedule_text(integ)}",
        f"*Owner:*\n{mention(integ.owner)}",
        f"*Next review:*\n{state.review_due.isoformat()}"
        + (" (overdue)" if state.review_overdue(inv.now) else ""),
        f"*Channel:*\n<#{integ.channel}>",
    ]
    blocks = [bk.section(headline), bk.fields_section(fields)]
    monitors = monitor_lines(session, integ, inv.now, state.monitors, state.watched_pages)
    held = held_until(session, integ.id, "warning", inv.now)
    if held is not None:
        monitors.append(
            f":zzz: Outside working hours: alerts below critical are shown from "
            f"{held:%a %Y-%m-%d %H:%M} UTC; critical ones at once."
        )
    if monitors:
        blocks.append(bk.section("\n".join(monitors)))
    blocks.append(
        bk.context(
            f"`/integ info {integ.id}` for everything, `/integ runbook {integ.id}` for the runbook"
        )
    )
    text = f"{integ.name} ({integ.id}) is {state.health.value}"
    if state.review_overdue(inv.now):
        text += ", review overdue"
    return Reply(text=text, blocks=blocks)


def overview_reply(session: Session, inv: Invocation, channel: str | None = None) -> Reply:
    rows = queries.integrations(session)
    if channel:
        rows = [i for i in rows if i.channel == channel]
    counts = queries.open_alert_counts(session)
    silenced = queries.silenced_integrations(session, inv.now)
    reviews = queries.last_reviews(session)
    lines: list[str] = []
    tally = {"ok": 0, "failing": 0, "silenced": 0, "overdue": 0}
    for integ in rows:
        state = health(counts.get(integ.id, 0), integ.id in silenced)
        overdue = review_due(integ, reviews.get(integ.id)) < inv.now.date()
        tally[state.value] += 1
        tally["overdue"] += overdue
        if state.value != "ok" or overdue:
            note = f"{counts.get(integ.id, 0)} open alert(s)" if counts.get(integ.id) else ""
            if overdue:
                note = f"{note}, review overdue" if note else "review overdue"
            lines.append(f"{HEALTH_EMOJI[state]} `{escape(integ.id)}` {escape(integ.name)}: {note}")
    summary = (
        f"*{len(rows)} integrations:* {tally['ok']} ok, {tally['failing']} failing, "
        f"{tally['silenced']} silenced, {tally['overdue']} with a review overdue."
    )
    if not rows:
        summary = "The catalog has no integrations yet."
    elif not lines:
        lines = [":large_green_circle: Everything is ok."]
    blocks = [bk.section(summary), *bk.sections_for_lines(lines[:LIST_LIMIT])]
    if len(lines) > LIST_LIMIT:
        blocks.append(bk.context(f"{len(lines) - LIST_LIMIT} more not shown."))
    blocks.append(bk.context("`/integ status <integration>` for one of them."))
    return Reply(text=summary, blocks=bk.cap_blocks(blocks, "More not shown."))


def list_reply(session: Session, inv: Invocation, filter_text: str) -> Reply:
    rows = list(queries.integrations(session))
    if filter_text:
        wanted = filter_text.lower()
        rows = [
            i
            for i in rows
            if wanted in (i.source_id, i.target_id) or wanted in i.id or wanted in i.name.lower()
        ]
        if not rows:
            return Reply(
                text=f"No integration matches `{escape(filter_text)}`.",
                blocks=[bk.section(f"No integration matches `{escape(filter_text)}`.")],
            )
    counts = queries.open_alert_counts(session)
    silenced = queries.silenced_integrations(session, inv.now)
    lines = [
        f"{HEALTH_EMOJI[health(counts.get(i.id, 0), i.id in silenced)]} `{escape(i.id)}` "
        f"{escape(i.name)}: {_arrow(i)}, {escape(i.mechanism)}"
        for i in rows
    ]
    title = f"*{len(rows)} integration{'s' if len(rows) != 1 else ''}*"
    shown = lines[:LIST_LIMIT]
    blocks = [bk.section(title), *bk.sections_for_lines(shown)]
    if len(lines) > len(shown):
        blocks.append(
            bk.context(
                f"{len(lines) - len(shown)} more; narrow with `/integ list <system or text>`."
            )
        )
    return Reply(text=f"{len(rows)} integrations", blocks=bk.cap_blocks(blocks, "More not shown."))


def owners_reply(session: Session, inv: Invocation, name: str) -> Reply:
    resolved = resolve_integration(session, inv, name, "owners")
    if isinstance(resolved, Reply):
        return resolved
    integ = resolved
    lines = [f"*{escape(integ.name)}* (`{escape(integ.id)}`)", _owners_line(integ)]
    for system in integ.systems:
        lines.append(_support_line(system))
    text = "\n".join(lines)
    return Reply(text=f"Owners of {integ.name}", blocks=[bk.section(text)])


def runbook_reply(session: Session, inv: Invocation, name: str) -> Reply:
    resolved = resolve_integration(session, inv, name, "runbook")
    if isinstance(resolved, Reply):
        return resolved
    integ = resolved
    runbook = (integration_spec(integ).runbook or "").strip()
    is_url = runbook.startswith(("http://", "https://")) and " " not in runbook
    text = render(
        "runbook.j2", integ=integ, url=runbook if is_url else "", text=runbook if not is_url else ""
    )
    return Reply(text=f"Runbook for {integ.name}", blocks=bk.sections_for_lines(text.split("\n")))


def info_reply(session: Session, inv: Invocation, name: str) -> Reply:
    resolved = resolve_integration(session, inv, name, "info")
    if isinstance(resolved, Reply):
        return resolved
    integ = resolved
    spec = integration_spec(integ)
    state = state_of(session, integ, inv.now)
    blocks: list[bk.Block] = [bk.header(f"{integ.name} ({integ.id})")]
    blocks.append(
        bk.fields_section(
            [
                f"*State:*\n{state.emoji} {state.health.value}",
                f"*Flow:*\n{_arrow(integ)}",
                f"*Mechanism:*\n{escape(integ.mechanism)}",
                f"*Schedule:*\n{schedule_text(integ)}",
                f"*Owner:*\n{mention(integ.owner)}",
                "*Backups:*\n" + (", ".join(mention(b) for b in spec.backups) or "none"),
                f"*Channel:*\n<#{integ.channel}>",
                f"*Escalate after:*\n{escape(spec.escalate_after or 'not set')}",
                f"*Review:*\n{escape(spec.review.every)}, next "
                f"{state.review_due.isoformat()}"
                + (" (overdue)" if state.review_overdue(inv.now) else ""),
                "*Last reviewed:*\n"
                + (state.last_reviewed.strftime("%Y-%m-%d") if state.last_reviewed else "never"),
            ]
        )
    )
    monitors: list[str] = []
    heartbeat = spec.heartbeat
    if heartbeat is not None:
        when = heartbeat.cron or f"every {heartbeat.every}"
        monitors.append(
            f"*Heartbeat:* `{escape(when)}`, grace {escape(heartbeat.grace)} "
            f"(`/integ heartbeat {integ.id}` for the ping URL)"
        )
    if inv.mail_domain is not None:
        monitors.append(_mail_line(session, inv, integ, inv.mail_domain))
    probe = spec.probe
    if probe is not None:
        monitors.append(
            f"*Probe:* {link(probe.url, probe.url)} every "
            f"{escape(probe.every)}, timeout {escape(probe.timeout)}"
        )
    if monitors:
        blocks.append(bk.section("\n".join(monitors)))
    fields = spec.fields
    if fields:
        lines = [f"`{escape(f.source)}` → `{escape(f.target)}`" for f in fields]
        blocks.append(bk.section(f"*Fields ({len(fields)}):*"))
        blocks.extend(bk.sections_for_lines(lines))
    for system in integ.systems:
        blocks.append(bk.section(_system_text(system)))
    runbook = (spec.runbook or "").strip()
    if runbook:
        shown = (
            link(runbook, runbook)
            if runbook.startswith(("http://", "https://")) and " " not in runbook
            else strip_broadcasts(runbook)
        )
        blocks.append(bk.section(f"*Runbook:*\n{shown}"))
    return Reply(text=f"{integ.name} ({integ.id})", blocks=bk.cap_blocks(blocks, "More not shown."))


def _mail_line(session: Session, inv: Invocation, integ: Integration, domain: str) -> str:
    """Where its jobs may send mail: like a ping URL, an address anyone could write to, so
    shown only to its responders."""
    if not is_responder(session, inv.actor, integ):
        return "*E-mail:* its address is shown to its responders only"
    address = f"{integ.id}@{domain}"
    rules = integration_spec(integ).email
    senders = ", ".join(f"`{escape(s)}`" for s in rules.senders) if rules else ""
    return (
        f"*E-mail:* `{escape(address)}` (`+start`, `+fail` before the @ for a start or a "
        "failure)" + (f"; only from {senders}" if senders else "; from any sender")
    )


def support_reply(session: Session, inv: Invocation, name: str) -> Reply:
    if not name:
        resolved = resolve_integration(session, inv, name, "support")
        if isinstance(resolved, Reply):
            return resolved
        name = resolved.id
    integ = queries.integration(session, name.lower())
    system = queries.system(session, name.lower()) if integ is None else None
    if integ is None and system is None and re.fullmatch(r"[CG][A-Z0-9]{2,}", name):
        # A channel link, as for the other verbs: the integration posting there.
        here = queries.integrations_in_channel(session, name)
        if len(here) == 1:
            integ = here[0]
        elif here:
            return not_found("integration", name, "support", [i.id for i in here])
    if integ is None and system is None:
        candidates = [Candidate(i.id, i.name) for i in queries.integrations(session)]
        candidates += [Candidate(s.id, s.name) for s in queries.systems(session)]
        match, suggestions = find(name, candidates)
        if match is None:
            return not_found("integration or system", name, "support", suggestions)
        integ = queries.integration(session, match.id)
        system = queries.system(session, match.id) if integ is None else None
    if integ is not None:
        lines = [f"*Support for {escape(integ.name)}* (`{escape(integ.id)}`)", _owners_line(integ)]
        blocks = [bk.section("\n".join(lines))]
        blocks += [bk.section(_system_text(s)) for s in integ.systems]
        return Reply(text=f"Support for {integ.name}", blocks=blocks)
    assert system is not None
    touching = queries.integrations_touching(session, system.id)
    lines = [f"`{escape(i.id)}` {escape(i.name)}: {_owners_line(i)}" for i in touching] or [
        "No integration touches this system yet."
    ]
    blocks = [
        bk.section(_system_text(system)),
        bk.section("*Integrations and their owners:*"),
        *bk.sections_for_lines(lines),
    ]
    return Reply(text=f"Support for {system.name}", blocks=bk.cap_blocks(blocks, "More not shown."))


def _support_line(system: System) -> str:
    parts = _support_parts(system_spec(system).support)
    vendor = f" ({escape(system.vendor)})" if system.vendor else ""
    return f"*{escape(system.name)}*{vendor} support: " + (", ".join(parts) or "none recorded")


def _support_parts(support: Support | None) -> list[str]:
    parts: list[str] = []
    if support is None:
        return parts
    if support.url:
        parts.append(link(support.url, support.url))
    if support.email:
        parts.append(escape(support.email))
    if support.phone:
        parts.append(escape(support.phone))
    if support.contract:
        parts.append(f"contract {escape(support.contract)}")
    return parts


def _system_text(system: System) -> str:
    spec = system_spec(system)
    vendor = f" ({escape(system.vendor)})" if system.vendor else ""
    lines = [f"*{escape(system.name)}*{vendor}, `{escape(system.id)}`"]
    parts = _support_parts(spec.support)
    lines.append("Vendor support: " + (", ".join(parts) if parts else "none recorded"))
    test = spec.test_instance
    lines.append(
        "Test instance: "
        + (
            link(test, test)
            if test and test.startswith("http")
            else escape(test or "none recorded")
        )
    )
    if spec.status_page:
        lines.append("Status page: " + link(spec.status_page, spec.status_page))
    return "\n".join(lines)
