"""The field types of the catalog's entries: ids, durations, cron expressions, Slack users
and groups, each checked with a message that says what was meant."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from commands.core.durations import parse_duration

ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
_EPOCH = datetime(2026, 1, 1)


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def cron_expression(value: str) -> str:
    """`value` if it is a 5-field cron expression cronsim can run; else ValueError."""
    if len(value.split()) != 5:
        raise ValueError(
            f"{value!r} is not a 5-field cron expression (minute hour day month weekday)"
        )
    try:
        CronSim(value, _EPOCH)
    except CronSimError as exc:
        raise ValueError(f"{value!r} is not a valid cron expression: {exc}") from None
    return value


def _slack_user(value: str) -> str:
    if re.fullmatch(r"[UW][A-Z0-9]{2,}", value) or re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        return value
    raise ValueError(f"{value!r} is neither a Slack user ID (U0123ABCD) nor an e-mail address")


def _user_group(value: str) -> str:
    if re.fullmatch(r"S[A-Z0-9]{2,}", value):
        return value
    raise ValueError(f"{value!r} is not a Slack user group ID (like S0123ABCD)")


def admins_field(value: object) -> list[str] | str:
    """The top-level `admins`: a list of users, or one user group."""
    # One shape or the other, checked here so an error says which was meant.
    if value is None:
        return []
    if isinstance(value, str):
        return _user_group(value)
    if isinstance(value, list):
        return [_slack_user(str(user)) for user in value]
    raise ValueError("give a list of Slack user IDs, or one user group ID (S0123ABCD)")


Duration = Annotated[str, AfterValidator(_duration)]
Cron = Annotated[str, AfterValidator(cron_expression)]
SlackUser = Annotated[str, AfterValidator(_slack_user)]
UserGroup = Annotated[str, AfterValidator(_user_group)]
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
