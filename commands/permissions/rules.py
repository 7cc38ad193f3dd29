"""The rules: what each action needs of the person asking.

Responders of an integration are its owner, its backups, the members of its team (a Slack
user group) and the catalog's admins.
"""

from __future__ import annotations

import enum
from datetime import timedelta


class Need(enum.Enum):
    ANYONE = "anyone"  # guests and external users included
    MEMBER = "member"  # a full member of the workspace
    RESPONDER = "responder"
    OWNER_OR_ADMIN = "owner or admin"


class Action(enum.StrEnum):
    HELP = "help"
    STATUS = "status"
    COMMAND = "command"  # any `/integ` verb but help and status, before it runs
    READ = "read"  # the alerts or changes of one integration
    LOG_CHANGE = "log change"
    ACK = "acknowledge"
    RESOLVE = "resolve"
    SILENCE = "silence"
    SILENCE_LONG = "silence over 24h"
    UNSILENCE = "unsilence"
    REVIEW = "mark reviewed"
    SNOOZE = "snooze review"
    REASSIGN = "reassign review"
    HEARTBEAT = "heartbeat key"
    AUDIT = "read audit"
    SEE_PRIVATE = "see private"  # an alert or change of an integration in a private channel


NEEDS: dict[Action, Need] = {
    Action.HELP: Need.ANYONE,
    Action.STATUS: Need.ANYONE,
    Action.COMMAND: Need.MEMBER,
    Action.READ: Need.MEMBER,
    Action.LOG_CHANGE: Need.MEMBER,
    Action.ACK: Need.MEMBER,
    Action.RESOLVE: Need.RESPONDER,
    Action.SILENCE: Need.RESPONDER,
    Action.SILENCE_LONG: Need.OWNER_OR_ADMIN,
    Action.UNSILENCE: Need.RESPONDER,
    Action.REVIEW: Need.RESPONDER,
    Action.SNOOZE: Need.RESPONDER,
    Action.REASSIGN: Need.RESPONDER,
    Action.HEARTBEAT: Need.RESPONDER,
    Action.AUDIT: Need.RESPONDER,
    Action.SEE_PRIVATE: Need.RESPONDER,
}

# What a person was trying to do, as the refusal says it: "Only … may <this>."
DOING: dict[Action, str] = {
    Action.COMMAND: "use this command",
    Action.READ: "see this",
    Action.LOG_CHANGE: "log changes",
    Action.ACK: "acknowledge alerts",
    Action.RESOLVE: "resolve its alerts",
    Action.SILENCE: "silence its alerts",
    Action.SILENCE_LONG: "silence its alerts for longer than 24 hours",
    Action.UNSILENCE: "end its silence",
    Action.REVIEW: "mark its review done",
    Action.SNOOZE: "snooze its review",
    Action.REASSIGN: "reassign its review",
    Action.HEARTBEAT: "see its heartbeat's ping URL",
    Action.AUDIT: "read its audit trail",
    Action.SEE_PRIVATE: "see its alerts and changes outside its private channel",
}

# Longer silences hide a failure for days: only an owner or an admin decides that.
RESPONDER_SILENCE = timedelta(hours=24)
MAX_SILENCE = timedelta(days=30)


def silence_action(length: timedelta) -> Action:
    return Action.SILENCE if length <= RESPONDER_SILENCE else Action.SILENCE_LONG
