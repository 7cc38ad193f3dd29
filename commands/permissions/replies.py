"""`/integ audit i`: the last entries of an integration's audit trail, for its responders."""

from __future__ import annotations

from sqlalchemy.orm import Session

from commands.catalog.lookups import resolve_integration
from commands.core.render import blocks as bk
from commands.core.replies import Invocation, Reply
from commands.permissions.audit import audit_lines, recent
from commands.permissions.check import permit
from commands.permissions.rules import Action


def audit_reply(session: Session, inv: Invocation, name: str) -> Reply:
    found = resolve_integration(session, inv, name, "audit")
    if isinstance(found, Reply):
        return found
    refusal = permit(session, inv.actor, Action.AUDIT, found, inv.now, "audit trail")
    if refusal is not None:
        return Reply(text=refusal.message, blocks=[bk.section(refusal.message)])
    return audit_lines(found, recent(session, found.id))
