"""Every action a person can take, by each kind of person, through requests signed as Slack
signs them: what they are told, and that a refusal changes nothing (the alert, the
silences, the review, the Slack messages) and is recorded in the audit trail."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot import wire_ids
from commands.reviews.messages import CHECKLIST_KEYS, review_modal
from storage.db import transaction
from storage.models import (
    Alert,
    AuditEntry,
    Change,
    Integration,
    Review,
    ReviewNudge,
    Silence,
)
from tests.helpers.fake_slack import FakeSlack
from tests.helpers.people import ROLES, click, command, deliver, fire, submit
from tests.helpers.runtime import (
    RunningServer,
)

EVERYONE = frozenset(ROLES)
MEMBERS = EVERYONE - {"guest", "external"}
RESPONDERS = frozenset({"owner", "backup", "team member", "admin"})
OWNER_OR_ADMIN = frozenset({"owner", "admin"})


# -- what is stored ---------------------------------------------------------------------------


def alert_state(server: RunningServer, alert_id: int) -> tuple[Any, ...]:
    with server.runtime.deps.sessions() as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return (alert.status, alert.acknowledged_by, alert.resolved_by)


def active_silence(server: RunningServer) -> tuple[Any, ...] | None:
    now = server.runtime.deps.clock()
    with server.runtime.deps.sessions() as session:
        found = session.scalars(
            select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now)
        ).all()
    return tuple((s.id, s.ends_at, s.created_by) for s in found) or None


def nudge_state(server: RunningServer) -> tuple[Any, ...]:
    with server.runtime.deps.sessions() as session:
        nudge = session.scalars(
            select(ReviewNudge).where(ReviewNudge.integration_id == "crm")
        ).one()
        reviews = len(
            session.scalars(select(Review.id).where(Review.integration_id == "crm")).all()
        )
        return (nudge.status, nudge.snoozes, nudge.assigned_to, reviews)


def count(server: RunningServer, model: Any) -> int:
    with server.runtime.deps.sessions() as session:
        return len(session.scalars(select(model.id)).all())


def audit_of(server: RunningServer, user: str) -> list[tuple[str, bool]]:
    with server.runtime.deps.sessions() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.actor == user).order_by(AuditEntry.id)
        ).all()
        return [(row.action, row.allowed) for row in rows]


def forms_opened(fake: FakeSlack) -> int:
    return len(fake.calls_to("views.open"))


def slack_writes(fake: FakeSlack) -> int:
    methods = ("chat.update", "chat.postMessage", "views.open")
    return sum(len(fake.calls_to(m)) for m in methods)


# -- the actions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One action: `prepare` readies what it acts on and returns it; `act` does it as a
    user and returns what they were told; `state` is what a refusal must leave alone."""

    name: str
    allowed: frozenset[str]
    prepare: Callable[[RunningServer, str], Any]
    act: Callable[[RunningServer, FakeSlack, str, Any], str]
    state: Callable[[RunningServer, FakeSlack, Any], Any]
    told_when_allowed: str
    audited_when_allowed: str | None = None
    refusal: str = "responders"


def _alert(server: RunningServer, role: str) -> int:
    return fire(server, f"key-{role}")


def _no_silence(server: RunningServer, role: str) -> None:
    now = server.runtime.deps.clock()
    with transaction(server.runtime.deps.sessions) as session:
        session.execute(update(Silence).where(Silence.ends_at > now).values(ends_at=now))


def _silenced(server: RunningServer, role: str) -> None:
    _no_silence(server, role)
    now = server.runtime.deps.clock()
    with transaction(server.runtime.deps.sessions) as session:
        session.add(Silence(integration_id="crm", starts_at=now, ends_at=now + timedelta(hours=3)))


def _open_nudge(server: RunningServer, role: str) -> int:
    with transaction(server.runtime.deps.sessions) as session:
        nudge = session.scalars(
            select(ReviewNudge).where(ReviewNudge.integration_id == "crm")
        ).first()
        if nudge is None:
            raise AssertionError("no review nudge was posted")
        nudge.status, nudge.snoozes, nudge.assigned_to = "open", 0, None
        return nudge.id


def _review_view(server: RunningServer, nudge_id: int) -> dict[str, Any]:
    with server.runtime.deps.sessions() as session:
        integ = session.get(Integration, "crm")
        assert integ is not None
        return review_modal(integ, wire_ids.REVIEW_VIEW, nudge_id)


def _review_values() -> dict[str, Any]:
    values: dict[str, Any] = {
        key: {key: {"type": "radio_buttons", "selected_option": {"value": "yes"}}}
        for key in CHECKLIST_KEYS
    }
    values["notes"] = {"notes": {"type": "plain_text_input", "value": "all fine"}}
    return values


def _resolve_values() -> dict[str, Any]:
    return {
        "cause": {"cause": {"type": "static_select", "selected_option": {"value": "data"}}},
        "note": {"note": {"type": "plain_text_input", "value": "a bad row, fixed"}},
    }


CASES = [
    Case(
        "/integ ack",
        MEMBERS,
        _alert,
        lambda s, f, u, a: command(s, f"ack {a}", u),
        lambda s, f, a: alert_state(s, a),
        "You acknowledged alert",
        refusal="members",
    ),
    Case(
        "Acknowledge button",
        MEMBERS,
        _alert,
        lambda s, f, u, a: click(s, f, u, wire_ids.ACK_ACTION, str(a)),
        lambda s, f, a: alert_state(s, a),
        "",  # the message itself changes; the clicker is told nothing more
        refusal="members",
    ),
    Case(
        "/integ resolve",
        RESPONDERS,
        _alert,
        lambda s, f, u, a: command(s, f"resolve {a} data a bad row", u),
        lambda s, f, a: alert_state(s, a),
        "You resolved alert",
        audited_when_allowed="resolve",
    ),
    Case(
        "Resolve button (opens the form)",
        RESPONDERS,
        _alert,
        lambda s, f, u, a: click(s, f, u, wire_ids.RESOLVE_ACTION, str(a)),
        lambda s, f, a: (alert_state(s, a), forms_opened(f)),
        "",
    ),
    Case(
        "Resolve form submitted",
        RESPONDERS,
        _alert,
        lambda s, f, u, a: submit(
            s,
            u,
            {"callback_id": wire_ids.RESOLVE_VIEW, "private_metadata": str(a)},
            _resolve_values(),
        ),
        lambda s, f, a: alert_state(s, a),
        "{}",
        audited_when_allowed="resolve",
    ),
    Case(
        "/integ silence for 2h",
        RESPONDERS,
        _no_silence,
        lambda s, f, u, a: command(s, "silence crm 2h vendor patch", u),
        lambda s, f, a: active_silence(s),
        "are silenced for 2h",
        audited_when_allowed="silence",
    ),
    Case(
        "/integ silence for 2 days",
        OWNER_OR_ADMIN,
        _no_silence,
        lambda s, f, u, a: command(s, "silence crm 2d upgrade weekend", u),
        lambda s, f, a: active_silence(s),
        "are silenced for 2d",
        audited_when_allowed="silence over 24h",
        refusal="owner or admin",
    ),
    Case(
        "Silence button",
        RESPONDERS,
        lambda s, r: (_no_silence(s, r), _alert(s, r))[1],
        lambda s, f, u, a: click(s, f, u, wire_ids.SILENCE_ACTION, str(a)),
        lambda s, f, a: active_silence(s),
        "are silenced for 2h",
        audited_when_allowed="silence",
    ),
    Case(
        "/integ unsilence",
        RESPONDERS,
        _silenced,
        lambda s, f, u, a: command(s, "unsilence crm", u),
        lambda s, f, a: active_silence(s),
        "is no longer silenced",
        audited_when_allowed="unsilence",
    ),
    Case(
        "Mark reviewed button (opens the form)",
        RESPONDERS,
        _open_nudge,
        lambda s, f, u, n: click(s, f, u, wire_ids.REVIEW_DONE_ACTION, str(n)),
        lambda s, f, n: (nudge_state(s), forms_opened(f)),
        "",
    ),
    Case(
        "Review form submitted",
        RESPONDERS,
        _open_nudge,
        lambda s, f, u, n: submit(s, u, _review_view(s, n), _review_values()),
        lambda s, f, n: nudge_state(s),
        "{}",
    ),
    Case(
        "/integ review (opens the form)",
        RESPONDERS,
        _open_nudge,
        lambda s, f, u, n: command(s, "review crm", u),
        lambda s, f, n: (nudge_state(s), forms_opened(f)),
        "null",  # the form opens; the command's own answer is empty
    ),
    Case(
        "Snooze button",
        RESPONDERS,
        _open_nudge,
        lambda s, f, u, n: click(s, f, u, wire_ids.REVIEW_SNOOZE_ACTION, str(n)),
        lambda s, f, n: nudge_state(s),
        "Snoozed until",
    ),
    Case(
        "Reassign select",
        RESPONDERS,
        _open_nudge,
        lambda s, f, u, n: click(
            s, f, u, wire_ids.REVIEW_REASSIGN_ACTION, str(n), selected_user="U0SOMEONE"
        ),
        lambda s, f, n: nudge_state(s),
        "Reassigned to <@U0SOMEONE>",
        audited_when_allowed="reassign review",
    ),
    Case(
        "/integ heartbeat (shows the ping key)",
        RESPONDERS,
        lambda s, r: None,
        lambda s, f, u, a: command(s, "heartbeat crm", u),
        lambda s, f, a: None,
        "/ping/3f6c0d2e-crm-nightly",
    ),
    Case(
        "/integ audit",
        RESPONDERS,
        lambda s, r: None,
        lambda s, f, u, a: command(s, "audit crm", u),
        lambda s, f, a: None,
        "Audit trail of Slate to Banner admissions",
    ),
    Case(
        "/integ log",
        MEMBERS,
        lambda s, r: None,
        lambda s, f, u, a: command(s, "log crm config mapped a new decision code", u),
        lambda s, f, a: count(s, Change),
        ":memo: Logged change #",
        refusal="members",
    ),
    Case(
        "/integ owners",
        MEMBERS,
        lambda s, r: None,
        lambda s, f, u, a: command(s, "owners crm", u),
        lambda s, f, a: None,
        "*Owner:* <@U0OWNER01>",
        refusal="members",
    ),
    Case(
        "/integ alerts",
        MEMBERS,
        lambda s, r: None,
        lambda s, f, u, a: command(s, "alerts", u),
        lambda s, f, a: None,
        "Open alerts",
        refusal="members",
    ),
    Case(
        "/integ status",
        EVERYONE,
        lambda s, r: None,
        lambda s, f, u, a: command(s, "status crm", u),
        lambda s, f, a: None,
        "Slate to Banner admissions",
    ),
    Case(
        "/integ help",
        EVERYONE,
        lambda s, r: None,
        lambda s, f, u, a: command(s, "help", u),
        lambda s, f, a: None,
        "/integ status",
    ),
]

REFUSALS = {
    "members": "Guests and people from other organisations can use `/integ help`",
    "responders": "Only the responders of *Slate to Banner admissions*: <@U0OWNER01> (owner)",
    "owner or admin": "Only the owner or an admin of *Slate to Banner admissions*: "
    "<@U0OWNER01> (owner); and <@U0ADMIN01> (admins) may silence its alerts for longer",
}


def _plain(text: str) -> str:
    return re.sub(r"[*<>@`]|\\n|\s+", "", text)


def _with_review_due(server: RunningServer, fake: FakeSlack) -> None:
    server.runtime.tick()  # posts crm's review nudge: its first review is due today
    deliver(server)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_kind_of_person_may_do_what_the_rules_say_and_a_refusal_changes_nothing(
    server: RunningServer, fake_slack: FakeSlack, case: Case
) -> None:
    _with_review_due(server, fake_slack)
    for role, user in ROLES.items():
        target = case.prepare(server, role)
        deliver(server)
        before = case.state(server, fake_slack, target)
        writes, audited = slack_writes(fake_slack), audit_of(server, user)
        told = case.act(server, fake_slack, user, target)
        deliver(server)
        after = case.state(server, fake_slack, target)
        new_audit = audit_of(server, user)[len(audited) :]
        if role in case.allowed:
            assert ":no_entry:" not in told, f"{case.name} by the {role}: {told}"
            assert case.told_when_allowed in told, f"{case.name} by the {role}: {told}"
            if before is not None:
                assert after != before, f"{case.name} by the {role} changed nothing"
            expected = [(case.audited_when_allowed, True)] if case.audited_when_allowed else []
            assert new_audit == expected, f"{case.name} by the {role}"
        else:
            refusal = REFUSALS["members" if role in ("guest", "external") else case.refusal]
            # A form says it under its field, in plain text: compared without the markup.
            assert _plain(refusal) in _plain(told), f"{case.name} by the {role}: {told}"
            if len(case.told_when_allowed) > 4:  # a secret, or a list, is not shown either
                assert case.told_when_allowed not in told, f"{case.name} by the {role}: {told}"
            assert after == before, f"{case.name} by the {role} changed what it may not"
            assert slack_writes(fake_slack) == writes, f"{case.name} by the {role} wrote to Slack"
            assert [allowed for _, allowed in new_audit] == [False], (
                f"{case.name} by the {role}: audit {new_audit}"
            )
