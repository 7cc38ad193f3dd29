"""`/integ <verb> [args]`: parse what was typed and hand it to the verb's function."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.orm import Session

from commands.alerts import replies as alert_replies
from commands.catalog import diagram, impact, lookups
from commands.changes import from_chat as change_log
from commands.changes import listing as change_list
from commands.core.matching import Candidate, find
from commands.core.render import blocks as bk
from commands.core.render.mrkdwn import escape, typed_words
from commands.core.replies import Invocation, Reply
from commands.maintenance import replies as maintenance_replies
from commands.monitors import heartbeat_reply
from commands.permissions import replies as audit_reply
from commands.permissions.check import permit
from commands.permissions.rules import Action
from commands.reports import replies as report_replies
from commands.reviews import actions as reviews

# Longer than any real command; past this the text is not worth parsing, only refusing.
MAX_TEXT = 4000

Handler = Callable[[Session, Invocation, str], Reply]

# The first word typed, and the space before it.
_VERB_PREFIX = re.compile(r"^\s*/?\S+")

# What a verb needs before it runs. Those that act on one integration's things check
# everything themselves once they know which integration, so the audit trail names it.
GATES: dict[str, Action] = {
    "help": Action.HELP,
    "status": Action.STATUS,
    "log": Action.LOG_CHANGE,
}
CHECKED_BY_THE_VERB = frozenset(
    {"ack", "resolve", "silence", "unsilence", "heartbeat", "audit", "review"}
)

HANDLERS: dict[str, Handler] = {
    "help": lambda session, inv, _args: lookups.help_reply(session, inv),
    "list": lookups.list_reply,
    "status": lookups.status_reply,
    "owners": lookups.owners_reply,
    "runbook": lookups.runbook_reply,
    "info": lookups.info_reply,
    "support": lookups.support_reply,
    "alerts": alert_replies.alerts_reply,
    "ack": alert_replies.ack_reply,
    "resolve": alert_replies.resolve_reply,
    "silence": alert_replies.silence_reply,
    "unsilence": alert_replies.unsilence_reply,
    "heartbeat": heartbeat_reply.heartbeat_reply,
    "report": report_replies.report_reply,
    "maintenance": maintenance_replies.maintenance_reply,
    "reviews": reviews.reviews_reply,
    "review": reviews.review_reply,
    "impact": impact.impact_reply,
    "changes": change_list.changes_reply,
    "diagram": diagram.diagram_reply,
    "audit": audit_reply.audit_reply,
    # Given the raw text, not the words: a logged change keeps its lines and spacing.
    "log": lambda session, inv, _args: change_log.log_reply(session, inv, _raw_args(inv.text)),
}


def handle(session: Session, inv: Invocation) -> Reply:
    """Answer one `/integ` command; never raises for anything a person could type."""
    if len(inv.text) > MAX_TEXT:
        text = (
            f"That command is {len(inv.text):,} characters long, too long to be one I know. "
            "`/integ help` lists what I understand."
        )
        return Reply(text=text, blocks=[bk.section(text)])
    words = typed_words(inv.text).split(None, 1)
    if not words:
        return lookups.help_reply(session, inv)
    verb = words[0].lower().lstrip("/")
    args = words[1].strip() if len(words) > 1 else ""
    if verb == "integ" and args:  # "/integ /integ status" pasted twice
        return handle(session, replace(inv, text=_raw_args(inv.text)))
    handler = HANDLERS.get(verb)
    if handler is None:
        return _unknown_verb(verb)
    refused = gate(session, inv, verb)
    if refused is not None:
        return refused
    return handler(session, inv, _first_word_or_all(verb, args))


def gate(session: Session, inv: Invocation, verb: str) -> Reply | None:
    """The refusal when the person may not use `verb` at all (a guest, say), recorded."""
    if verb in CHECKED_BY_THE_VERB:
        return None
    action = GATES.get(verb, Action.COMMAND)
    refusal = permit(session, inv.actor, action, None, inv.now, f"/integ {verb}")
    if refusal is None:
        return None
    return Reply(text=refusal.message, blocks=[bk.section(refusal.message)])


def _raw_args(text: str) -> str:
    """What follows the verb as typed."""
    return _VERB_PREFIX.sub("", text, count=1)


def _first_word_or_all(verb: str, args: str) -> str:
    # Names are single words; `list` takes free text to filter on.
    if verb in ("list", "resolve", "silence", "changes", "report", "maintenance"):
        return args
    return args.split()[0] if args else ""


def _unknown_verb(verb: str) -> Reply:
    verbs = [Candidate(v, v) for v in HANDLERS]
    _, suggestions = find(verb, verbs)
    shown = escape(verb[:50])
    if suggestions:
        tries = " or ".join(f"`/integ {s}`" for s in suggestions[:3])
        text = f"I don't know `{shown}`. Did you mean {tries}? `/integ help` lists everything."
    else:
        text = f"I don't know `{shown}`. `/integ help` lists what I understand."
    return Reply(text=text, blocks=[bk.section(text)])
