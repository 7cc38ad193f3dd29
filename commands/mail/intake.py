"""Mail to an integration's address, taken in: who may write, what a message means, and
what it does (a heartbeat ping, or an alert raised or resolved) through the same intake as
the hooks and pings, so everything downstream works unchanged.

Addresses are `<integration>@<domain>`, `<integration>+start@<domain>` and
`<integration>+fail@<domain>`, like the ping URLs. What a message to the plain address means:
its integration's `email:` rules when the catalog gives some (commands/catalog/mail_spec.py),
else success. `+start` and `+fail` mean what they say, whatever the rules.

With a heartbeat, a message is a ping of it (a failure's alert says the subject and shows
the body). Without one, a failure raises the integration's e-mail alert (one alert, however
many failure messages: each is a repeat) and a success resolves it; a start is recorded only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from commands.alerts.ingest import ingest
from commands.alerts.payloads import MAX_DETAILS, MAX_SUMMARY, AlertEvent
from commands.catalog.views import integration_spec
from commands.core import slack_events
from commands.mail.parse import Mail
from commands.monitors.heartbeats import FAIL, START, SUCCESS, record_ping
from storage import queries
from storage.db import table_of
from storage.models import AlertSource, Heartbeat, ReceivedEvent

ALERT_KEY = "email"  # one e-mail alert per integration, its failures repeats of it
NO_SUBJECT = "(no subject)"
_RECEIVE = insert(table_of(ReceivedEvent))


@dataclass(frozen=True)
class Address:
    integration_id: str
    kind: str | None  # "start" | "fail" from the address; None: the rules decide


def parse_address(address: str, domain: str) -> Address | None:
    local, _, host = address.strip().strip("<>").lower().rpartition("@")
    if host != domain.lower() or not local:
        return None
    name, _, tag = local.partition("+")
    if tag not in ("", START, FAIL) or not name:
        return None
    return Address(name, tag or None)


def refusal(session: Session, recipient: str, sender: str, domain: str) -> str | None:
    """None when mail from `sender` to `recipient` is taken, else the SMTP reply that
    refuses it (nothing of it is stored then)."""
    if not _printable(recipient) or not _printable(sender):
        return "553 5.1.3 Addresses here are plain printable text"
    address = parse_address(recipient, domain)
    if address is None:
        return f"550 5.1.1 No such address here: {recipient[:100]}"
    integ = queries.integration(session, address.integration_id)
    if integ is None:
        return f"550 5.1.1 No integration called {address.integration_id[:64]}"
    if not sender:
        # A bounce or an auto-reply: never a job's report, and it must not pass for one.
        return "550 5.7.1 Mail with an empty sender (a bounce) is not taken here"
    rules = integration_spec(integ).email
    if rules is not None and not rules.allows(sender):
        return f"550 5.7.1 {sender[:100]} may not write to {recipient[:100]}"
    return None


def _printable(address: str) -> bool:
    # A surrogate (undecodable bytes kept by SMTPUTF8) or a control character could end up
    # in a reply line or a log.
    return address.isprintable() and not any("\ud800" <= c <= "\udfff" for c in address)


@dataclass(frozen=True)
class Taken:
    """What one message did for one recipient."""

    integration_id: str
    meaning: str  # "success" | "start" | "fail" | "ignore"
    changed_alert: bool


def take(
    session: Session,
    mail: Mail,
    raw: bytes,
    sender: str,
    recipients: Sequence[str],
    domain: str,
    now: datetime,
    peer: str | None = None,
) -> list[Taken] | None:
    """Store the message as received and act on it for each recipient (checked already by
    `refusal`; `mail` is `raw` parsed, done before the transaction since it takes time);
    None when every recipient had it before (a relay sending again a message whose 250 it
    missed). Nothing here commits."""
    identity = mail.message_id or hashlib.sha256(raw).hexdigest()
    fresh = []
    for address in dict.fromkeys(
        a for a in (parse_address(r, domain) for r in recipients) if a is not None
    ):
        # One claim per message, sender and address: a Message-ID someone else reuses, or
        # the same message to another integration, is not taken for this one.
        key = f"{identity}\n{sender}\n{address.integration_id}+{address.kind or ''}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        if slack_events.first_delivery(session, f"mail:{digest}", now):
            fresh.append(address)
    if not fresh:
        return None
    taken = [_act(session, mail, address, sender, now, peer) for address in fresh]
    session.connection().execute(
        _RECEIVE,
        {
            "received_at": now,
            "source": AlertSource.EMAIL.value,
            "body": raw,
            "alerts": sum(t.changed_alert for t in taken),
        },
    )
    return taken


def _act(
    session: Session, mail: Mail, address: Address, sender: str, now: datetime, peer: str | None
) -> Taken:
    integ = queries.integration(session, address.integration_id)
    spec = integration_spec(integ) if integ is not None else None
    if spec is None:  # removed from the catalog since its recipient was checked
        return Taken(address.integration_id, "ignore", False)
    if mail.automatic and address.kind is None:
        # An out-of-office reply to a job's own address says nothing about the job.
        return Taken(spec.id, "ignore", False)
    meaning = address.kind or (
        spec.email.outcome(mail.subject, mail.text) if spec.email is not None else SUCCESS
    )
    if meaning == "ignore":
        return Taken(spec.id, meaning, False)
    beat = session.scalars(select(Heartbeat).where(Heartbeat.integration_id == spec.id)).first()
    if beat is not None:
        pinged = record_ping(
            session,
            beat.key,
            meaning,
            now=now,
            method="SMTP",
            user_agent=f"e-mail from {sender}"[:500],
            remote_addr=peer,
            body=mail.text,
            summary=f"{mail.subject or NO_SUBJECT}"[:MAX_SUMMARY] if meaning == FAIL else None,
        )
        return Taken(spec.id, meaning, pinged is not None and pinged.alert is not None)
    if meaning == START:
        return Taken(spec.id, meaning, False)
    event = AlertEvent(
        source=AlertSource.EMAIL.value,
        integration=spec.id,
        key=ALERT_KEY,
        status="firing" if meaning == FAIL else "resolved",
        summary=(mail.subject or NO_SUBJECT)[:MAX_SUMMARY],
        details=mail.text[:MAX_DETAILS] or None,
        severity="error",
        url=None,
        occurred_at=None,
        labels={},
    )
    result = ingest(session, [event], now, None)
    return Taken(spec.id, meaning, bool(result.opened or result.reopened or result.resolved))
